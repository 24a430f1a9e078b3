"""Bootstrap intervals for the classification metrics, and the paired comparison of two models
(``docs/intervals.md``).

A resample draws the test images of each true class with replacement, as many as the class holds (stratified
bootstrap: every class keeps its support, so a rare class never vanishes from a resample). Each resample's
metrics follow :mod:`hyperkvasir.metrics.classification` exactly (scikit-learn's definitions: macro over the
classes in truth ∪ predictions of the resample, multiclass MCC), computed from one confusion matrix per resample
so 1,000 resamples of 10,000 images take well under a second. The interval is the 2.5th–97.5th percentile of
the resampled values. A fold average resamples every fold independently and averages per resample; seeds are
averaged per resample too. A paired comparison scores both models on the same resampled images.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
# Headline metrics that get an interval (``<key>_ci`` beside ``<key>``).
INTERVAL_KEYS = (
    "accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "micro_precision",
    "micro_recall",
    "micro_f1",
    "mcc",
)


def stratified_indices(y_true: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) indices into ``y_true``: each class's images drawn with replacement, support kept."""
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, len(y_true)), dtype=np.int64)
    position = 0
    for label in np.unique(y_true):
        members = np.flatnonzero(y_true == label)
        out[:, position : position + len(members)] = rng.choice(members, size=(resamples, len(members)))
        position += len(members)
    return out


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, indices: np.ndarray, classes: int) -> np.ndarray:
    """(resamples, classes, classes) confusion matrices (rows: truth) of the resampled images."""
    resamples = len(indices)
    codes = y_true[indices] * classes + y_pred[indices] + (np.arange(resamples) * classes * classes)[:, None]
    return np.bincount(codes.ravel(), minlength=resamples * classes * classes).reshape(resamples, classes, classes)


def metrics_from_confusion(matrices: np.ndarray) -> dict[str, np.ndarray]:
    """The summary metrics and per-class F1 of each confusion matrix, with scikit-learn's definitions."""
    matrices = matrices.astype(np.float64)
    support, predicted = matrices.sum(2), matrices.sum(1)
    tp = np.diagonal(matrices, axis1=1, axis2=2)
    n = support.sum(1)
    present = (support + predicted) > 0  # labels = truth ∪ predictions of each resample
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    count = present.sum(1)
    accuracy = tp.sum(1) / n
    covariance = tp.sum(1) * n - (support * predicted).sum(1)
    spread = np.sqrt((n**2 - (predicted**2).sum(1)) * (n**2 - (support**2).sum(1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        mcc = np.where(spread > 0, covariance / spread, 0.0)
    return {
        "accuracy": accuracy,
        "macro_precision": (precision * present).sum(1) / count,
        "macro_recall": (recall * present).sum(1) / count,
        "macro_f1": (f1 * present).sum(1) / count,
        "micro_precision": accuracy,
        "micro_recall": accuracy,
        "micro_f1": accuracy,
        "mcc": mcc,
        "per_class_f1": f1,
    }


def resampled(
    y_true: Sequence[int], y_pred: Sequence[int], *, classes: int, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, np.ndarray]:
    """Each metric over ``resamples`` stratified resamples of one test set (arrays of shape (resamples,))."""
    true, predicted = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    indices = stratified_indices(true, resamples, seed)
    return metrics_from_confusion(confusion_matrices(true, predicted, indices, classes))


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail], axis=0)
    return [float(low), float(high)]


def mean_interval(values: Sequence[float], *, resamples: int = RESAMPLES, seed: int = 0) -> list[float]:
    """95 % bootstrap interval of the mean of per-image values (e.g. per-image Dice), images drawn with
    replacement."""
    sample = np.asarray(values, dtype=np.float64)
    draws = np.random.default_rng(seed).choice(sample, size=(resamples, len(sample))).mean(1)
    return percentile_interval(draws)


def intervals(draws: dict[str, np.ndarray], names: Sequence[str | None] | None = None) -> dict:
    """``<key>_ci`` for each headline metric, and ``per_class_f1_ci`` ({class name: [low, high]}) when ``names``
    gives the class of each column of the per-class F1 draws (only classes present in truth get one)."""
    out: dict[str, list[float] | dict[str, list[float]]] = {
        f"{key}_ci": percentile_interval(draws[key]) for key in INTERVAL_KEYS
    }
    if names is not None:
        out["per_class_f1_ci"] = {
            name: percentile_interval(draws["per_class_f1"][:, i]) for i, name in enumerate(names) if name is not None
        }
    return out


def fold_average(draws: list[dict[str, np.ndarray]], keys: Sequence[str] = INTERVAL_KEYS) -> dict[str, np.ndarray]:
    """Per resample, the arithmetic mean over folds (or seeds) of each metric: the draws of the averaged figure
    the paper reports (a fold where a metric is undefined, e.g. no UC image, is left out of its mean)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-undefined resamples stay NaN
        return {key: np.nanmean([d[key] for d in draws], axis=0) for key in keys}


def paired_difference(
    a: dict[str, np.ndarray],
    b: dict[str, np.ndarray],
    point_a: dict,
    point_b: dict,
    keys: Sequence[str] = INTERVAL_KEYS,
    lower_is_better: Sequence[str] = (),
) -> dict[str, dict]:
    """B − A for each metric: the difference of the point estimates, the interval of the resampled
    differences (both drawn on the same images; resamples where either is undefined are left out), and
    ``p_better``, the share of resamples in which B beats A (is lower, for ``lower_is_better`` keys)."""
    out = {}
    for key in keys:
        delta = b[key] - a[key]
        delta = delta[np.isfinite(delta)]
        better = -delta if key in lower_is_better else delta
        out[key] = {
            "a": float(point_a[key]),
            "b": float(point_b[key]),
            "delta": float(point_b[key] - point_a[key]),
            "ci": percentile_interval(delta) if len(delta) else [float("nan")] * 2,
            "p_better": float(np.mean(better > 0)) if len(delta) else float("nan"),
        }
    return out


__all__ = [
    "RESAMPLES",
    "INTERVAL_KEYS",
    "resampled",
    "mean_interval",
    "intervals",
    "fold_average",
    "paired_difference",
    "stratified_indices",
    "confusion_matrices",
    "metrics_from_confusion",
    "percentile_interval",
]
