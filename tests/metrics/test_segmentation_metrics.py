"""Every segmentation key against an independent reference: each metric written out here from its paper's
definition in NumPy (no pysodmetrics), checked on many maps, plus small masks whose values are worked out by hand
(closed forms from the definitions, including the degenerate all-foreground / all-background conventions)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import distance_transform_edt

from hyperkvasir.metrics.segmentation import METRIC_KEYS, SegmentationMetrics


def segmentation_metrics(pairs) -> dict:
    """The accumulator fed (prediction, truth) uint8 map pairs one by one, as ``evaluate segment`` feeds it."""
    metrics = SegmentationMetrics()
    for prediction, truth in pairs:
        metrics.add(prediction, truth)
    return metrics.results()


def _normalised(pred: np.ndarray) -> np.ndarray:
    """The toolbox's preparation (MATLAB ``mapminmax(im2double(...))``): /255, then min-max per image when not
    constant."""
    p = pred.astype(np.float64) / 255
    return (p - p.min()) / (p.max() - p.min()) if p.max() != p.min() else p


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0  # the toolbox's zero-division convention


def _s_measure(p: np.ndarray, g: np.ndarray, alpha: float = 0.5) -> float:
    """Structure measure S = α·S_o + (1−α)·S_r (Fan et al., ICCV 2017, Eqs. 1–9, as the authors' MATLAB code
    computes it): S_o compares the foreground values of P, and the background values of 1−P, to a uniform 1
    (O = 2x̄ / (x̄² + 1 + σ_x), sample σ); S_r splits both maps at the truth's rounded centroid into four parts and
    sums their SSIM weighted by area. Empty truth: 1 − mean(P); full truth: mean(P); clipped at 0."""
    mu = g.mean()
    if mu == 0:
        return 1 - p.mean()
    if mu == 1:
        return p.mean()

    def similarity_to_one(x: np.ndarray) -> float:
        mean, std = x.mean(), (x.std(ddof=1) if x.size > 1 else 0.0)
        return 2 * mean / (mean**2 + 1 + std)

    def ssim(x: np.ndarray, y: np.ndarray) -> float:
        n = x.size
        mx, my = x.mean(), y.mean()
        vx, vy, cov = (
            ((a - ma) * (b - mb)).sum() / (n - 1) if n > 1 else 0.0
            for a, ma, b, mb in ((x, mx, x, mx), (y, my, y, my), (x, mx, y, my))
        )
        numerator, denominator = 4 * mx * my * cov, (mx**2 + my**2) * (vx + vy)
        return numerator / denominator if numerator != 0 else float(denominator == 0)

    s_object = mu * similarity_to_one(p[g]) + (1 - mu) * similarity_to_one(1 - p[~g])
    rows, cols = np.nonzero(g)
    # MATLAB: X = round(Σ column·count / total) over 1-based columns, half up; the parts are 1:X and X+1:end.
    # pysodmetrics rounds the 0-based centroid half to even, so the two differ when it ends in exactly .5 with an
    # even whole part; the maps here have no such tie (see segmentation.py).
    cy, cx = (int(np.floor(v.mean() + 1 + 0.5)) for v in (rows, cols))
    parts = [
        (slice(None, cy), slice(None, cx)),
        (slice(None, cy), slice(cx, None)),
        (slice(cy, None), slice(None, cx)),
        (slice(cy, None), slice(cx, None)),
    ]
    s_region = sum(p[r, c].size / p.size * ssim(p[r, c], g[r, c].astype(float)) for r, c in parts if p[r, c].size)
    return max(0.0, alpha * s_object + (1 - alpha) * s_region)


def _e_measure(fm: np.ndarray, g: np.ndarray) -> float:
    """Enhanced-alignment measure of a binary map FM (Fan et al., IJCAI 2018, Eqs. 1–6): bias matrices
    φ = X − mean(X); alignment ξ = 2 φ_G∘φ_FM / (φ_G∘φ_G + φ_FM∘φ_FM); enhanced (1 + ξ)² / 4, summed and divided by
    N − 1 as the authors' code does. Empty truth: the enhanced matrix is 1 − FM; full truth: FM."""
    fm, gt = fm.astype(np.float64), g.astype(np.float64)
    if not g.any():
        enhanced = 1 - fm
    elif g.all():
        enhanced = fm
    else:
        a_fm, a_gt = fm - fm.mean(), gt - gt.mean()
        enhanced = (2 * a_gt * a_fm / (a_gt**2 + a_fm**2) + 1) ** 2 / 4
    return enhanced.sum() / (g.size - 1)


