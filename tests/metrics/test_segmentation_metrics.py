from __future__ import annotations

import numpy as np
import py_sod_metrics as sod
import pytest

from hyperkvasir.metrics.segmentation import METRIC_KEYS, segmentation_metrics


def _normalised(pred: np.ndarray) -> np.ndarray:
    """The toolbox's preparation: /255, then min-max per image when not constant."""
    p = pred.astype(np.float64) / 255
    return (p - p.min()) / (p.max() - p.min()) if p.max() != p.min() else p


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0  # the toolbox's zero-division convention


def _reference(pairs) -> dict:
    """Binary metrics written out by hand (raw probability > 0.5; the 256-threshold curve on the toolbox's
    normalised map); structure/enhanced/weighted/MAE from pysodmetrics' own classes."""
    per_image, pooled, curves = [], np.zeros(3), []
    s, e, w, m = sod.Smeasure(), sod.Emeasure(), sod.WeightedFmeasure(), sod.MAE()
    for pred, truth in pairs:
        p, t = _normalised(pred), truth > 128
        b = pred.astype(np.float64) / 255 > 0.5
        tp, fp, fn = (b & t).sum(), (b & ~t).sum(), (~b & t).sum()
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        per_image.append([_ratio(2 * tp, 2 * tp + fp + fn), _ratio(tp, tp + fp + fn), precision, recall,
                          _ratio(5 * precision * recall, 4 * precision + recall)])
        pooled += [tp, fp, fn]
        q = (p * 255).astype(np.uint8)
        curve = []
        for threshold in range(255, -1, -1):
            bt = q >= threshold
            tp_, fp_, fn_ = (bt & t).sum(), (bt & ~t).sum(), (~bt & t).sum()
            curve.append([_ratio(2 * tp_, 2 * tp_ + fp_ + fn_), _ratio(tp_, tp_ + fp_ + fn_)])
        curves.append(curve)
        for metric in (s, e, w, m):
            metric.step(pred, truth)
    mean = np.mean(per_image, axis=0)
    tp, fp, fn = pooled
    curve = np.mean(curves, axis=0).mean(0)
    em = e.get_results()["em"]
    return {"dice": mean[0], "iou": mean[1], "precision": mean[2], "recall": mean[3], "f2": mean[4],
            "dice_pooled": _ratio(2 * tp, 2 * tp + fp + fn), "iou_pooled": _ratio(tp, tp + fp + fn),
            "mdice_256": curve[0], "miou_256": curve[1], "s_measure": s.get_results()["sm"],
            "e_measure_mean": em["curve"].mean(), "e_measure_max": em["curve"].max(),
            "e_measure_adaptive": em["adp"], "weighted_f": w.get_results()["wfm"], "mae": m.get_results()["mae"]}


def _blob(shape=(40, 50), centre=(20, 25), radius=9) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) <= radius**2).astype(np.uint8) * 255


rng = np.random.default_rng(7)
EMPTY, FULL = np.zeros((40, 50), np.uint8), np.full((40, 50), 255, np.uint8)
ONE_PIXEL = EMPTY.copy()
ONE_PIXEL[10, 10] = 255
UNSURE = (_blob(radius=12) // 255 * 120 + 5).astype(np.uint8)  # right shape, every probability below 0.5
SOFT = np.clip(_blob(radius=12).astype(float) * 0.8 + rng.normal(0, 30, (40, 50)), 0, 255).astype(np.uint8)
CASES = {
    "random": [((rng.random((40, 50)) * 255).astype(np.uint8), _blob()) for _ in range(3)],
    "soft prediction": [(SOFT, _blob())],
    "empty truth": [(SOFT, EMPTY)],
    "empty prediction": [(EMPTY, _blob())],
    "empty both": [(EMPTY, EMPTY)],
    "full image": [(FULL, FULL), (FULL, _blob())],
    "one pixel": [(ONE_PIXEL, ONE_PIXEL), (SOFT, ONE_PIXEL)],
    "unsure everywhere": [(UNSURE, _blob())],
}


@pytest.mark.parametrize("case", CASES)
def test_every_metric_matches_the_toolbox(case: str) -> None:
    ours, reference = segmentation_metrics(CASES[case]), _reference(CASES[case])
    for key in METRIC_KEYS:
        assert ours[key] == pytest.approx(float(reference[key]), abs=1e-9), key


def test_conventions_are_stated_by_the_numbers() -> None:
    empty = segmentation_metrics(CASES["empty both"])
    assert empty["empty_truth"] == 1 and empty["dice"] == 0.0 and empty["mae"] == 0.0  # toolbox: 0/0 → 0
    perfect = segmentation_metrics([(_blob(), _blob())])
    assert perfect["dice"] == perfect["iou"] == 1.0 and perfect["mae"] == 0.0
    assert perfect["s_measure"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in size"):
        segmentation_metrics([(EMPTY, np.zeros((4, 4), np.uint8))])


def test_a_map_unsure_everywhere_scores_dice_zero_at_probability_half() -> None:
    """Every probability < 0.5: no pixel is polyp, so Dice is 0 however well the map's shape fits; only the
    toolbox's normalised 256-threshold mean credits the shape."""
    scores = segmentation_metrics([(UNSURE, _blob())])
    assert UNSURE.max() / 255 < 0.5
    assert scores["dice"] == scores["iou"] == scores["dice_pooled"] == scores["recall"] == 0.0
    assert scores["mdice_256"] > 0.5
