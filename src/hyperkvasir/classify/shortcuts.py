"""How much of a score the frame furniture could explain: probes that see only the lower-left corner.

Three probes share the benchmark's folds and validation carve-out: a logistic regression (scikit-learn, balanced
class weights, C chosen on the validation carve-out) on colour histograms of

* ``corner_probe`` — the lower-left corner only (:data:`~hyperkvasir.data.imaging.CORNER_MASK`, where the
  ScopeGuide box and Kvasir-SEG's black box sit);
* ``frame_probe_masked`` — the whole frame with that corner blanked (what ``mask_corners`` leaves a model);
* ``corner_probe_masked`` — the corner of the blanked frames, which holds nothing and must fall to chance.

A corner probe well above the majority baseline means a classifier can score from the corner alone; train with
``mask_corners: true`` to take the cue away.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hyperkvasir.classify.evaluate import majority_baseline
from hyperkvasir.data.audit import audit
from hyperkvasir.data.imaging import CORNER_MASK, ImageDecodeError, blank_corner, corner_region, decode_rgb
from hyperkvasir.data.index import build_index
from hyperkvasir.data.splits import DEFAULT_VALIDATION_FRACTION, assignment
from hyperkvasir.errors import DataError
from hyperkvasir.metrics.classification import average_folds, classification_metrics
from hyperkvasir.parallel import process_pool

PROBES = ("corner_probe", "frame_probe_masked", "corner_probe_masked")
_BINS = 16
_C_GRID = (0.01, 0.1, 1.0, 10.0)


def _histogram(rgb: np.ndarray) -> np.ndarray:
    """Per-channel 16-bin histograms (shares) plus channel means and standard deviations, scaled to [0, 1]."""
    pixels = rgb.reshape(-1, 3)
    counts = [np.bincount(pixels[:, c] // (256 // _BINS), minlength=_BINS) / len(pixels) for c in range(3)]
    return np.concatenate([*counts, pixels.mean(0) / 255, pixels.std(0) / 255]).astype(np.float32)


def _corner(rgb: np.ndarray) -> np.ndarray:
    return rgb[corner_region(*rgb.shape[:2])]


def _features(path: str) -> np.ndarray | None:
    """(3, features): corner, masked frame, corner of the masked frame; None if the file does not decode."""
    try:
        rgb = decode_rgb(path, min_size=(96, 96))
    except ImageDecodeError:
        return None
    masked = blank_corner(rgb)
    return np.stack([_histogram(_corner(rgb)), _histogram(masked), _histogram(_corner(masked))])


def _probe(x_train, y_train, x_val, y_val, x_test) -> np.ndarray:
    """Predictions on ``x_test`` of the logistic regression whose C scores best on the validation part."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000)).fit(
            x_train, y_train
        )

    if len(set(y_train)) < 2 or not np.ptp(x_train, axis=0).any():
        # no information (one class, or every feature constant, as in a blanked corner): the prior's mode
        return np.full(len(x_test), np.bincount(y_train).argmax())
    best = max(
        _C_GRID,
        key=lambda c: f1_score(y_val, fit(c).predict(x_val), average="macro", zero_division=0) if len(y_val) else 0.0,
    )
    return fit(best).predict(x_test)


def shortcut_probes(
    root: str | Path, *, scheme: str = "official-2fold", seed: int = 0, workers: int | None = None, progress=None
) -> dict:
    """The three probes' fold-averaged metrics beside the majority baseline, per-class corner marks, a summary."""
    root = Path(root)
    manifest = {Path(r["path"]).name: r for r in build_index(root).to_pylist() if r["part"] == "labeled"}
    split = assignment(root, scheme, fraction=DEFAULT_VALIDATION_FRACTION, seed=seed)
    names = sorted(n for n in split.files if n in manifest and manifest[n]["decodes"])
    if not names:
        raise DataError(f"{root}: no decodable labeled image in the {scheme} split; nothing to probe")
    jobs = [str(root / manifest[n]["path"]) for n in names]
    with process_pool(workers or os.cpu_count() or 1, len(jobs), minimum=32) as pool:
        results = pool.map(_features, jobs, chunksize=16)
        features = dict(zip(names, progress(results, len(jobs)) if progress else results))
    labels = {n: split.files[n][0].index for n in names}
    folds: dict[str, list[dict]] = {probe: [] for probe in PROBES}
    for fold in range(split.k):
        subsets = {k: [n for n in v if features.get(n) is not None] for k, v in split.subsets(fold).items()}
        if not subsets["test"] or not subsets["train"]:
            continue
        for index, probe in enumerate(PROBES):
            x = {k: np.stack([features[n][index] for n in v]) if v else np.zeros((0, 1)) for k, v in subsets.items()}
            y = {k: [labels[n] for n in v] for k, v in subsets.items()}
            predicted = _probe(x["train"], y["train"], x["val"], y["val"], x["test"])
            folds[probe].append(classification_metrics(y["test"], predicted))
    report = audit(root)
    out = {probe: average_folds(runs) for probe, runs in folds.items() if runs}
    out["majority"] = majority_baseline(root, scheme, seed)
    out["per_class"] = {
        cls: {"images": v["images"], "scopeguide_share": v["share"], "black_box_share": v["black_box_share"]}
        for cls, v in report.scopeguide.items()
        if v["images"]
    }
    out["scheme"], out["corner_region"] = scheme, list(CORNER_MASK)
    out["summary"] = _summary(out)
    return out


def _summary(result: dict) -> str:
    corner, masked, majority = (result[k] for k in ("corner_probe", "frame_probe_masked", "majority"))
    blank = result["corner_probe_masked"]
    return (
        f"A classifier that sees only the lower-left corner of each frame (colour histograms, logistic "
        f"regression, {result['scheme']} folds) reaches macro-F1 {corner['macro_f1']:.3f}, accuracy "
        f"{corner['micro_f1']:.3f} and MCC {corner['mcc']:.3f}, against macro-F1 {majority['macro_f1']:.3f} and "
        f"accuracy {majority['micro_f1']:.3f} for always predicting the majority class. With that corner "
        f"blanked, the corner probe falls to accuracy {blank['micro_f1']:.3f}, and the rest of the frame gives "
        f"macro-F1 {masked['macro_f1']:.3f}."
    )
