from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
)

from hyperkvasir.metrics.classification import average_folds, classification_metrics


def _sklearn(y_true, y_pred) -> dict:
    out = {"accuracy": accuracy_score(y_true, y_pred), "mcc": matthews_corrcoef(y_true, y_pred)}
    for average in ("macro", "micro"):
        out[f"{average}_precision"] = precision_score(y_true, y_pred, average=average, zero_division=0)
        out[f"{average}_recall"] = recall_score(y_true, y_pred, average=average, zero_division=0)
        out[f"{average}_f1"] = f1_score(y_true, y_pred, average=average, zero_division=0)
    return out


CASES = {
    "random": (np.random.default_rng(0).integers(0, 23, 500), np.random.default_rng(1).integers(0, 23, 500)),
    "class never predicted": ([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 1]),
    "class absent from truth": ([0, 0, 1, 1], [0, 5, 1, 1]),
    "single class": ([4, 4, 4], [4, 4, 4]),
    "all wrong": ([1, 2, 3], [2, 3, 1]),
}


@pytest.mark.parametrize("case", CASES)
def test_metrics_equal_sklearn(case: str) -> None:
    y_true, y_pred = CASES[case]
    ours, reference = classification_metrics(y_true, y_pred), _sklearn(y_true, y_pred)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    assert ours["micro_f1"] == pytest.approx(ours["accuracy"])


def test_hand_computed_case_and_keys() -> None:
    m = classification_metrics([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 1])
    # per class: barretts P1 R1, bbps-0-1 P 0.5 R 1, bbps-2-3 P0 R0
    assert m["macro_precision"] == pytest.approx(0.5) and m["macro_recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["bbps-0-1"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["confusion_matrix"] == {
        "labels": ["barretts", "bbps-0-1", "bbps-2-3"],
        "matrix": [[2, 0, 0], [0, 2, 0], [0, 2, 0]],
    }
    assert set(m) >= {
        "n",
        "accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "micro_precision",
        "micro_recall",
        "micro_f1",
        "mcc",
        "per_class",
        "confusion_matrix",
    }


def test_labels_in_taxonomy_order_not_sorted_names() -> None:
    m = classification_metrics([17, 20, 18], [17, 20, 18])  # UC 0-1, UC grade 1, UC 1-2
    assert m["confusion_matrix"]["labels"] == [
        "ulcerative-colitis-grade-0-1",
        "ulcerative-colitis-grade-1-2",
        "ulcerative-colitis-grade-1",
    ]


def test_fold_average_is_arithmetic() -> None:
    a, b = classification_metrics([0, 1], [0, 1]), classification_metrics([0, 1], [1, 1])
    assert average_folds([a, b])["accuracy"] == pytest.approx(0.75)
