"""Bootstrap intervals and ordinal UC metrics against scikit-learn's definitions."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import cohen_kappa_score, f1_score, matthews_corrcoef, precision_score, recall_score

from hyperkvasir.metrics.intervals import (
    confusion_matrices,
    fold_average,
    intervals,
    metrics_from_confusion,
    paired_difference,
    resampled,
)
from hyperkvasir.metrics.ordinal import UC_SCALE, ordinal_metrics, uc_positions


def _noisy(n: int, accuracy: float, seed: int, classes: int = 23) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.choice(classes, size=n, p=np.linspace(1, 3, classes) / np.linspace(1, 3, classes).sum())
    wrong = rng.random(n) > accuracy
    return truth, np.where(wrong, rng.integers(0, classes, n), truth)


def test_the_resampled_metrics_follow_scikit_learn_on_each_resample() -> None:
    truth, pred = _noisy(300, 0.7, 0)
    rng = np.random.default_rng(1)
    indices = rng.integers(0, len(truth), (5, len(truth)))
    draws = metrics_from_confusion(confusion_matrices(truth, pred, indices, 23))
    for r, index in enumerate(indices):
        t, p = truth[index], pred[index]
        labels = sorted(set(t) | set(p))
        assert np.isclose(draws["macro_f1"][r], f1_score(t, p, labels=labels, average="macro", zero_division=0))
        assert np.isclose(
            draws["macro_precision"][r], precision_score(t, p, labels=labels, average="macro", zero_division=0)
        )
        assert np.isclose(draws["macro_recall"][r], recall_score(t, p, labels=labels, average="macro", zero_division=0))
        assert np.isclose(draws["mcc"][r], matthews_corrcoef(t, p))
        assert np.isclose(draws["micro_f1"][r], f1_score(t, p, average="micro"))


def test_an_interval_holds_the_point_estimate_and_narrows_with_more_images() -> None:
    widths = []
    for n in (200, 2000):
        truth, pred = _noisy(n, 0.7, 2)
        found = intervals(resampled(truth, pred, classes=23, seed=0))
        point = f1_score(truth, pred, average="macro", labels=sorted(set(truth) | set(pred)), zero_division=0)
        low, high = found["macro_f1_ci"]
        assert low <= point <= high
        assert found["mcc_ci"][0] <= matthews_corrcoef(truth, pred) <= found["mcc_ci"][1]
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


def test_resamples_are_stratified_and_seeded() -> None:
    truth, pred = _noisy(100, 0.5, 3)
    first = resampled(truth, pred, classes=23, resamples=50, seed=4)
    assert np.array_equal(first["macro_f1"], resampled(truth, pred, classes=23, resamples=50, seed=4)["macro_f1"])
    assert not np.array_equal(first["macro_f1"], resampled(truth, pred, classes=23, resamples=50, seed=5)["macro_f1"])


def test_a_planted_difference_is_found_by_the_paired_comparison() -> None:
    truth, weak = _noisy(1500, 0.6, 6)
    rng = np.random.default_rng(7)
    strong = np.where(rng.random(len(truth)) < 0.5, truth, weak)  # half of the errors fixed
    a, b = (resampled(truth, p, classes=23, seed=0) for p in (weak, strong))
    point = {
        name: {"macro_f1": f1_score(truth, p, average="macro", zero_division=0), "mcc": matthews_corrcoef(truth, p)}
        for name, p in (("a", weak), ("b", strong))
    }
    result = paired_difference(a, b, point["a"], point["b"], keys=("macro_f1", "mcc"))
    assert result["macro_f1"]["delta"] > 0 and result["macro_f1"]["ci"][0] > 0 and result["macro_f1"]["p_better"] > 0.99
    same = paired_difference(a, a, point["a"], point["a"], keys=("mcc",))
    assert same["mcc"]["delta"] == 0 and same["mcc"]["ci"] == [0.0, 0.0] and same["mcc"]["p_better"] == 0


def test_a_fold_average_interval_is_narrower_than_one_folds() -> None:
    folds = [resampled(*_noisy(400, 0.7, seed), classes=23, seed=seed) for seed in (8, 9)]
    width = lambda draws: np.subtract(*np.percentile(draws["macro_f1"], [97.5, 2.5]))  # noqa: E731
    assert width(fold_average(folds)) < min(width(f) for f in folds)


def test_the_uc_ordinal_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(10)
    truth = rng.choice(UC_SCALE, 400)
    shift = rng.choice([-1, 0, 0, 0, 1, 2], 400)
    scale = list(UC_SCALE)
    pred = np.asarray([scale[int(np.clip(scale.index(t) + s, 0, 5))] for t, s in zip(truth, shift)])
    pred[:7] = 0  # UC images predicted as another class (class 0) are counted apart
    found = ordinal_metrics(truth, pred, resamples=200)
    true_pos, pred_pos = uc_positions(truth, pred)
    assert (pred_pos < 0).sum() == 7 and found["uc_images"] == 393 and found["uc_outside"] == 7
    true_pos, pred_pos = true_pos[pred_pos >= 0], pred_pos[pred_pos >= 0]
    reference = cohen_kappa_score(true_pos, pred_pos, weights="quadratic", labels=list(range(6)))
    assert np.isclose(found["uc_qwk"], reference)
    assert np.isclose(found["uc_mae"], np.abs(true_pos - pred_pos).mean())
    assert np.isclose(found["uc_within_one"], (np.abs(true_pos - pred_pos) <= 1).mean())
    assert found["uc_qwk_ci"][0] <= found["uc_qwk"] <= found["uc_qwk_ci"][1]
    assert ordinal_metrics([0, 1], [0, 1]) == {"uc_images": 0, "uc_outside": 0}


def test_the_uc_distance_penalty_charges_far_grades_more_and_ignores_other_classes() -> None:
    import torch

    from hyperkvasir.classify.losses import uc_distance_penalty

    truth = torch.tensor([UC_SCALE[1]])  # grade 1
    near, far = torch.zeros(1, 23), torch.zeros(1, 23)
    near[0, UC_SCALE[2]] = far[0, UC_SCALE[5]] = 5.0  # most mass on grade 1-2 (one step) or grade 3 (four steps)
    assert uc_distance_penalty(far, truth) > 3 * uc_distance_penalty(near, truth) > 0
    assert float(uc_distance_penalty(far, torch.tensor([0]))) == 0.0


def test_segmentation_dice_and_iou_carry_intervals_around_the_per_image_mean() -> None:
    from hyperkvasir.metrics.segmentation import SegmentationMetrics

    rng = np.random.default_rng(11)
    metrics = SegmentationMetrics()
    for _ in range(30):
        truth = np.zeros((32, 32), np.uint8)
        truth[8:24, 8:24] = 255
        metrics.add(np.clip(truth * rng.uniform(0.3, 1.0) + rng.integers(0, 90, truth.shape), 0, 255), truth)
    found = metrics.results()
    for key in ("dice", "iou"):
        assert found[f"{key}_ci"][0] <= found[key] <= found[f"{key}_ci"][1] < 1.0


def test_calibration_after_the_decision_rule_describes_the_decision() -> None:
    from hyperkvasir.classify.decision import decide, decision_probabilities
    from hyperkvasir.metrics.calibration import calibration

    rng = np.random.default_rng(12)
    truth = rng.integers(0, 3, 300)
    probabilities = rng.dirichlet(np.ones(3), 300)
    probabilities[np.arange(300), truth] += 0.5
    probabilities /= probabilities.sum(1, keepdims=True)
    offsets = np.asarray([0.0, 0.0, 2.5])  # the rule pushes many decisions to class 2
    after = decision_probabilities(probabilities, offsets)
    assert (decide(probabilities, offsets) == after.argmax(1)).all()
    assert (decide(probabilities, offsets) != probabilities.argmax(1)).any()
    assert calibration(after, truth, 3)["ece"] != calibration(probabilities, truth, 3)["ece"]
    assert np.allclose(decision_probabilities(probabilities, None), probabilities)


def test_classwise_ece_is_zero_for_honest_probabilities_and_large_for_overconfident_ones() -> None:
    from hyperkvasir.metrics.calibration import classwise_ece

    rng = np.random.default_rng(13)
    claimed = rng.uniform(0, 1, 20000)
    truth = (rng.uniform(0, 1, 20000) < claimed).astype(int)  # class 1 occurs as often as claimed
    honest = np.stack([1 - claimed, claimed], 1)
    assert classwise_ece(honest, truth, [0, 1])[1] < 0.02
    overconfident = np.stack([1 - (claimed > 0.5), (claimed > 0.5)], 1).astype(float)
    assert classwise_ece(overconfident, truth, [0, 1])[1] > 0.2
