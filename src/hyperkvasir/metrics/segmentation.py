"""Polyp segmentation metrics, each named for what it is, computed by ``pysodmetrics`` (the Python
implementation of the salient-object / polyp evaluation toolbox of Fan et al. used by PraNet and its family).

Inputs are 8-bit maps: a prediction (probabilities × 255) and a ground-truth mask, the same size (callers
resize predictions to the truth); the truth is ``> 128``. The binary keys threshold the **raw** probability at
:data:`PROBABILITY_THRESHOLD` (the one threshold of training selection, saved maps, boxes and metrics), as
Kvasir-SEG papers do; the toolbox's 256-threshold keys divide by 255 and min-max normalise each map first, as
the toolbox does (a map unsure everywhere is stretched there, not here). JSON keys (design.md) and definitions
(TP/FP/FN per image at a threshold):

* ``dice``, ``iou`` — per-image Dice = 2TP/(2TP+FP+FN) and IoU = TP/(TP+FP+FN) at probability > 0.5, averaged
  over images (Kvasir-SEG papers, e.g. TransNetR, report these as mDice/mIoU).
* ``dice_pooled``, ``iou_pooled`` — the same with TP/FP/FN summed over all pixels of all images first.
* ``mdice_256``, ``miou_256`` — PraNet protocol: per image over the 256 thresholds 0…255, averaged over images,
  then over thresholds (PraNet, Polyp-PVT, HSNet report these as mDice/mIoU).
* ``s_measure`` — structure measure S_α (Fan et al., ICCV 2017), α = 0.5.
* ``e_measure_mean``, ``e_measure_max``, ``e_measure_adaptive`` — enhanced-alignment measure (Fan et al.,
  IJCAI 2018) over the 256 thresholds (mean, max) and at twice the mean prediction (adaptive).
* ``weighted_f`` — weighted F-measure F^w_β (Margolin et al., CVPR 2014), β² = 1.
* ``mae`` — mean absolute error between the normalised prediction and the binary truth.
* ``precision``, ``recall``, ``f2`` — per image at probability > 0.5, averaged; F2 = 5PR/(4P+R).

S-measure of a truth whose centroid rounds to the last row or column: the toolbox splits off parts of no pixel
(area weight 0) and their SSIM is NaN, which would turn the whole mean into NaN; a part of no pixel adds 0 here.
Where the truth's centroid falls exactly on a half pixel, the toolbox rounds it half to even (the authors' MATLAB
code rounds half up), so its split, and S, can differ from the MATLAB toolbox's on such masks.

Empty truth: the toolbox divides by zero as 0, so an image with an empty truth scores Dice = IoU = 0 even
when the prediction is empty too; such images are counted in ``empty_truth`` so that no reader is surprised.
"""

from __future__ import annotations

import numpy as np
import py_sod_metrics as sod

from hyperkvasir.metrics.intervals import mean_interval

# A pixel is polyp when its predicted probability exceeds this (sigmoid > 0.5 ⇔ logit > 0); pysodmetrics'
# binary handlers cut raw maps at the same 0.5.
PROBABILITY_THRESHOLD = 0.5
METRIC_KEYS = (
    "dice",
    "iou",
    "dice_pooled",
    "iou_pooled",
    "mdice_256",
    "miou_256",
    "s_measure",
    "e_measure_mean",
    "e_measure_max",
    "e_measure_adaptive",
    "weighted_f",
    "mae",
    "precision",
    "recall",
    "f2",
)


class _Smeasure(sod.Smeasure):
    """The toolbox's S-measure, but a region part of no pixel (weight 0) adds 0 instead of NaN."""

    def ssim(self, pred: np.ndarray, gt: np.ndarray) -> float:
        return super().ssim(pred, gt) if pred.size else 0.0


class SegmentationMetrics:
    """Accumulates (prediction, truth) pairs of uint8 maps; :meth:`results` gives the JSON keys above."""

    def __init__(self) -> None:
        binary = dict(with_dynamic=False, with_adaptive=False, with_binary=True)
        self.per_image = {
            "dice": sod.DICEHandler(**binary, sample_based=True),
            "iou": sod.IOUHandler(**binary, sample_based=True),
        }
        self.binary = sod.FmeasureV2(
            {  # fed raw probabilities: the library binarises them at > 0.5
                **self.per_image,
                "dice_pooled": sod.DICEHandler(**binary, sample_based=False),
                "iou_pooled": sod.IOUHandler(**binary, sample_based=False),
                "precision": sod.PrecisionHandler(**binary, sample_based=True),
                "recall": sod.RecallHandler(**binary, sample_based=True),
                "f2": sod.FmeasureHandler(**binary, sample_based=True, beta=4.0),
            }
        )
        self.dynamic = sod.FmeasureV2(
            {
                "mdice_256": sod.DICEHandler(with_dynamic=True, with_adaptive=False),
                "miou_256": sod.IOUHandler(with_dynamic=True, with_adaptive=False),
            }
        )
        self.s_measure, self.e_measure = _Smeasure(), sod.Emeasure()
        self.weighted_f, self.mae = sod.WeightedFmeasure(), sod.MAE()
        self.count = self.empty_truth = 0

    def add(self, prediction: np.ndarray, truth: np.ndarray) -> None:
        if prediction.shape != truth.shape:
            raise ValueError(f"prediction {prediction.shape} and truth {truth.shape} differ in size")
        prediction, truth = prediction.astype(np.uint8), truth.astype(np.uint8)
        probability = prediction.astype(np.float64) / 255
        self.binary.step(probability, truth > 128, normalize=False)
        self.dynamic.step(prediction, truth)
        for metric in (self.s_measure, self.e_measure, self.weighted_f, self.mae):
            metric.step(prediction, truth)
        self.count += 1
        self.empty_truth += int(not (truth > 128).any())

    def results(self) -> dict:
        if not self.count:
            raise ValueError("no image scored")
        table = self.binary.get_results() | self.dynamic.get_results()
        em = self.e_measure.get_results()["em"]
        out = {
            key: float(table[key]["binary"])
            for key in ("dice", "iou", "dice_pooled", "iou_pooled", "precision", "recall", "f2")
        }
        out |= {
            "mdice_256": float(np.mean(table["mdice_256"]["dynamic"])),
            "miou_256": float(np.mean(table["miou_256"]["dynamic"])),
            "s_measure": float(self.s_measure.get_results()["sm"]),
            "e_measure_mean": float(np.mean(em["curve"])),
            "e_measure_max": float(np.max(em["curve"])),
            "e_measure_adaptive": float(em["adp"]),
            "weighted_f": float(self.weighted_f.get_results()["wfm"]),
            "mae": float(self.mae.get_results()["mae"]),
        }
        # 95 % bootstrap intervals of the per-image means (docs/intervals.md), from the toolbox's own values
        found = {f"{key}_ci": mean_interval(handler.binary_results) for key, handler in self.per_image.items()}
        return {"n": self.count, "empty_truth": self.empty_truth, **{k: out[k] for k in METRIC_KEYS}, **found}
