"""The labeling loop measured on real pixels (issue 26): label-issues against planted label noise, the real label
conflict, `similar` on Kvasir-SEG originals that are copies of labeled polyps, the speed of `embed`, and a
simulated labeling loop (`to-label`'s selection against random choice).

Usage: python bench/label_loop.py --real REAL --work SCRATCH [--measure embed,similar,issues,loop] [--json out.json]
REAL is the real sample in the release layout (labeled-images/, segmented-images/, official_splits/); it is
only read: the script copies it twice into SCRATCH (a clean copy, and a noisy one where a seeded 5 % of the
labeled images are moved to another class folder, the split CSVs changed to agree), runs a 2-fold benchmark
(`--config demo`) on the noisy copy through the CLI, then measures. Rerunning resumes the benchmark.

The simulated loop (``loop``, on the clean copy): official 2-fold under the dev protocol (each fold's training
half is the pool; its validation carve-out, fixed across arms, is scored; the test fold is scored too, once, after
everything was fixed, and reported apart). Per seed and fold, 30 % of the pool starts labeled (the same images for
both arms), then three rounds each add 10 % of the pool, chosen by `to-label`'s selection
(:func:`hyperkvasir.label.queue.choose`: margin × k-center greedy distance, near duplicates of labeled or chosen
images left out, the duplicate distance calibrated on the audit's pairs as `to-label` does) or uniformly at
random. The classifier is a linear head (scikit-learn logistic regression, standardised features, balanced class
weights, C = 1, fixed before the run) on frozen ImageNet features (`embed`'s default backbone at 224 px): the arms
share features, head, start set and scored images, so they differ only in which images get labeled.
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
LOOP_SEEDS, START, STEP, ROUNDS = (0, 1, 2), 0.30, 0.10, 3
MEASURES = ("embed", "similar", "issues", "loop")


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
        moves.append(
            {
                "file": source.name,
                "from": source.parent.name,
                "to": target_folder.name,
                "path": (target_folder / source.name).relative_to(root).as_posix(),
            }
        )
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
    done = subprocess.run(
        [sys.executable, "-m", "hyperkvasir", "benchmark", str(root), "--config", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
    )
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
    random_hits = [
        len(
            planted
            & set(
                rng.permutation(sorted(str(p.relative_to(root)) for p in (root / "labeled-images").rglob("*.jpg")))[:k]
            )
        )
        for _ in range(1000)
    ]
    conflicts = [f for c in audit(root).label_conflicts for f in c["files"]]
    return {
        "labeled": labeled,
        "planted": k,
        "rows": len(rows),
        "hits_top_k": hits,
        "precision_at_k": hits / k,
        "recall_at_k": hits / k,
        "recall_all_rows": len(planted & set(ranked)) / k,
        "random_precision_at_k_mean": float(np.mean(random_hits)) / k,
        "random_precision_at_k_95": [
            float(np.percentile(random_hits, 2.5)) / k,
            float(np.percentile(random_hits, 97.5)) / k,
        ],
        "conflict_files": conflicts,
        "conflict_ranks": {f: (ranked.index(f) + 1 if f in ranked else None) for f in conflicts},
        "top_rows": rows[:10],
    }


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
    return {
        "queries": len(copies),
        f"labeled_copy_in_top_{TOP}": hits,
        "share": hits / len(copies) if copies else None,
        "labeled_copy_first": first,
        "copy_distance_median": float(np.median(distances)) if distances else None,
        "copy_distance_max": float(np.max(distances)) if distances else None,
    }


def embed_speed(root: Path) -> dict:
    import torch

    from hyperkvasir.label.embed import embed_parts

    started = time.perf_counter()
    found = embed_parts(root, parts=("labeled", "segmented"), size=224)
    seconds = time.perf_counter() - started
    rate = len(found.paths) / seconds
    return {
        "images": len(found.paths),
        "seconds": round(seconds, 1),
        "images_per_s": round(rate, 2),
        "threads": torch.get_num_threads(),
        "hours_for_110k": round(110_079 / rate / 3600, 2),
    }


def loop_figures(root: Path) -> dict:
    """The simulated labeling loop (module docstring): macro-F1 per round and arm on the dev carve-outs (and on the
    test folds, reported apart), averaged over seeds and folds, with the paired difference to-label − random."""
    from hyperkvasir.data.splits import assignment, protocol_subsets
    from hyperkvasir.data.taxonomy import CLASSES, lookup
    from hyperkvasir.label.embed import embed_parts
    from hyperkvasir.label.queue import calibrated_distance, duplicate_sets

    found = embed_parts(root, parts=("labeled", "segmented"), size=224)
    groups = duplicate_sets(root, found.paths)
    threshold, pairs = calibrated_distance(found.vectors, found.paths, groups)
    row_of = {Path(p).name: i for i, p in enumerate(found.paths) if p.startswith("labeled-images/")}
    label_of = np.asarray(
        [lookup(Path(p).parent.name).index if p.startswith("labeled-images/") else -1 for p in found.paths]
    )
    arms = ("random", "to-label")
    runs = []  # one per (seed, fold): the scored labels and each arm's predictions per round
    for seed in LOOP_SEEDS:
        split = assignment(root, "official-2fold", seed=seed)
        for fold in range(split.k):
            dev = protocol_subsets(root, split, fold, "dev", seed=seed)
            pool = np.asarray([row_of[n] for n in dev["train"] + dev["val"]])  # nothing is selected: one pool
            scored = {
                "dev": np.asarray([row_of[n] for n in dev["test"]]),
                "test": np.asarray([row_of[n] for n in split.subsets(fold)["test"]]),
            }
            runs.append(
                {
                    "seed": seed,
                    "fold": fold,
                    "pool": len(pool),
                    "scored": scored,
                    "rounds": _loop_arms(
                        found.vectors, label_of, groups, found.paths, pool, scored, threshold, seed * 10 + fold
                    ),
                }
            )
    out = {
        "protocol": "official 2-fold, dev carve-out scored (test fold scored once, apart)",
        "seeds": LOOP_SEEDS,
        "duplicate_distance": threshold,
        "calibration_pairs": pairs,
        "pool_sizes": [r["pool"] for r in runs],
        "classifier": "StandardScaler + LogisticRegression(C=1, "
        "class_weight=balanced) on frozen tf_efficientnet_lite0 ImageNet features, 224 px",
    }
    for where in ("dev", "test"):
        out[where] = _round_figures(runs, where, arms, label_of)
    out["labeled_per_class_last_round"] = {  # what each arm asked the experts to label, mean over seeds × folds
        arm: {
            CLASSES[c].folder: round(
                float(np.mean([np.sum(label_of[r["rounds"][ROUNDS][arm]["labeled"]] == c) for r in runs])), 1
            )
            for c in sorted(set(label_of[label_of >= 0]))
        }
        for arm in arms
    }
    return out


def _loop_arms(
    vectors: np.ndarray,
    label_of: np.ndarray,
    groups: dict[str, int],
    paths: list[str],
    pool: np.ndarray,
    scored: dict[str, np.ndarray],
    threshold: float,
    seed: int,
) -> list[dict]:
    """Per round (0 = the start set), each arm's predictions on the scored sets and how many images it labeled."""
    from hyperkvasir.label.queue import choose

    rng = np.random.default_rng(seed)
    start = rng.choice(pool, round(START * len(pool)), replace=False)
    step = round(STEP * len(pool))
    labeled = {"random": list(start), "to-label": list(start)}
    rounds = []
    for round_ in range(ROUNDS + 1):
        entry: dict = {"round": round_}
        for arm, rows in labeled.items():
            head = _fit(vectors[rows], label_of[rows])
            entry[arm] = {where: head(vectors[idx]).argmax(1) for where, idx in scored.items()}
            entry[arm]["labeled"] = np.asarray(rows)
            if round_ == ROUNDS:
                continue
            have = set(rows)
            rest = np.asarray([r for r in pool if r not in have])
            if arm == "random":
                rows += list(rng.choice(rest, step, replace=False))
                continue
            taken = {groups[paths[r]] for r in rows if paths[r] in groups}
            chosen, _, _ = choose(
                vectors[rest],
                vectors[rows],
                head(vectors[rest]),
                step,
                threshold=threshold,
                candidate_groups=[groups.get(paths[r]) for r in rest],
                labeled_groups=taken,
            )
            rows += [int(rest[c]) for c in chosen]
        rounds.append(entry)
    return rounds


