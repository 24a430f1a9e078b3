"""Paired comparison of two classification benchmarks on the same tree and images (``hyperkvasir compare``).

How a recipe is said to beat another: both benchmark folders must come from the same tree (provenance tree key),
scheme and protocol, with the same images scored in every (seed, fold); each resample draws the same images for
both (stratified bootstrap, ``docs/intervals.md``), averages each metric over folds and seeds as the benchmark
reports it, and the difference B − A gets a 95 % interval and the share of resamples in which B is better.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hyperkvasir.classify.evaluate import read_predictions, truth_from_release
from hyperkvasir.classify.results import read_results, run_folder_of
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.metrics.intervals import (
    RESAMPLES,
    fold_average,
    metrics_from_confusion,
    paired_difference,
    resampled,
)
from hyperkvasir.metrics.ordinal import ORDINAL_KEYS, ordinal_point, resampled_ordinal

# The headline metrics compared (higher is better), then the UC ordinal metrics (uc_mae: lower is better).
COMPARED = ("macro_f1", "micro_f1", "mcc", "accuracy", "macro_precision", "macro_recall")


def _model(results: dict, name: str | None, folder: Path) -> str:
    models = list(results["models"])
    if name is None and len(models) == 1:
        return models[0]
    if name not in models:
        raise HyperKvasirError(f"{folder}: holds models {', '.join(models)}; name one with --model-a/--model-b")
    return name


def _same_ground(a: dict, b: dict, folders: tuple[Path, Path]) -> None:
    """Refuse, with the reason, two benchmarks that did not score the same tree under the same protocol."""
    for key, what in (("scheme", "split scheme"), ("protocol", "protocol")):
        if a.get(key, "test") != b.get(key, "test"):
            raise DataError(
                f"{folders[0]} and {folders[1]}: different {what} ({a.get(key)} vs {b.get(key)}); "
                f"compare benchmarks run the same way"
            )
    keys = (a.get("provenance", {}).get("tree_key"), b.get("provenance", {}).get("tree_key"))
    if None in keys or keys[0] != keys[1]:
        raise DataError(
            f"{folders[0]} and {folders[1]}: different trees (tree keys {keys[0]} vs {keys[1]}); "
            f"a paired comparison needs the same images"
        )


def _runs(results: dict, model: str, folder: Path) -> dict[tuple[int, int], Path]:
    """(seed position, fold) → that run's predictions file."""
    name = "predictions-dev.csv" if results.get("protocol") == "dev" else "predictions-test.csv"
    out = {}
    seeds = sorted({run["seed"] for run in results["models"][model]["runs"]})
    for run in results["models"][model]["runs"]:
        path = run_folder_of(folder, run) / name
        if not path.is_file():
            raise DataError(f"{path}: missing; the benchmark in {folder} did not finish — rerun it")
        out[(seeds.index(run["seed"]), run["fold"])] = path
    return out


def compare_benchmarks(
    folder_a: str | Path,
    folder_b: str | Path,
    *,
    model_a: str | None = None,
    model_b: str | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict:
    """B − A for each compared metric (``{metric: {a, b, delta, ci, p_better}}``) and, under ``paired``, what
    was paired (folders, models, protocol, runs, images)."""
    folders = (Path(folder_a), Path(folder_b))
    a, b = (read_results(f) for f in folders)
    for folder, results in zip(folders, (a, b)):
        if "runs" not in next(iter(results["models"].values()), {}):
            raise DataError(
                f"{folder / 'results.json'}: written by an older toolkit without the per-run list; run "
                f"the benchmark again"
            )
    _same_ground(a, b, folders)
    names = (_model(a, model_a, folders[0]), _model(b, model_b, folders[1]))
    runs = (_runs(a, names[0], folders[0]), _runs(b, names[1], folders[1]))
    if set(runs[0]) != set(runs[1]):
        raise DataError(
            f"{folders[0]} and {folders[1]}: different seeds or folds ({sorted(runs[0])} vs "
            f"{sorted(runs[1])}); run both with the same --seeds"
        )
    truth = truth_from_release(a["root"])
    draws: tuple[list, list] = ([], [])
    points: tuple[list, list] = ([], [])
    images = 0
    for key in sorted(runs[0]):
        predicted = [read_predictions(r[key]) for r in runs]
        if set(predicted[0]) != set(predicted[1]):
            raise DataError(
                f"{runs[0][key]} and {runs[1][key]}: different images "
                f"({len(set(predicted[0]) ^ set(predicted[1]))} differ); compare runs on the same images"
            )
        files = sorted(predicted[0])
        unknown = [f for f in files if f not in truth]
        if unknown:
            raise DataError(f"{runs[0][key]}: {unknown[0]} is not a labeled image of {a['root']}")
        y_true = np.asarray([truth[f] for f in files])
        images += len(files) if key[0] == 0 else 0
        for side in (0, 1):
            y_pred = np.asarray([predicted[side][f] for f in files])
            draws[side].append(
                resampled(y_true, y_pred, classes=len(CLASSES), resamples=resamples, seed=seed + 7919 * key[1])
                | resampled_ordinal(y_true, y_pred, resamples=resamples, seed=seed + 7919 * key[1])
            )
            points[side].append(
                {
                    key: value[:1]
                    for key, value in metrics_from_confusion(
                        np.bincount(y_true * len(CLASSES) + y_pred, minlength=len(CLASSES) ** 2).reshape(
                            1, len(CLASSES), -1
                        )
                    ).items()
                }
                | {k: np.asarray([v]) for k, v in ordinal_point(y_true, y_pred).items()}
            )
    keys = (*COMPARED, *ORDINAL_KEYS)
    averaged = [fold_average(d, keys) for d in draws]
    point = [{k: float(v[0]) for k, v in fold_average(p, keys).items()} for p in points]
    paired = {
        "a": {"folder": str(folders[0]), "model": names[0]},
        "b": {"folder": str(folders[1]), "model": names[1]},
        "protocol": a.get("protocol", "test"),
        "scheme": a["scheme"],
        "runs": len(runs[0]),
        "images_per_seed": images,
        "resamples": resamples,
    }
    return {
        **paired_difference(averaged[0], averaged[1], point[0], point[1], keys=keys, lower_is_better=("uc_mae",)),
        "paired": paired,
    }


__all__ = ["compare_benchmarks", "COMPARED"]
