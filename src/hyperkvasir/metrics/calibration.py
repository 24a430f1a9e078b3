"""Calibration of class probabilities: does a confidence of 0.8 mean right 80 % of the time?

Expected calibration error (Guo et al., ICML 2017): top-label confidences in 15 equal-width bins; the
count-weighted mean |accuracy − confidence| over bins, computed by torchmetrics
(``multiclass_calibration_error``, L1 norm). The reliability diagram plots accuracy against confidence per bin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BINS = 15


def calibration(probabilities: np.ndarray, labels: list[int] | np.ndarray, num_classes: int) -> dict:
    """``ece`` and the per-bin table (``lower``, ``upper``, ``count``, ``confidence``, ``accuracy``)."""
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    labels = np.asarray(labels)
    ece = float(
        multiclass_calibration_error(
            torch.as_tensor(probabilities, dtype=torch.float32),
            torch.as_tensor(labels),
            num_classes=num_classes,
            n_bins=BINS,
            norm="l1",
        )
    )
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    edges = np.linspace(0, 1, BINS + 1)
    table = []
    for lower, upper in zip(edges[:-1], edges[1:]):
        inside = (confidence > lower) & (confidence <= upper)
        if inside.any():
            table.append(
                {
                    "lower": float(lower),
                    "upper": float(upper),
                    "count": int(inside.sum()),
                    "confidence": float(confidence[inside].mean()),
                    "accuracy": float(correct[inside].mean()),
                }
            )
    return {"ece": ece, "bins": table}


def classwise_ece(probabilities: np.ndarray, labels: list[int] | np.ndarray, classes: list[int]) -> dict[int, float]:
    """Classwise expected calibration error (Kull et al., NeurIPS 2019) of each class in ``classes``: that
    class's predicted probability over every image in :data:`BINS` equal-width bins, the count-weighted mean
    |share of the class − mean probability| over bins. Unlike the top-label ECE it asks of every class's
    probability what it claims."""
    labels = np.asarray(labels)
    edges = np.linspace(0, 1, BINS + 1)
    out = {}
    for cls in classes:
        claimed, actual = probabilities[:, cls], (labels == cls).astype(np.float64)
        bins = np.clip(np.digitize(claimed, edges[1:-1], right=True), 0, BINS - 1)
        count = np.bincount(bins, minlength=BINS)
        gap = np.abs(
            np.bincount(bins, weights=actual, minlength=BINS) - np.bincount(bins, weights=claimed, minlength=BINS)
        )
        out[int(cls)] = float(gap.sum() / max(count.sum(), 1))
    return out


def plot_reliability(result: dict, path: str | Path, title: str = "") -> None:
    """Accuracy per confidence bin against the diagonal of perfect calibration, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hyperkvasir.outputs import atomic_write

    figure, axis = plt.subplots(figsize=(4.2, 4.2))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    for row in result["bins"]:
        axis.bar(
            row["lower"],
            row["accuracy"],
            width=row["upper"] - row["lower"],
            align="edge",
            alpha=0.7,
            color="tab:blue",
            edgecolor="white",
        )
    axis.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence (top class)",
        ylabel="accuracy",
        title=f"{title} ECE {result['ece']:.3f}".strip(),
    )
    figure.tight_layout()
    with atomic_write(Path(path)) as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)
