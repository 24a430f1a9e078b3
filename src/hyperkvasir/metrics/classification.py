"""The paper's classification metrics with scikit-learn's definitions (dataset.md §4).

Labels are fixed to the classes present in truth ∪ predictions, in taxonomy (paper) order: this is what the
paper's ``test_model()`` computed per fold with ``sklearn.metrics`` (macro over the classes seen). Micro
precision = recall = F1 = accuracy for single-label multiclass. MCC is sklearn's multiclass ``matthews_corrcoef``
(the Gorodkin R_K statistic the paper calls "MCC (R_K)"). Folds are averaged arithmetically, as the paper did.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    matthews_corrcoef,
    precision_recall_fscore_support,
)

from hyperkvasir.data.taxonomy import CLASSES

SUMMARY_KEYS = (
    "accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "micro_precision",
    "micro_recall",
    "micro_f1",
    "mcc",
)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], names: Sequence[str] | None = None) -> dict:
    """Metrics of one fold; ``y_true``/``y_pred`` are class indices (taxonomy order, 0–22, unless ``names``
    gives another class list, e.g. the video classes)."""
    names = list(names) if names is not None else [c.folder for c in CLASSES]
    true, predicted = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if len(true) == 0 or len(true) != len(predicted):
        raise ValueError(f"need equally long, non-empty label lists (got {len(true)} and {len(predicted)})")
    labels = sorted(set(true.tolist()) | set(predicted.tolist()))
    out: dict = {"n": int(len(true)), "accuracy": float(accuracy_score(true, predicted))}
    for average in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(true, predicted, labels=labels, average=average, zero_division=0)
        out |= {f"{average}_precision": float(p), f"{average}_recall": float(r), f"{average}_f1": float(f)}
    out["mcc"] = float(matthews_corrcoef(true, predicted))
    p, r, f, s = precision_recall_fscore_support(true, predicted, labels=labels, average=None, zero_division=0)
    out["per_class"] = {
        names[label]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, label in enumerate(labels)
    }
    out["confusion_matrix"] = {
        "labels": [names[label] for label in labels],
        "matrix": confusion_matrix(true, predicted, labels=labels).tolist(),
    }
    return out


def scored_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], *, seed: int = 0, resamples: int | None = None
) -> dict:
    """:func:`classification_metrics` of a scored part with a 95 % stratified-bootstrap interval beside each
    headline metric (``<key>_ci``) and each class's F1 (``per_class[c]["f1_ci"]``), and the UC ordinal metrics
    (``metrics/intervals.py``, ``metrics/ordinal.py``)."""
    from hyperkvasir.metrics.intervals import RESAMPLES, intervals, resampled
    from hyperkvasir.metrics.ordinal import ordinal_metrics

    resamples = resamples or RESAMPLES
    metrics = classification_metrics(y_true, y_pred)
    names = [c.folder for c in CLASSES]
    present = set(np.asarray(y_true).tolist())
    found = intervals(
        resampled(y_true, y_pred, classes=len(CLASSES), resamples=resamples, seed=seed),
        names=[name if i in present else None for i, name in enumerate(names)],
    )
    for name, interval in found.pop("per_class_f1_ci").items():
        metrics["per_class"][name]["f1_ci"] = interval
    return metrics | found | ordinal_metrics(y_true, y_pred, resamples=resamples, seed=seed)


def average_folds(folds: Sequence[dict]) -> dict:
    """Arithmetic mean of the summary metrics over folds (the paper's "average of the two splits")."""
    return {key: float(np.mean([fold[key] for fold in folds])) for key in SUMMARY_KEYS} | {
        "n": int(sum(fold["n"] for fold in folds)),
        "folds": len(folds),
    }


def plot_confusion_matrix(metrics: dict, path, title: str = "") -> None:
    """PNG of the confusion matrix with the paper's letters A–W on the axes (row-normalised colours)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyperkvasir.data.taxonomy import lookup
    from hyperkvasir.errors import HyperKvasirError
    from hyperkvasir.outputs import atomic_write

    labels = metrics["confusion_matrix"]["labels"]
    matrix = np.asarray(metrics["confusion_matrix"]["matrix"], dtype=float)
    share = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)

    def letter(name: str) -> str:  # the paper's letters for the 23 image classes, numbers otherwise
        try:
            return lookup(name).letter
        except HyperKvasirError:
            return str(labels.index(name))

    letters = [letter(name) for name in labels]
    fig, ax = plt.subplots(figsize=(0.38 * len(labels) + 2.5, 0.38 * len(labels) + 2))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), letters)
    ax.set_yticks(range(len(labels)), [f"{letter} {name}" for letter, name in zip(letters, labels)], fontsize=7)
    for i, j in zip(*np.nonzero(matrix)):
        ax.text(
            j,
            i,
            str(int(matrix[i, j])),
            ha="center",
            va="center",
            fontsize=6,
            color="white" if share[i, j] > 0.5 else "black",
        )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"n = {metrics['n']}, macro F1 = {metrics['macro_f1']:.3f}")
    fig.tight_layout()
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
