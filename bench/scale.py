"""Full-scale rehearsal: index, audit, validate and splits of a twin with every released count (110,079 images).

Each stage runs as the CLI a user would type (``hyperkvasir --work-dir W …``), in its own process tree, timed and
watched for peak memory (the summed resident set of the process and its workers, sampled every 0.1 s; pages the
workers share with their parent are counted twice, so the figure errs high). Then the near-duplicate search runs
on 27,500 / 55,000 / 110,079 perceptual hashes of the twin's own frames, against all-pairs comparison: the
unlabeled frames come in runs of slowly changing frames, as captured during procedures, and the first n in path
order (UUID names, so a random share of every run) keep that structure at each size.

Goals (issue: full-scale rehearsal): first index ≤ 3× the time to read every file once (``cat``, run twice so that
the baseline and the index meet the same warm page cache); re-index of the unchanged tree ≤ 5 s; audit ≤ 10 min
with peak memory ≤ 4 GB; no near-duplicate group whose largest pairwise distance exceeds twice the threshold;
0 confirmed pairs across the folds of grouped-2fold, whose split units are whole components however long the chain.

Usage: python bench/scale.py [--root FULL_TWIN] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from _common import all_pairs_reference

from hyperkvasir.data.audit import (
    NEAR_DUPLICATE_THRESHOLD,
    PIXELS_NAME,
    DuplicateGroup,
    leakage,
    merge_groups,
    near_pairs,
)
from hyperkvasir.data.index import MANIFEST_NAME

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
        todo += children.get(current, [])
    return total


def timed(command: list[str] | str, stdout=subprocess.DEVNULL) -> dict:
    """Run ``command``; wall seconds and peak resident memory (GB) of its process tree."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=stdout, stderr=subprocess.PIPE, shell=isinstance(command, str), text=True
    )
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(process.pid))
            done.wait(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, error = process.communicate()
    done.set()
    watcher.join()
    if process.returncode:
        raise SystemExit(f"{command} failed ({process.returncode}): {error.strip()[-2000:]}")
    return {"seconds": round(time.perf_counter() - started, 2), "peak_gb": round(peak / 1e9, 2)}


def search_timings(hashes: np.ndarray) -> list[dict]:
    """Multi-index hashing against all-pairs on the first 27.5k, 55k and all hashes."""
    rows = []
    for n in (27_500, 55_000, len(hashes)):
        values = hashes[:n]
        started = time.perf_counter()
        fast = near_pairs(values, NEAR_DUPLICATE_THRESHOLD)
        fast_s = time.perf_counter() - started
        started = time.perf_counter()
        slow = all_pairs_reference(values, NEAR_DUPLICATE_THRESHOLD)
        slow_s = time.perf_counter() - started
        rows.append(
            {
                "n": n,
                "multi_index_s": round(fast_s, 2),
                "all_pairs_s": round(slow_s, 2),
                "speedup": round(slow_s / fast_s, 1),
                "pairs": len(fast),
                "same_pairs": bool(np.array_equal(fast, slow)),
            }
        )
    return rows


def group_distances(report: dict, work: Path) -> dict:
    """The largest pairwise pHash distance inside every near group and every merged duplicate set, exactly."""
    manifest = pq.read_table(work / MANIFEST_NAME, columns=["path", "sha256"]).to_pylist()
    pixels = pq.read_table(work / PIXELS_NAME, columns=["sha256", "phash"]).to_pylist()
    phash = {row["sha256"]: row["phash"] for row in pixels}
    by_path = {row["path"]: phash.get(row["sha256"]) for row in manifest}

    def widest(files: list[str]) -> int:
        values = np.asarray([by_path[f] for f in files if by_path.get(f) is not None], np.uint64)
        return int(np.bitwise_count(values[:, None] ^ values[None, :]).max()) if len(values) else 0

    near = [DuplicateGroup(**g) for g in report["near_groups"]]
    merged = merge_groups([DuplicateGroup(**g) for g in report["exact_groups"]] + near)
    near_widths = [widest(g.files) for g in near]
    merged_widths = [widest(g.files) for g in merged]
    return {
        "near_groups": len(near),
        "largest_near_group": max((len(g.files) for g in near), default=0),
        "max_distance_in_near_group": max(near_widths, default=0),
        "near_groups_over_2x_threshold": sum(w > 2 * NEAR_DUPLICATE_THRESHOLD for w in near_widths),
        "duplicate_sets": len(merged),
        "largest_set": max((len(g.files) for g in merged), default=0),
        "max_distance_in_set": max(merged_widths, default=0),
        "sets_over_3x_threshold": sum(w > 3 * NEAR_DUPLICATE_THRESHOLD for w in merged_widths),
    }


def split_unit_figures(report: dict, grouped_csv: Path) -> dict:
    """Split units (connected components of every confirmed pair) and the confirmed pairs that grouped-2fold
    leaves across its folds (must be 0)."""
    groups = {
        name: [DuplicateGroup(**g) for g in report[name]]
        for name in ("exact_groups", "near_units", "labeled_near_units")
    }
    units = merge_groups(groups["exact_groups"] + groups["near_units"])
    labeled_exact = [g for g in groups["exact_groups"] if sum(p == "labeled" for p in g.parts) > 1]
    labeled_units = merge_groups(labeled_exact + groups["labeled_near_units"])
    rows = [line.split(";") for line in grouped_csv.read_text().splitlines()[1:]]
    fold_of = {name: int(fold) for name, _, fold, _ in rows}
    pairs = [[Path(a).name, Path(b).name] for a, b in report["labeled_pairs"]]
    return {
        "split_units": len(units),
        "largest_split_unit": max((len(u.files) for u in units), default=0),
        "labeled_split_units": len(labeled_units),
        "largest_labeled_split_unit": max((len(u.files) for u in labeled_units), default=0),
        "large_units": len(report["large_units"]),
        "labeled_confirmed_pairs": len(pairs),
        "grouped_2fold_pairs_across_folds": leakage(pairs, fold_of)["pairs"],
        "official_2fold_pairs_across_folds": report["leakage"]["fold2"]["pairs"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="an existing full-scale twin (default: synthesise one)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "hyperkvasir"]
    scratch = Path(tempfile.mkdtemp(prefix="hk-scale-"))
    results: dict = {"cores": os.cpu_count()}
    root = args.root
    if root is None:
        root = scratch / "full"
        print(f"synthesising a full-scale twin at {root} …", flush=True)
        results["synth"] = timed(cli + ["synth", str(root), "--scale", "full", "--workers", str(os.cpu_count())])
    work = scratch / "work"
    with_work = cli + ["--work-dir", str(work)]
    results["files"] = sum(1 for _, _, names in os.walk(root) for _ in names)
    read_all = f"find {root} -type f -print0 | xargs -0 cat > /dev/null"
    results["cat_first"] = timed(read_all)  # whatever the page cache held: warms it for what follows
    results["cat"] = timed(read_all)  # the baseline, in the cache state the index then meets
    results["first_index"] = timed(with_work + ["index", str(root)])
    results["re_index"] = timed(with_work + ["index", str(root)])
    with open(scratch / "audit.json", "w") as handle:
        results["audit"] = timed(with_work + ["audit", str(root), "--json"], stdout=handle)
    with open(scratch / "validate.json", "w") as handle:  # exit 1 would mean the twin itself has findings
        results["validate"] = timed(with_work + ["validate", str(root), "--json"], stdout=handle)
    for scheme in ("official-2fold", "grouped-2fold"):
        results[f"splits_{scheme}"] = timed(
            with_work + ["splits", str(root), "--scheme", scheme, "--out", str(scratch / f"{scheme}.csv")]
        )
    report = json.loads((scratch / "audit.json").read_text())
    results["groups"] = group_distances(report, work)
    results["label_conflicts"] = len(report["label_conflicts"])
    results["split_units"] = split_unit_figures(report, scratch / "grouped-2fold.csv")
    results["index_over_cat"] = round(results["first_index"]["seconds"] / results["cat"]["seconds"], 2)
    manifest = pq.read_table(work / MANIFEST_NAME, columns=["sha256", "kind"]).to_pylist()
    phash = {
        r["sha256"]: r["phash"] for r in pq.read_table(work / PIXELS_NAME, columns=["sha256", "phash"]).to_pylist()
    }
    shas = dict.fromkeys(r["sha256"] for r in manifest if r["kind"] == "image" and phash.get(r["sha256"]) is not None)
    hashes = np.asarray([phash[sha] for sha in shas], np.uint64)  # one per distinct file, as the audit searches
    results["near_duplicate_search"] = search_timings(hashes)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