def _weighted_f(p: np.ndarray, g: np.ndarray, beta2: float = 1.0) -> float:
    """Weighted F-measure F^w_β (Margolin et al., CVPR 2014, Sec. 4 and the authors' MATLAB code): errors
    E = |P − G|; a background pixel takes the error of its nearest object pixel (dependency), the result is
    smoothed by a 7×7 Gaussian of σ = 5 (zero padding) and an object pixel keeps min(E, smoothed); background errors
    are weighted 2 − exp(ln(0.5)/5 · distance to the object) (importance). R = 1 − mean object error,
    P = TP_w / (TP_w + FP_w) with TP_w = |G| − Σ object errors, FP_w = Σ background errors. Empty truth: 0."""
    if not g.any():
        return 0.0
    distance, (iy, ix) = distance_transform_edt(~g, return_indices=True)
    error = np.abs(p - g)
    spread = error[iy, ix]  # object pixels point to themselves
    yy, xx = np.mgrid[-3:4, -3:4]
    kernel = np.exp(-(yy**2 + xx**2) / (2 * 5**2))
    smoothed = (sliding_window_view(np.pad(spread, 3), (7, 7)) * (kernel / kernel.sum())).sum((-2, -1))
    weighted = np.where(g & (smoothed < error), smoothed, error)
    weighted = weighted * np.where(g, 1.0, 2 - np.exp(np.log(0.5) / 5 * distance))
    tp, fp = g.sum() - weighted[g].sum(), weighted[~g].sum()
    recall, precision = 1 - weighted[g].mean(), _ratio(tp, tp + fp)
    return _ratio((1 + beta2) * precision * recall, beta2 * precision + recall)


def _reference(pairs) -> dict:
    """All fifteen keys from the definitions above: binary keys at raw probability > 0.5; the 256-threshold keys on
    the normalised map P at thresholds k/255 (P·255 ≥ k, k = 0…255); the adaptive E-measure at P ≥ min(2·mean P, 1)."""
    per_image, pooled, curves, structure = [], np.zeros(3), [], []
    for pred, truth in pairs:
        p, t = _normalised(pred), truth > 128
        b = pred.astype(np.float64) / 255 > 0.5
        tp, fp, fn = (b & t).sum(), (b & ~t).sum(), (~b & t).sum()
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        per_image.append(
            [
                _ratio(2 * tp, 2 * tp + fp + fn),
                _ratio(tp, tp + fp + fn),
                precision,
                recall,
                _ratio(5 * precision * recall, 4 * precision + recall),
            ]
        )
        pooled += [tp, fp, fn]
        q = (p * 255).astype(np.uint8)
        curve = []
        for threshold in range(256):
            bt = q >= threshold
            tp_, fp_, fn_ = (bt & t).sum(), (bt & ~t).sum(), (~bt & t).sum()
            curve.append([_ratio(2 * tp_, 2 * tp_ + fp_ + fn_), _ratio(tp_, tp_ + fp_ + fn_), _e_measure(bt, t)])
        curves.append(curve)
        structure.append(
            [_s_measure(p, t), _e_measure(p >= min(2 * p.mean(), 1), t), _weighted_f(p, t), np.abs(p - t).mean()]
        )
    mean = np.mean(per_image, axis=0)
    tp, fp, fn = pooled
    curve = np.mean(curves, axis=0)  # (threshold, key): averaged over images first, as the toolbox does
    s, e_adaptive, weighted_f, mae = np.mean(structure, axis=0)
    return {
        "dice": mean[0],
        "iou": mean[1],
        "precision": mean[2],
        "recall": mean[3],
        "f2": mean[4],
        "dice_pooled": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou_pooled": _ratio(tp, tp + fp + fn),
        "mdice_256": curve[:, 0].mean(),
        "miou_256": curve[:, 1].mean(),
        "s_measure": s,
        "e_measure_mean": curve[:, 2].mean(),
        "e_measure_max": curve[:, 2].max(),
        "e_measure_adaptive": e_adaptive,
        "weighted_f": weighted_f,
        "mae": mae,
    }


def _blob(shape=(40, 50), centre=(20, 25), radius=9) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) <= radius**2).astype(np.uint8) * 255


