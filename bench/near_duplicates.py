"""Near-duplicate search time: multi-index hashing against all-pairs comparison at three sizes up to 110,000.

The hashes are random 64-bit values with 1 % planted near copies (1–4 flipped bits), the size of the release's
labeled + unlabeled images. Goal: sub-quadratic growth (doubling n must cost well under 4×).

Usage: python bench/near_duplicates.py
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hyperkvasir.data.audit import (
    NEAR_DUPLICATE_THRESHOLD,
    all_pairs_reference,
    near_pairs,
)


def hashes(n: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64)
    copies = rng.choice(n, size=n // 100, replace=False)
    for target, source in zip(copies[: len(copies) // 2], copies[len(copies) // 2 :]):
        value = base[source]
        for bit in rng.choice(64, size=int(rng.integers(1, 5)), replace=False):
            value ^= np.uint64(1) << np.uint64(int(bit))
        base[target] = value
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all-pairs-max", type=int, default=110_000, help="largest n to run all-pairs on")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for n in (27_500, 55_000, 110_000):
        values = hashes(n, rng)
        started = time.perf_counter()
        fast = near_pairs(values, NEAR_DUPLICATE_THRESHOLD)
        fast_s = time.perf_counter() - started
        row = {"n": n, "multi_index_s": round(fast_s, 3), "pairs": len(fast)}
        if n <= args.all_pairs_max:
            started = time.perf_counter()
            slow = all_pairs_reference(values, NEAR_DUPLICATE_THRESHOLD)
            row["all_pairs_s"] = round(time.perf_counter() - started, 3)
            row["same_pairs"] = bool(np.array_equal(fast, slow))
            row["speedup"] = round(row["all_pairs_s"] / fast_s, 1)
        rows.append(row)
    growth = [round(b["multi_index_s"] / a["multi_index_s"], 2) for a, b in zip(rows, rows[1:])]
    print(json.dumps({"threshold": NEAR_DUPLICATE_THRESHOLD, "sizes": rows, "growth_per_doubling": growth}, indent=2))


if __name__ == "__main__":
    main()
