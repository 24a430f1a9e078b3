"""Boxes from masks (connected components) and box metrics (COCO mAP via pycocotools) on the same split."""

from __future__ import annotations

import contextlib
import io

import numpy as np
from scipy import ndimage

from hyperkvasir.data.imaging import MIN_POLYP_COMPONENT
from hyperkvasir.metrics.segmentation import PROBABILITY_THRESHOLD


def boxes_from_mask(
    probability: np.ndarray, threshold: float = PROBABILITY_THRESHOLD
) -> list[tuple[list[float], float]]:
    """([xmin, ymin, xmax, ymax], score) per connected component of ``probability > threshold``.

    The score is the component's mean probability, so detections can be ranked for mAP.
    """
    labels, count = ndimage.label(probability > threshold)
    out = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        inside = labels[region] == index
        if inside.sum() < MIN_POLYP_COMPONENT:
            continue
        ys, xs = region
        out.append(
            (
                [float(xs.start), float(ys.start), float(xs.stop - 1), float(ys.stop - 1)],
                float(probability[region][inside].mean()),
            )
        )
    return out


def box_map(
    truth: dict[str, list[list[float]]],
    detections: dict[str, list[tuple[list[float], float]]],
    sizes: dict[str, tuple[int, int]],
) -> dict:
    """COCO mAP@0.5 and mAP@[0.5:0.95] of detections against truth boxes (pascal_voc pixels), one class."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    names = sorted(truth)
    images = [{"id": i, "width": sizes[n][0], "height": sizes[n][1], "file_name": n} for i, n in enumerate(names)]
    annotations: list[dict] = []
    results: list[dict] = []
    for image_id, name in enumerate(names):
        for box in truth[name]:
            w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                }
            )
        for box, score in detections.get(name, []):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "score": score,
                    "bbox": [box[0], box[1], box[2] - box[0] + 1, box[3] - box[1] + 1],
                }
            )
    if not annotations:
        return {"map_50": 0.0, "map_50_95": 0.0, "boxes_true": 0, "boxes_predicted": len(results)}
    ground = COCO()
    ground.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "polyp"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        ground.createIndex()
        if not results:
            return {"map_50": 0.0, "map_50_95": 0.0, "boxes_true": len(annotations), "boxes_predicted": 0}
        evaluation = COCOeval(ground, ground.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = np.maximum(evaluation.stats, 0)  # -1 means "no such boxes" in pycocotools
    return {
        "map_50": float(stats[1]),
        "map_50_95": float(stats[0]),
        "boxes_true": len(annotations),
        "boxes_predicted": len(results),
    }
