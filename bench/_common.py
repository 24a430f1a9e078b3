"""Helpers shared by the benchmarks: a medium twin to measure on, a result line printer, and the all-pairs baseline
of the near-duplicate search."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from hyperkvasir.synth.tree import make_synthetic_release


def twin_root(description: str) -> tuple[argparse.Namespace, Path]:
    """Parse ``--root`` (an existing twin) or synthesise a medium twin in a temp folder."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", type=Path, help="an existing release or twin (default: a fresh medium twin)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.root is None:
        args.root = Path(tempfile.mkdtemp(prefix="hk-bench-")) / "medium"
        print(f"synthesising a medium twin at {args.root} …", flush=True)
        make_synthetic_release(args.root, seed=0, scale="medium", workers=2)
    return args, args.root


def report(args: argparse.Namespace, results: dict) -> None:
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def all_pairs_reference(hashes: np.ndarray, threshold: int) -> np.ndarray:
    """The quadratic baseline of :func:`hyperkvasir.data.audit.near_pairs`: every pair compared, in blocks."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    found = []
    for start in range(0, len(hashes), 2048):
        block = hashes[start : start + 2048]
        distance = np.bitwise_count(block[:, None] ^ hashes[None, :])
        i, j = np.nonzero(distance <= threshold)
        i = i + start
        keep = i < j
        found.append(np.stack([i[keep], j[keep]], axis=1))
    return np.unique(np.concatenate(found), axis=0) if found else np.empty((0, 2), np.int64)