def _fit(x: np.ndarray, y: np.ndarray):
    """A linear head on frozen features; returns a function giving 23-column probabilities (unseen classes 0)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from hyperkvasir.data.taxonomy import CLASSES

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000))
    model.fit(x, y)
    columns = model.classes_

    def probabilities(rows: np.ndarray) -> np.ndarray:
        full = np.zeros((len(rows), len(CLASSES)))
        full[:, columns] = model.predict_proba(rows)
        return full

    return probabilities


def _round_figures(runs: list[dict], where: str, arms: tuple[str, str], label_of: np.ndarray) -> list[dict]:
    """Per round: each arm's macro-F1 (mean over seeds × folds, 95 % interval from paired stratified resamples of
    the scored images) and to-label − random with its paired interval, its per-run differences and their
    bootstrap interval over runs."""
    from hyperkvasir.data.taxonomy import CLASSES
    from hyperkvasir.metrics.classification import classification_metrics
    from hyperkvasir.metrics.intervals import (
        fold_average,
        mean_interval,
        paired_difference,
        percentile_interval,
        resampled,
    )

    figures = []
    for round_ in range(ROUNDS + 1):
        draws: dict[str, list] = {arm: [] for arm in arms}
        points: dict[str, list] = {arm: [] for arm in arms}
        for n, run in enumerate(runs):
            truth = label_of[run["scored"][where]]
            for arm in arms:
                predicted = run["rounds"][round_][arm][where]
                # the same resample seed for both arms: the same resampled images, so the difference is paired
                draws[arm].append(resampled(truth, predicted, classes=len(CLASSES), seed=n))
                points[arm].append(classification_metrics(truth, predicted)["macro_f1"])
        averaged = {arm: fold_average(draws[arm], keys=("macro_f1",)) for arm in arms}
        per_run = [b - a for a, b in zip(points["random"], points["to-label"])]
        mean = {arm: {"macro_f1": float(np.mean(points[arm]))} for arm in arms}
        difference = paired_difference(
            averaged["random"], averaged["to-label"], mean["random"], mean["to-label"], keys=("macro_f1",)
        )["macro_f1"]
        figures.append(
            {
                "round": round_,
                "labeled_share": round(START + STEP * round_, 2),
                **{
                    arm: {
                        "macro_f1": round(mean[arm]["macro_f1"], 4),
                        "ci": [round(v, 4) for v in percentile_interval(averaged[arm]["macro_f1"])],
                    }
                    for arm in arms
                },
                "to_label_minus_random": {
                    "delta": round(difference["delta"], 4),
                    "ci": [round(v, 4) for v in difference["ci"]],
                    "p_better": round(difference["p_better"], 3),
                    "per_run": [round(d, 4) for d in per_run],
                    # the spread of selection and start sets, which resampling the
                    # scored images does not see: the 6 runs drawn with replacement
                    "runs_ci": [round(v, 4) for v in mean_interval(per_run)],
                },
            }
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--measure", default=",".join(MEASURES), help=f"comma-separated: {', '.join(MEASURES)}")
    args = parser.parse_args()
    measures = set(args.measure.split(","))
    if measures - set(MEASURES):
        raise SystemExit(f"--measure {args.measure}: choose from {', '.join(MEASURES)}")
    clean = _copy(args.real, args.work / "clean" / "hk")
    results: dict = {}
    if "embed" in measures:
        results["embed"] = embed_speed(clean)  # first: a cold cache on an otherwise idle process
    if "similar" in measures:
        results["similar"] = similar_figures(clean)
    if "issues" in measures:
        noisy = _copy(args.real, args.work / "noisy" / "hk")
        moves = plant_noise(noisy)
        results["benchmark_seconds"] = round(benchmark(noisy, args.work / "bench"), 1)
        results["label_issues"] = issues_figures(noisy, args.work / "bench", moves)
    if "loop" in measures:
        results["loop"] = loop_figures(clean)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
