"""A classification benchmark's results: each model summarised over folds and seeds (means, 95 % intervals,
per-class F1, UC ordinal metrics), ``results.md`` beside Table 3 of Borgli et al. 2020, and a finished
benchmark's ``results.json`` read back (by ``compare``, ``label issues`` and the report)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from hyperkvasir.classify.config import ClassifyConfig, scored_part
from hyperkvasir.classify.evaluate import read_predictions, truth_from_release
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.errors import HyperKvasirError, ReleaseFormatError
from hyperkvasir.metrics.classification import SUMMARY_KEYS, average_folds
from hyperkvasir.metrics.intervals import INTERVAL_KEYS, fold_average, percentile_interval, resampled
from hyperkvasir.metrics.ordinal import ORDINAL_KEYS, resampled_ordinal, uc_positions

# Table 3 of the paper: averages over the two folds of the official 2-fold split (dataset.md §3.2), with the
# checkpoint chosen on the test fold. Columns: macro P, R, F1, micro P, R, F1, MCC.
PAPER_TABLE3: dict[str, tuple[float | None, ...]] = {
    "Pre-Trained ResNet-50": (0.589, 0.536, 0.530, 0.839, 0.839, 0.839, 0.826),
    "Pre-Trained ResNet-152": (0.639, 0.605, 0.606, 0.906, 0.906, 0.906, 0.898),
    "Pre-Trained DenseNet-161": (0.640, 0.616, 0.619, 0.907, 0.907, 0.907, 0.899),
    "Averaged ResNet-152 + DenseNet-161": (0.633, 0.615, 0.617, 0.910, 0.910, 0.910, 0.902),
    "ResNet-152 + DenseNet-161 + MLP": (0.612, 0.606, 0.605, 0.909, 0.909, 0.909, 0.902),
    "Random Guessing": (0.044, 0.038, 0.034, 0.044, 0.044, 0.044, 0.000),
    "Majority Class": (0.004, 0.043, 0.008, 0.108, 0.108, 0.108, None),
}
TABLE3_COLUMNS = ("macro_precision", "macro_recall", "macro_f1", "micro_precision", "micro_recall", "micro_f1", "mcc")


def summarise(root: Path, out: Path, runs: list[dict], per_seed: list[list[dict]], base: ClassifyConfig) -> dict:
    """One model's results: the mean over folds (and seeds) of each headline metric with its 95 % interval
    (stratified bootstrap of every fold's scored images, averaged per resample over folds and seeds), the
    standard deviation over seeds, each seed's fold average and fold rows, per-class F1 with intervals, the UC
    ordinal metrics, and the run folders."""
    truth = truth_from_release(root)
    scored = scored_part(base)
    seeds = sorted({run["seed"] for run in runs})
    draws_by_seed: list[list[dict]] = [[] for _ in seeds]
    ordinal_by_seed: list[list[dict]] = [[] for _ in seeds]
    for run in runs:
        predicted = read_predictions(out / run["run"] / f"predictions-{scored}.csv")
        files = sorted(predicted)
        y_true, y_pred = [truth[f] for f in files], [predicted[f] for f in files]
        resample_seed = base.seed + 7919 * run["fold"]
        draws = resampled(y_true, y_pred, classes=len(CLASSES), seed=resample_seed)
        draws_by_seed[seeds.index(run["seed"])].append(draws)
        if (uc_positions(y_true, y_pred)[1] >= 0).any():
            ordinal_by_seed[seeds.index(run["seed"])].append(resampled_ordinal(y_true, y_pred, seed=resample_seed))
    averaged = fold_average([fold_average(d) for d in draws_by_seed])
    seed_means = [average_folds(folds) for folds in per_seed]
    mean: dict = {key: float(np.mean([m[key] for m in seed_means])) for key in SUMMARY_KEYS}
    mean |= {f"{key}_ci": percentile_interval(averaged[key]) for key in INTERVAL_KEYS}
    mean |= {"n": seed_means[0]["n"], "folds": seed_means[0]["folds"], "seeds": len(seeds)}
    mean |= _ordinal_mean(per_seed, ordinal_by_seed)
    summary = {
        "mean": mean,
        "per_class_f1": per_class_f1(
            [f for folds in per_seed for f in folds], [d for draws in draws_by_seed for d in draws]
        ),
        "folds": [_fold_row(f) for f in per_seed[0]],
        "runs": runs,
        "per_seed": [
            {"seed": seed, "mean": m, "folds": [_fold_row(f) for f in folds]}
            for seed, m, folds in zip(seeds, seed_means, per_seed)
        ],
        "weights": sorted({str(f.get("weights_from")) for folds in per_seed for f in folds}),
    }
    if len(seeds) > 1:
        summary["std"] = {key: float(np.std([m[key] for m in seed_means], ddof=1)) for key in SUMMARY_KEYS}
    return summary


def _fold_row(fold: dict) -> dict:
    keys = (
        *SUMMARY_KEYS,
        *(f"{k}_ci" for k in INTERVAL_KEYS),
        *ORDINAL_KEYS,
        "n",
        "best_epoch",
        "weights_from",
        "fold",
        "protocol",
        "provenance",
        "excluded_label_conflicts",
    )
    return {key: fold[key] for key in keys if key in fold}


def _ordinal_mean(per_seed: list[list[dict]], draws_by_seed: list[list[dict]]) -> dict:
    """The UC ordinal metrics averaged over folds and seeds, with intervals (absent without UC images)."""
    rows = [f for folds in per_seed for f in folds if f.get("uc_images")]
    if not rows or not all(draws_by_seed):
        return {}
    averaged = fold_average([fold_average(draws, ORDINAL_KEYS) for draws in draws_by_seed], ORDINAL_KEYS)
    return {
        **{key: float(np.mean([r[key] for r in rows])) for key in ORDINAL_KEYS},
        **{f"{key}_ci": percentile_interval(averaged[key][np.isfinite(averaged[key])]) for key in ORDINAL_KEYS},
    }


def per_class_f1(folds: list[dict], draws: list[dict] | None = None) -> dict[str, dict]:
    """Per class: F1 averaged over the runs whose scored part holds the class, its scored images in all, and
    (given each run's bootstrap ``draws``) the 95 % interval of that average."""
    table: dict[str, dict] = {}
    for cls in CLASSES:
        present = [
            (i, f["per_class"][cls.folder])
            for i, f in enumerate(folds)
            if f.get("per_class", {}).get(cls.folder, {}).get("support")
        ]
        if present:
            table[cls.folder] = {
                "f1": float(np.mean([p["f1"] for _, p in present])),
                "support": int(sum(p["support"] for _, p in present)),
            }
            if draws:
                table[cls.folder]["f1_ci"] = percentile_interval(
                    np.mean([draws[i]["per_class_f1"][:, cls.index] for i, _ in present], axis=0)
                )
    return table


def results_markdown(results: dict) -> str:
    """A table of our results (mean over folds and seeds, 95 % intervals in brackets) beside Table 3 of the
    paper, each row labelled with its protocol; then per-class F1, the UC ordinal metrics, seeds, leakage and
    provenance."""
    dev = results.get("protocol") == "dev"
    header = "| Method | Protocol | Macro P | Macro R | Macro F1 | Micro P | Micro R | Micro F1 | MCC |"
    lines = [
        f"# Classification benchmark ({results['scheme']}, metrics averaged over folds"
        f"{' and seeds' if results.get('seeds', 1) > 1 else ''})",
        "",
        header,
        "|" + "---|" * 9,
    ]

    def fmt(values) -> str:
        return " | ".join("N/A" if v is None else f"{v:.3f}" for v in values)

    def with_interval(mean: dict) -> str:
        return " | ".join(
            f"{mean[k]:.3f} [{mean[k + '_ci'][0]:.3f}, {mean[k + '_ci'][1]:.3f}]"
            if f"{k}_ci" in mean
            else f"{mean[k]:.3f}"
            for k in TABLE3_COLUMNS
        )

    config = results["config"]
    scored = (
        (
            "dev: scored on the validation carve-out of the training folds, selected on a second carve-out, "
            "test fold never opened"
        )
        if dev
        else "test fold scored once, selected on the validation carve-out"
    )
    ours = (
        f"this tree, {config['input_size']} px, {config['epochs']} epochs, {results.get('seeds', 1)} seed(s); {scored}"
    )
    for name, result in results["models"].items():
        lines.append(f"| **{name}** | {ours} | {with_interval(result['mean'])} |")
    majority = fmt(results["majority_class"][k] for k in TABLE3_COLUMNS)
    lines.append(f"| Majority class | this tree, test fold | {majority} |")
    for name, values in PAPER_TABLE3.items():
        lines.append(f"| {name} | paper Table 3: full release, 224 px, selected on the test fold | {fmt(values)} |")
    lines += [
        "",
        "Intervals: 95 % stratified bootstrap over the scored images (1,000 resamples, averaged over folds "
        "and seeds per resample; docs/intervals.md). Say a recipe beats another only with "
        "`hyperkvasir compare`.",
    ]
    lines += _seed_lines(results) + _ordinal_lines(results) + _per_class_table(results)
    if results.get("shortcuts"):
        corner = results["shortcuts"]["corner_probe"]
        masked = "with corners masked (`mask_corners`)" if config.get("mask_corners") else "on unmasked frames"
        lines += [
            "",
            f"Shortcut probe (`hyperkvasir shortcuts`): the lower-left corner alone gives macro-F1 "
            f"{corner['macro_f1']:.3f} and MCC {corner['mcc']:.3f} on these folds; the models above were "
            f"trained {masked}.",
        ]
    leak = results["leakage"]
    lines += [
        "",
        f"Leakage in this tree (audit): {leak['fold2'].get('pairs', 0)} confirmed duplicate pairs "
        f"({leak['fold2']['images']} images) lie across the two folds of the official 2-fold split; "
        f"{leak['fold5'].get('pairs', 0)} across folds of the 5-fold split.",
        "The paper's rows are not comparable with a synthetic or partial tree; they are the targets on the "
        "full release.",
    ]
    lines += _provenance_lines(results)
    return "\n".join(lines) + "\n"


def _seed_lines(results: dict) -> list[str]:
    lines = []
    for name, result in results["models"].items():
        if "std" in result:
            per_seed = ", ".join(f"seed {row['seed']}: {row['mean']['macro_f1']:.3f}" for row in result["per_seed"])
            lines.append(
                f"{name}: macro-F1 standard deviation over {len(result['per_seed'])} seeds "
                f"{result['std']['macro_f1']:.3f} ({per_seed}); MCC sd {result['std']['mcc']:.3f}."
            )
    return ["", *lines] if lines else []


def _ordinal_lines(results: dict) -> list[str]:
    rows = [(name, r["mean"]) for name, r in results["models"].items() if "uc_qwk" in r["mean"]]
    if not rows:
        return []
    lines = [
        "",
        "Ulcerative-colitis grades as one ordinal scale (0-1 < 1 < 1-2 < 2 < 2-3 < 3; one step = one "
        "position, docs/intervals.md), over UC images predicted as a grade:",
        "",
        "| model | quadratic weighted kappa | mean abs. error (steps) | within one step |",
        "|---|---|---|---|",
    ]
    for name, mean in rows:
        cells = " | ".join(
            f"{mean[k]:.3f} [{mean[k + '_ci'][0]:.3f}, {mean[k + '_ci'][1]:.3f}]"
            for k in ("uc_qwk", "uc_mae", "uc_within_one")
        )
        lines.append(f"| {name} | {cells} |")
    return lines


def _provenance_lines(results: dict) -> list[str]:
    record = results.get("provenance", {})
    config = results["config"]
    weights = "; ".join(f"{name}: {', '.join(r.get('weights', []))}" for name, r in results["models"].items())
    random = any("random" in r.get("weights", []) for r in results["models"].values())
    model: dict = next(iter(results["models"].values()), {})
    first = model.get("folds", [{}])[0].get("provenance", {})
    batch = (
        f"per-device batch {config['batch_size']} × {first.get('world_size', 1)} processes = effective batch "
        f"{first.get('effective_batch', config['batch_size'])} (the learning rate is not scaled with it)"
    )
    return [
        "",
        f"Provenance: hyperkvasir {record.get('version')} ({record.get('git_revision') or 'installed'}), "
        f"tree key {str(record.get('tree_key'))[:12]}, config hash {record.get('config_hash')}; weights "
        f"loaded — {weights}"
        + (" (random start: not comparable with the paper's pre-trained rows)" if random else "")
        + f"; {batch}; "
        f"conflicts {'excluded from training and validation' if config.get('exclude_conflicts') else 'kept'}"
        + (
            f"; reviewed labels ({config['reviews']}) applied to training and validation"
            + (
                " AND to the test labels (--reviews-on-test: not the released truth)"
                if config.get("reviews_on_test")
                else ""
            )
            if config.get("reviews")
            else ""
        )
        + ".",
    ]


def _per_class_table(results: dict) -> list[str]:
    """Per-class F1 of every model side by side (rare classes first) with intervals, so a recipe's gain is
    visible where the paper lost it, and so is its noise."""
    models = {name: r["per_class_f1"] for name, r in results["models"].items() if r.get("per_class_f1")}
    if not models:
        return []
    support = {cls: v["support"] for table in models.values() for cls, v in table.items()}
    lines = [
        "",
        "Per-class F1 (averaged over the runs whose scored part holds the class; rarest first):",
        "",
        "| class | scored images | " + " | ".join(models) + " |",
        "|---|---|" + "---|" * len(models),
    ]

    def cell(row: dict | None) -> str:
        if row is None:
            return "–"
        interval = f" [{row['f1_ci'][0]:.2f}, {row['f1_ci'][1]:.2f}]" if "f1_ci" in row else ""
        return f"{row['f1']:.3f}{interval}"

    for cls in sorted(support, key=lambda c: (support[c], c)):
        lines.append(f"| {cls} | {support[cls]} | {' | '.join(cell(models[m].get(cls)) for m in models)} |")
    return lines


def read_results(results_dir: Path) -> dict:
    """A finished benchmark's ``results.json``, refused in one line when absent, unreadable, not a benchmark's,
    or written before runs were listed."""
    path = results_dir / "results.json"
    if not path.is_file():
        raise HyperKvasirError(
            f"--results {results_dir}: no results.json there; pass the --out folder of a finished "
            f"`hyperkvasir benchmark`"
        )
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        results = None
    if not isinstance(results, dict) or not isinstance(results.get("models"), dict):
        raise ReleaseFormatError(path, "not a benchmark's results.json; rerun the benchmark")
    return results


def run_folder_of(results_dir: Path, run: dict) -> Path:
    """A run folder results.json names, refused unless it lies inside the results folder (links resolved)."""
    folder = results_dir / str(run.get("run", "")) if isinstance(run, dict) else results_dir
    real, inside = os.path.realpath(folder), os.path.realpath(results_dir)
    if real == inside or os.path.commonpath([real, inside]) != inside:
        raise ReleaseFormatError(
            results_dir / "results.json", f"run {run!r} is not a folder inside {results_dir}; rerun the benchmark"
        )
    return folder


__all__ = ["PAPER_TABLE3", "TABLE3_COLUMNS", "read_results", "results_markdown", "run_folder_of", "summarise"]
