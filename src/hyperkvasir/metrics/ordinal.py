"""Ordinal metrics for the six ulcerative-colitis grades (``docs/intervals.md``).

The release files UC images under six labels, three Mayo grades and three in-between ones. They are placed on one
scale in this order, ``0-1 < 1 < 1-2 < 2 < 2-3 < 3``: an in-between label sits halfway between its neighbours, so
one **grade step** is one position on this scale (half a Mayo grade). Over the test images whose true class is a
UC grade and whose prediction is one too (``uc_images``; UC images predicted as another class are counted in
``uc_outside`` and are errors the paper's metrics already count):

* ``uc_qwk``: Cohen's kappa with quadratic weights over the six positions (scikit-learn's
  ``cohen_kappa_score(weights="quadratic")``, computed here from confusion matrices so it can be resampled);
* ``uc_mae``: the mean absolute error in grade steps;
* ``uc_within_one``: the share of predictions at most one grade step from the truth.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hyperkvasir.data.taxonomy import lookup
from hyperkvasir.metrics.intervals import RESAMPLES, percentile_interval, stratified_indices

UC_SCALE = tuple(
    lookup(name).index
    for name in (
        "ulcerative-colitis-grade-0-1",
        "ulcerative-colitis-grade-1",
        "ulcerative-colitis-grade-1-2",
        "ulcerative-colitis-grade-2",
        "ulcerative-colitis-grade-2-3",
        "ulcerative-colitis-grade-3",
    )
)
ORDINAL_KEYS = ("uc_qwk", "uc_mae", "uc_within_one")


def uc_positions(y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Positions on the UC scale of the images whose truth is a UC grade: (true positions, predicted positions,
    −1 where the prediction is not a grade)."""
    true_class, predicted_class = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    size = max(max(UC_SCALE), int(np.max(true_class, initial=0)), int(np.max(predicted_class, initial=0))) + 1
    position = np.full(size, -1, dtype=np.int64)
    position[list(UC_SCALE)] = np.arange(len(UC_SCALE))
    true, pred = position[true_class], position[predicted_class]
    graded = true >= 0
    return true[graded], pred[graded]


def _from_confusion(matrices: np.ndarray) -> dict[str, np.ndarray]:
    steps = len(UC_SCALE)
    distance = np.abs(np.arange(steps)[:, None] - np.arange(steps)[None, :]).astype(np.float64)
    n = matrices.sum((1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = matrices.sum(2)[:, :, None] * matrices.sum(1)[:, None, :] / n[:, None, None]
        weights = distance**2
        observed_cost, expected_cost = (matrices * weights).sum((1, 2)), (expected * weights).sum((1, 2))
        qwk = np.where(expected_cost > 0, 1 - observed_cost / expected_cost, 1.0)
        return {
            "uc_qwk": qwk,
            "uc_mae": (matrices * distance).sum((1, 2)) / n,
            "uc_within_one": (matrices * (distance <= 1)).sum((1, 2)) / n,
        }


def _confusions(true: np.ndarray, pred: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """(resamples, 6, 6) confusion matrices of the resampled UC images whose prediction is a grade."""
    steps = len(UC_SCALE)
    inside = pred[indices] >= 0
    codes = true[indices] * steps + np.maximum(pred[indices], 0) + (np.arange(len(indices)) * steps * steps)[:, None]
    return np.bincount(
        codes.ravel(), weights=inside.ravel().astype(np.float64), minlength=len(indices) * steps * steps
    ).reshape(len(indices), steps, steps)


def resampled_ordinal(
    y_true: Sequence[int], y_pred: Sequence[int], *, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, np.ndarray]:
    """Each ordinal metric over stratified resamples of the UC images (by true grade; the same images for two
    models on the same truth, so differences pair)."""
    true, pred = uc_positions(y_true, y_pred)
    return _from_confusion(_confusions(true, pred, stratified_indices(true, resamples, seed)))


def ordinal_point(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """The ordinal metrics of the scored images as they are (NaN without a UC image predicted as a grade)."""
    true, pred = uc_positions(y_true, y_pred)
    return {
        key: float(value[0])
        for key, value in _from_confusion(_confusions(true, pred, np.arange(len(true))[None, :])).items()
    }


def ordinal_metrics(y_true: Sequence[int], y_pred: Sequence[int], *, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """The UC ordinal metrics with stratified bootstrap intervals (``<key>_ci``); only the counts when the
    scored part holds no UC image predicted as a grade."""
    true, pred = uc_positions(y_true, y_pred)
    inside = int((pred >= 0).sum())
    if not inside:
        return {"uc_images": 0, "uc_outside": int(len(true))}
    point = ordinal_point(y_true, y_pred)
    draws = resampled_ordinal(y_true, y_pred, resamples=resamples, seed=seed)
    return {
        "uc_images": inside,
        "uc_outside": int(len(true)) - inside,
        **point,
        **{f"{key}_ci": percentile_interval(draws[key][np.isfinite(draws[key])]) for key in ORDINAL_KEYS},
    }


__all__ = ["UC_SCALE", "ORDINAL_KEYS", "ordinal_metrics", "ordinal_point", "uc_positions", "resampled_ordinal"]