rng = np.random.default_rng(7)
EMPTY, FULL = np.zeros((40, 50), np.uint8), np.full((40, 50), 255, np.uint8)
ONE_PIXEL = EMPTY.copy()
ONE_PIXEL[10, 10] = 255
EDGE = EMPTY.copy()
EDGE[5:30, -1] = 255  # a sliver in the last column: the centroid splits off parts of no pixel
UNSURE = (_blob(radius=12) // 255 * 120 + 5).astype(np.uint8)  # right shape, every probability below 0.5
SOFT = np.clip(_blob(radius=12).astype(float) * 0.8 + rng.normal(0, 30, (40, 50)), 0, 255).astype(np.uint8)
CASES = {
    "random": [((rng.random((40, 50)) * 255).astype(np.uint8), _blob()) for _ in range(3)],
    "soft prediction": [(SOFT, _blob())],
    "shifted soft prediction": [(np.roll(SOFT, (4, -6), (0, 1)), _blob(centre=(17, 22), radius=7))],
    "empty truth": [(SOFT, EMPTY)],
    "empty prediction": [(EMPTY, _blob())],
    "empty both": [(EMPTY, EMPTY)],
    "full image": [(FULL, FULL), (FULL, _blob()), (SOFT, FULL)],
    "one pixel": [(ONE_PIXEL, ONE_PIXEL), (SOFT, ONE_PIXEL)],
    "unsure everywhere": [(UNSURE, _blob())],
    "object on the edge": [(SOFT, EDGE), (EDGE, EDGE)],
}


@pytest.mark.parametrize("case", CASES)
def test_every_metric_matches_its_definition(case: str) -> None:
    ours, reference = segmentation_metrics(CASES[case]), _reference(CASES[case])
    for key in METRIC_KEYS:
        assert np.isfinite(ours[key]), key
        assert ours[key] == pytest.approx(float(reference[key]), rel=1e-9, abs=1e-12), key


# A 3×3 object in a 6×6 image (share μ = 1/4, N = 36 pixels, centroid (2, 2): the four parts at rows/columns 0–2
# and 3–5 each hold object and background), and a 2×2 prediction in its upper-left corner.
TRUTH = np.zeros((6, 6), np.uint8)
TRUTH[1:4, 1:4] = 255
INNER = np.zeros((6, 6), np.uint8)
INNER[1:3, 1:3] = 255
N = 36


def _close(value: float, expected) -> None:
    assert value == pytest.approx(float(expected), rel=1e-12, abs=1e-15)


def test_hand_computed_binary_prediction() -> None:
    """INNER vs TRUTH: TP 4, FP 0, FN 5, TN 27."""
    m = segmentation_metrics([(INNER, TRUTH)])
    _close(m["dice"], Fraction(8, 13))
    _close(m["iou"], Fraction(4, 9))
    _close(m["precision"], 1)
    _close(m["recall"], Fraction(4, 9))
    _close(m["f2"], Fraction(1, 2))  # 5·1·(4/9) / (4·1 + 4/9)
    _close(m["mae"], Fraction(5, N))
    # 256 thresholds on a binary map: k = 1…255 give INNER, k = 0 calls every pixel object (Dice 18/45, IoU 9/36)
    _close(m["mdice_256"], (255 * Fraction(8, 13) + Fraction(18, 45)) / 256)
    _close(m["miou_256"], (255 * Fraction(4, 9) + Fraction(9, 36)) / 256)
    # S-measure: object part — foreground values 4 ones and 5 zeros (mean 4/9, sample σ = √(5/18)), background of
    # 1 − P all ones (score 1); region part — the upper-left part matches exactly (SSIM 1), the other three hold
    # object pixels the prediction misses (SSIM 0), each part a quarter of the image.
    o_fg = (8 / 9) / ((4 / 9) ** 2 + 1 + np.sqrt(5 / 18))
    _close(m["s_measure"], 0.5 * (0.25 * o_fg + 0.75) + 0.5 * 0.25)

    # E-measure per part (TP, FN, TN; no FP): φ_FM = 8/9 or −1/9, φ_G = 3/4 or −1/4
    def enhanced(a_fm: float, a_gt: float) -> float:
        return (2 * a_fm * a_gt / (a_fm**2 + a_gt**2) + 1) ** 2 / 4

    inner = (4 * enhanced(8 / 9, 3 / 4) + 5 * enhanced(-1 / 9, 3 / 4) + 27 * enhanced(-1 / 9, -1 / 4)) / (N - 1)
    everything = N / 4 / (N - 1)  # k = 0: FM all ones, φ_FM = 0, so ξ = 0 and each pixel scores 1/4
    _close(m["e_measure_max"], inner)
    _close(m["e_measure_mean"], (255 * inner + everything) / 256)
    _close(m["e_measure_adaptive"], inner)  # threshold 2·mean = 2/9 gives INNER again


def test_a_perfect_prediction_scores_the_definitions_maxima() -> None:
    m = segmentation_metrics([(TRUTH, TRUTH)])
    for key in ("dice", "iou", "precision", "recall", "f2", "dice_pooled", "iou_pooled", "s_measure", "weighted_f"):
        _close(m[key], 1)
    _close(m["mae"], 0)
    # E-measure: ξ = 1 everywhere, so N ones over N − 1; at k = 0 every pixel is object (1/4 each)
    _close(m["e_measure_max"], Fraction(N, N - 1))
    _close(m["e_measure_adaptive"], Fraction(N, N - 1))
    _close(m["e_measure_mean"], (255 * Fraction(N, N - 1) + Fraction(N, 4 * (N - 1))) / 256)
    _close(m["mdice_256"], (255 + Fraction(18, 45)) / 256)


def test_an_inverted_prediction_scores_the_definitions_minima() -> None:
    m = segmentation_metrics([(255 - TRUTH, TRUTH)])
    for key in ("dice", "iou", "precision", "recall", "f2", "s_measure"):  # S: every part's SSIM < 0, clipped
        _close(m[key], 0)
    _close(m["mae"], 1)
    _close(m["e_measure_adaptive"], 0)  # ξ = −1 everywhere at P ≥ min(2·3/4, 1)
    _close(m["e_measure_max"], Fraction(N, 4 * (N - 1)))  # only k = 0 (all object) scores: 1/4 a pixel


def test_constant_predictions_score_the_closed_forms() -> None:
    """A constant map (not stretched by the normalisation): all background scores S = (1 − μ)/2 (only the
    background's object term, 1, counts), all object S = μ/2; the weighted F of all background is 0 when the object
    lies three or more pixels from the border (every smoothed error is 1, so R^w = 0)."""
    background = segmentation_metrics([(np.zeros((6, 6), np.uint8), TRUTH)])
    _close(background["s_measure"], Fraction(3, 8))
    _close(background["mae"], Fraction(1, 4))
    _close(background["dice"], 0)
    object_ = segmentation_metrics([(np.full((6, 6), 255, np.uint8), TRUTH)])
    _close(object_["s_measure"], Fraction(1, 8))
    _close(object_["precision"], Fraction(1, 4))
    _close(object_["e_measure_adaptive"], Fraction(N, 4 * (N - 1)))  # FM all ones: ξ = 0
    far = np.zeros((12, 12), np.uint8)
    far[4:8, 4:8] = 255
    _close(segmentation_metrics([(np.zeros((12, 12), np.uint8), far)])["weighted_f"], 0)


def test_degenerate_truths_follow_the_papers_conventions() -> None:
    """Empty truth: S = 1 − mean(P) and the enhanced matrix is 1 − FM; full truth: S = mean(P), enhanced = FM;
    the toolbox scores Dice, IoU and weighted F of an empty truth 0, even against an empty prediction."""
    quarter = np.zeros((4, 4), np.uint8)
    quarter[:2, :2] = 255  # 4 of 16 pixels
    n = 16
    empty = segmentation_metrics([(quarter, np.zeros((4, 4), np.uint8))])
    _close(empty["s_measure"], Fraction(3, 4))
    _close(empty["mae"], Fraction(1, 4))
    _close(empty["e_measure_max"], Fraction(12, n - 1))  # 12 background pixels of FM at every k ≥ 1
    _close(empty["e_measure_mean"], Fraction(255 * 12, 256 * (n - 1)))  # k = 0: FM all ones, 0
    _close(empty["weighted_f"], 0)
    full = segmentation_metrics([(quarter, np.full((4, 4), 255, np.uint8))])
    _close(full["s_measure"], Fraction(1, 4))
    _close(full["e_measure_max"], Fraction(n, n - 1))  # k = 0: all 16 pixels
    _close(full["e_measure_adaptive"], Fraction(4, n - 1))  # threshold 2·1/4 keeps the quarter
    _close(full["precision"], 1)
    _close(full["recall"], Fraction(1, 4))
    both = segmentation_metrics([(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))])
    assert both["empty_truth"] == 1 and both["dice"] == both["iou"] == both["weighted_f"] == 0.0
    _close(both["s_measure"], 1)
    _close(both["e_measure_max"], Fraction(n, n - 1))
    _close(both["e_measure_adaptive"], 0)  # threshold 2·0 = 0 calls every pixel object


def test_pooled_keys_sum_pixels_over_images_before_dividing() -> None:
    """INNER vs TRUTH (TP 4, FN 5) and a perfect image (TP 9): pooled Dice 2·13/(2·13 + 5), not the mean of
    8/13 and 1."""
    m = segmentation_metrics([(INNER, TRUTH), (TRUTH, TRUTH)])
    _close(m["dice_pooled"], Fraction(26, 31))
    _close(m["iou_pooled"], Fraction(13, 18))
    _close(m["dice"], (Fraction(8, 13) + 1) / 2)


def test_sizes_must_match() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        segmentation_metrics([(EMPTY, np.zeros((4, 4), np.uint8))])


def test_a_map_unsure_everywhere_scores_dice_zero_at_probability_half() -> None:
    """Every probability < 0.5: no pixel is polyp, so Dice is 0 however well the map's shape fits; only the
    toolbox's normalised 256-threshold mean credits the shape."""
    scores = segmentation_metrics([(UNSURE, _blob())])
    assert UNSURE.max() / 255 < 0.5
    assert scores["dice"] == scores["iou"] == scores["dice_pooled"] == scores["recall"] == 0.0
    assert scores["mdice_256"] > 0.5
