"""The labeling loop measured on real pixels (issue 26): label-issues against planted label noise, the real label
conflict, `similar` on Kvasir-SEG originals that are copies of labeled polyps, and the speed of `embed`.

Usage: python bench/label_loop.py --real REAL --work SCRATCH [--json out.json]
REAL is the real sample in the release layout (labeled-images/, segmented-images/, official_splits/); it is
only read: the script copies it twice into SCRATCH (a clean copy, and a noisy one where a seeded 5 % of the
labeled images are moved to another class folder, the split CSVs changed to agree), runs a 2-fold benchmark
(`--config demo`) on the noisy copy through the CLI, then measures. Rerunning resumes the benchmark.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NOISE, SEED, TOP = 0.05, 26, 5


def _copy(real: Path, target: Path) -> Path:
    if not target.is_dir():
        shutil.copytree(real, target, ignore=shutil.ignore_patterns(".hyperkvasir"))
    return target


def plant_noise(root: Path) -> list[dict]:
    """Move a seeded NOISE share of the labeled images to another class folder present in the tree, and make the
    split CSVs agree (as a wrong label in the release would): the moves, recorded in ROOT/../moves.json."""
    record = root.parent / "moves.json"
    if record.is_file():
        return json.loads(record.read_text())
    files = sorted((root / "labeled-images").rglob("*.jpg"))
    folders = sorted({f.parent for f in files})
    rng = np.random.default_rng(SEED)
    moves = []
    for index in rng.choice(len(files), round(NOISE * len(files)), replace=False):
        source = files[index]
        target_folder = folders[rng.choice([i for i, f in enumerate(folders) if f != source.parent])]
        shutil.move(source, target_folder / source.name)
        moves.append({"file": source.name, "from": source.parent.name, "to": target_folder.name,
                      "path": (target_folder / source.name).relative_to(root).as_posix()})
    moved = {m["file"]: m["to"] for m in moves}
    for split in sorted((root / "official_splits").glob("*_fold_split.csv")):
        with open(split, newline="") as handle:
            rows = list(csv.reader(handle, delimiter=";"))
        rows = [rows[0]] + [[r[0], moved.get(r[0], r[1]), r[2]] for r in rows[1:]]
        with open(split, "w", newline="") as handle:
            csv.writer(handle, delimiter=";", lineterminator="\n").writerows(rows)
    record.write_text(json.dumps(moves, indent=2))
    return moves


def benchmark(root: Path, out: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "hyperkvasir", "benchmark", str(root), "--config", "demo", "--out",
                           str(out)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"benchmark failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def issues_figures(root: Path, results: Path, moves: list[dict]) -> dict:
    from hyperkvasir.data.audit import audit
    from hyperkvasir.label.issues import label_issues

    rows = label_issues(root, results)
    planted = {m["path"] for m in moves}
    k = len(planted)
    ranked = [r["file"] for r in rows]
    hits = len(planted & set(ranked[:k]))
    labeled = sum(1 for _ in (root / "labeled-images").rglob("*.jpg"))
    rng = np.random.default_rng(SEED)
    random_hits = [len(planted & set(rng.permutation(sorted(str(p.relative_to(root)) for p in
                                                             (root / "labeled-images").rglob("*.jpg")))[:k]))
                   for _ in range(1000)]
    conflicts = [f for c in audit(root).label_conflicts for f in c["files"]]
    return {"labeled": labeled, "planted": k, "rows": len(rows), "hits_top_k": hits,
            "precision_at_k": hits / k, "recall_at_k": hits / k, "recall_all_rows": len(planted & set(ranked)) / k,
            "random_precision_at_k_mean": float(np.mean(random_hits)) / k,
            "random_precision_at_k_95": [float(np.percentile(random_hits, 2.5)) / k,
                                         float(np.percentile(random_hits, 97.5)) / k],
            "conflict_files": conflicts,
            "conflict_ranks": {f: (ranked.index(f) + 1 if f in ranked else None) for f in conflicts},
            "top_rows": rows[:10]}


def similar_figures(root: Path) -> dict:
    """Share of segmented images the audit finds as copies of labeled polyps whose labeled copy is among the TOP
    nearest labeled images by embedding (ImageNet backbone)."""
    from hyperkvasir.data.audit import audit
    from hyperkvasir.label.neighbours import similar

    copies = {}
    for group in audit(root).duplicate_sets():
        labeled = {f for f, p in zip(group.files, group.parts) if p == "labeled"}
        for f, p in zip(group.files, group.parts):
            if p == "segmented" and labeled:
                copies[f] = labeled
    found = similar(root, sorted(copies), TOP)
    hits = sum(1 for q, near in found.items() if copies[q] & {f for f, _ in near})
    first = sum(1 for q, near in found.items() if near and near[0][0] in copies[q])
    distances = [d for q, near in found.items() for f, d in near if f in copies[q]]
    return {"queries": len(copies), f"labeled_copy_in_top_{TOP}": hits, "share": hits / len(copies) if copies else None,
            "labeled_copy_first": first, "copy_distance_median": float(np.median(distances)) if distances else None,
            "copy_distance_max": float(np.max(distances)) if distances else None}


def embed_speed(root: Path) -> dict:
    import torch

    from hyperkvasir.label.embed import embed_parts

    started = time.perf_counter()
    found = embed_parts(root, parts=("labeled", "segmented"), size=224)
    seconds = time.perf_counter() - started
    rate = len(found.paths) / seconds
    return {"images": len(found.paths), "seconds": round(seconds, 1), "images_per_s": round(rate, 2),
            "threads": torch.get_num_threads(), "hours_for_110k": round(110_079 / rate / 3600, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    clean = _copy(args.real, args.work / "clean" / "hk")
    noisy = _copy(args.real, args.work / "noisy" / "hk")
    results = {"embed": embed_speed(clean)}  # first: a cold cache on an otherwise idle process
    results["similar"] = similar_figures(clean)
    moves = plant_noise(noisy)
    results["benchmark_seconds"] = round(benchmark(noisy, args.work / "bench"), 1)
    results["label_issues"] = issues_figures(noisy, args.work / "bench", moves)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
