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

UC_SCALE = tuple(lookup(name).index for name in (
    "ulcerative-colitis-grade-0-1", "ulcerative-colitis-grade-1", "ulcerative-colitis-grade-1-2",
    "ulcerative-colitis-grade-2", "ulcerative-colitis-grade-2-3", "ulcerative-colitis-grade-3"))
ORDINAL_KEYS = ("uc_qwk", "uc_mae", "uc_within_one")


def uc_positions(y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[np.ndarray, np.ndarray, int]:
    """(true positions, predicted positions, UC images predicted outside the grades) on the UC scale."""
    position = {index: step for step, index in enumerate(UC_SCALE)}
    pairs = [(position[t], position.get(p)) for t, p in zip(y_true, y_pred) if t in position]
    inside = [(t, p) for t, p in pairs if p is not None]
    true, pred = (np.asarray(column, dtype=np.int64) for column in zip(*inside)) if inside else (
        np.zeros(0, np.int64), np.zeros(0, np.int64))
    return true, pred, len(pairs) - len(inside)


def _from_confusion(matrices: np.ndarray) -> dict[str, np.ndarray]:
    steps = len(UC_SCALE)
    distance = np.abs(np.arange(steps)[:, None] - np.arange(steps)[None, :]).astype(np.float64)
    matrices = matrices.astype(np.float64)
    n = matrices.sum((1, 2))
    expected = matrices.sum(2)[:, :, None] * matrices.sum(1)[:, None, :] / n[:, None, None]
    weights = distance**2
    observed_cost, expected_cost = (matrices * weights).sum((1, 2)), (expected * weights).sum((1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        qwk = np.where(expected_cost > 0, 1 - observed_cost / expected_cost, 1.0)
    return {"uc_qwk": qwk, "uc_mae": (matrices * distance).sum((1, 2)) / n,
            "uc_within_one": (matrices * (distance <= 1)).sum((1, 2)) / n}


def _confusions(true: np.ndarray, pred: np.ndarray, indices: np.ndarray) -> np.ndarray:
    steps = len(UC_SCALE)
    codes = true[indices] * steps + pred[indices] + (np.arange(len(indices)) * steps * steps)[:, None]
    return np.bincount(codes.ravel(), minlength=len(indices) * steps * steps).reshape(len(indices), steps, steps)


def ordinal_metrics(y_true: Sequence[int], y_pred: Sequence[int], *, resamples: int = RESAMPLES,
                    seed: int = 0) -> dict:
    """The UC ordinal metrics with stratified bootstrap intervals (``<key>_ci``); empty when the test part holds
    no UC image predicted as a grade."""
    true, pred, outside = uc_positions(y_true, y_pred)
    if not len(true):
        return {"uc_images": 0, "uc_outside": outside}
    point = {key: float(value[0]) for key, value in _from_confusion(_confusions(
        true, pred, np.arange(len(true))[None, :])).items()}
    draws = resampled_ordinal(true, pred, resamples=resamples, seed=seed)
    return {"uc_images": int(len(true)), "uc_outside": outside, **point,
            **{f"{key}_ci": percentile_interval(draws[key]) for key in ORDINAL_KEYS}}


def resampled_ordinal(true: np.ndarray, pred: np.ndarray, *, resamples: int = RESAMPLES,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """Each ordinal metric over stratified resamples of the UC images (positions from :func:`uc_positions`)."""
    return _from_confusion(_confusions(true, pred, stratified_indices(true, resamples, seed)))


__all__ = ["UC_SCALE", "ORDINAL_KEYS", "ordinal_metrics", "uc_positions", "resampled_ordinal"]
