"""Score a folder of predicted polyp maps against a folder of ground-truth masks (joined on the path without suffix:
the stem, with subfolders when the maps sit in several, as ``predict`` writes them).

Predictions of any size are resized (bilinear) to their truth; truths are read by the one mask reader (0/1 maps
scaled up; mid-grey, all-white or inverted files refused) and binarised ``>= 128``. Metrics:
:mod:`hyperkvasir.metrics.segmentation`; with ``bounding-boxes.json``, boxes derived from the predictions are scored
with COCO mAP as well.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hyperkvasir.data.imaging import ImageDecodeError, MaskError, decode_gray, load_mask
from hyperkvasir.data.inputs import output_names
from hyperkvasir.data.tables import read_bounding_boxes
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.metrics.segmentation import SegmentationMetrics
from hyperkvasir.segment.boxes import box_map, boxes_from_mask
from hyperkvasir.segment.predict import predict_masks

_MAP_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _maps(folder: Path, role: str) -> dict[str, Path]:
    if folder.is_file():
        raise HyperKvasirError(f"{folder} is a file; pass the folder that holds the {role} maps")
    if not folder.is_dir():
        raise HyperKvasirError(f"{folder}: {role} folder not found; check the path")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _MAP_SUFFIXES and p.is_file())
    maps = dict(zip(output_names(files, [folder]), files))
    if not maps:
        raise HyperKvasirError(
            f"{folder}: no {role} images ({', '.join(_MAP_SUFFIXES)}); pass the folder that holds the {role} maps"
        )
    return maps


def load_truth_mask(path: Path) -> np.ndarray:
    """A ground-truth mask as uint8 0/255; a file that is no mask is a data error: scoring it would mislead."""
    try:
        return load_mask(path).astype(np.uint8) * 255
    except MaskError:
        raise  # a data error (exit 1) as it is
    except ImageDecodeError as error:
        raise HyperKvasirError(str(error)) from None


def _decoded(path: Path) -> np.ndarray:
    try:
        return decode_gray(path)
    except ImageDecodeError as error:
        raise HyperKvasirError(str(error)) from None


def _prediction_scale(predictions: dict[str, Path]) -> int:
    """255 when every prediction holds only 0 and 1 (a folder of 0/1 masks, which would score as empty maps), else
    1. Decided per folder: one probability map (0–255) of an image without polyp may hold only 0 and 1 too."""
    peaks = [int(_decoded(path).max()) for path in predictions.values()]
    return 255 if max(peaks) == 1 else 1


def evaluate_segmentation(
    pred_dir: str | Path, truth_dir: str | Path, *, boxes_json: str | Path | None = None, subset: bool = False
) -> dict:
    """Metrics over the predicted files; extra predictions are an error, and unpredicted truths are an error
    unless ``subset`` (a test part scored against the folder of all masks)."""
    predictions, truths = _maps(Path(pred_dir), "prediction"), _maps(Path(truth_dir), "truth")
    extra = sorted(set(predictions) - set(truths))
    if extra:
        raise HyperKvasirError(
            f"{pred_dir}: {len(extra)} predictions have no truth mask in {truth_dir} (first: {', '.join(extra[:5])})"
        )
    missing = sorted(set(truths) - set(predictions))
    if missing and not subset:
        raise HyperKvasirError(
            f"{pred_dir}: {len(missing)} truth masks have no prediction "
            f"(first: {', '.join(missing[:5])}); pass --subset to score only the predicted ones"
        )
    boxes = read_bounding_boxes(boxes_json) if boxes_json else None
    metrics = SegmentationMetrics()
    true_boxes, detections, sizes = {}, {}, {}
    scale = _prediction_scale(predictions)
    for stem in sorted(predictions):
        truth = load_truth_mask(truths[stem])
        prediction = _decoded(predictions[stem]) * np.uint8(scale)
        if prediction.shape != truth.shape:
            prediction = cv2.resize(prediction, truth.shape[::-1], interpolation=cv2.INTER_LINEAR)
        metrics.add(prediction, truth)
        if boxes is not None and stem in boxes:
            entry, (h, w) = boxes[stem], truth.shape
            outside = [
                b
                for b in entry.boxes
                if not (0 <= b.xmin < b.xmax <= entry.width and 0 <= b.ymin < b.ymax <= entry.height)
            ]
            if outside:
                b = outside[0]
                raise DataError(
                    f"{boxes_json}: box of {stem} ({b.xmin},{b.ymin})-({b.xmax},{b.ymax}) leaves its "
                    f"{entry.width}x{entry.height} image; fix the box (`hyperkvasir validate` lists all)"
                )
            true_boxes[stem] = [list(box) for box in entry.scaled(w, h)]
            detections[stem] = boxes_from_mask(prediction.astype(np.float32) / 255)
            sizes[stem] = (w, h)
    result = metrics.results() | {"truth_not_predicted": len(missing)}
    if boxes is not None:
        result["boxes"] = box_map(true_boxes, detections, sizes)
    return result


def evaluate_segmentation_checkpoint(
    checkpoint: str | Path, images: str | Path, masks: str | Path, out: str | Path, *, progress=None
) -> dict:
    """External validation: a segmentation checkpoint on a folder of images with their masks (same stems); the
    predictions (masks, probability maps, overlays, boxes) go to ``out`` and are scored like any predictions."""
    summary = predict_masks(checkpoint, [images], out, progress=progress)
    return evaluate_segmentation(Path(out) / "probabilities", masks) | {"undecodable": summary["undecodable"]}
