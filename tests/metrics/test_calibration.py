from __future__ import annotations

import numpy as np

from hyperkvasir.metrics.calibration import calibration


def test_ece_is_the_count_weighted_gap_of_the_reliability_bins() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(400, 5)) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 5, 400)
    result = calibration(probabilities, labels, 5)
    manual = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in result["bins"]) / len(labels)
    assert abs(result["ece"] - manual) < 1e-5 and result["ece"] > 0.2  # random labels: badly calibrated
    perfect = np.eye(5)[labels]
    assert calibration(perfect, labels, 5)["ece"] < 1e-6
