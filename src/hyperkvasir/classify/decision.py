"""The decision rule: per-class offsets added to the log-probabilities before the argmax, chosen to maximise
macro-F1 on the validation carve-out of the training folds — never on a test fold.

Rare classes rarely win an argmax under a prior learnt from 191:1 imbalance; an offset per class moves each
decision boundary to where validation macro-F1 is best (coordinate ascent over a grid, offsets closest to 0 win
ties, classes absent from validation keep 0), as long as validation accuracy stays within
:data:`ACCURACY_SLACK` of the plain argmax's. The offsets are stored in the checkpoint and applied to test
predictions and by ``predict``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

GRID = np.round(np.arange(-3.0, 3.01, 0.25), 2)
ROUNDS = 3
# An offset may not cost more than this much validation accuracy (micro-F1) against the plain argmax: the rule
# buys rare-class recall with a few common-class errors, not with many.
ACCURACY_SLACK = 0.01


def decide(probabilities: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """Class index per row: argmax of log-probability plus offset (plain argmax without offsets)."""
    if offsets is None:
        return probabilities.argmax(1)
    return (np.log(np.clip(probabilities, 1e-12, None)) + offsets).argmax(1)


def decision_probabilities(probabilities: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """The probabilities of the decision actually reported: softmax of log-probability plus offset (the
    probabilities themselves without offsets), so calibration describes the rule that decides."""
    if offsets is None:
        return probabilities
    shifted = np.log(np.clip(probabilities, 1e-12, None)) + offsets
    shifted = np.exp(shifted - shifted.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def _macro_f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    return float(f1_score(labels, predictions, average="macro", zero_division=0))


def fit_offsets(probabilities: np.ndarray, labels: list[int] | np.ndarray) -> tuple[np.ndarray, float, float]:
    """(offsets, validation macro-F1 before, after) from validation probabilities and labels."""
    labels = np.asarray(labels)
    offsets = np.zeros(probabilities.shape[1])
    log_p = np.log(np.clip(probabilities, 1e-12, None))
    before = best = _macro_f1(labels, log_p.argmax(1))
    floor = float((log_p.argmax(1) == labels).mean()) - ACCURACY_SLACK
    order = sorted(GRID, key=abs)  # ties keep the offset nearest 0
    for _ in range(ROUNDS):
        changed = False
        for cls in np.unique(labels):
            current = offsets[cls]
            for value in order:
                offsets[cls] = value
                decided = (log_p + offsets).argmax(1)
                score = _macro_f1(labels, decided)
                if score > best + 1e-12 and (decided == labels).mean() >= floor:
                    best, current, changed = score, value, True
            offsets[cls] = current
        if not changed:
            break
    return offsets, before, best


def decision_rule(probabilities: np.ndarray, labels: list[int] | np.ndarray) -> dict:
    """The rule a run stores in its ``best.ckpt`` (``decision_rule``): offsets fitted on the validation carve-out's
    probabilities and labels, with validation macro-F1 before and after."""
    offsets, before, after = fit_offsets(probabilities, labels)
    return {
        "offsets": [float(v) for v in offsets],
        "fitted_on": "validation carve-out of the training folds",
        "val_images": len(labels),
        "val_macro_f1_argmax": before,
        "val_macro_f1_with_offsets": after,
    }


def rule_offsets(checkpoint: dict) -> np.ndarray | None:
    """The offsets of a checkpoint's decision rule, None when its run fitted none (plain argmax)."""
    rule = checkpoint.get("decision_rule")
    return np.asarray(rule["offsets"]) if rule else None
