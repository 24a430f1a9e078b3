"""A segmentation checkpoint on images: per-pixel probability maps of a dataset (:func:`mask_probabilities`), and
on new images binary mask PNGs, overlays, and boxes in the release's schema (:func:`predict_masks`).

Everything is written into a staging folder beside ``OUT`` that replaces it whole when done (an interrupted run
leaves ``OUT`` as it was): ``OUT/masks/<name>.png`` (0/255 at probability > 0.5 — the one threshold of the
metrics), the 8-bit probability maps the metrics score in ``OUT/probabilities/``, ``OUT/overlays/<name>.png``
(the mask's outline and boxes drawn on the image) and ``OUT/bounding-boxes.json`` keyed by name as the
release's ``segmented-images/bounding-boxes.json`` is: ``{"<stem>": {"height", "width", "bbox": [{"label":
"polyp", "xmin", "ymin", "xmax", "ymax"}]}}`` (integer pixels, connected components of at least the minimum polyp
size). ``<name>`` is the image's stem, with its subfolders when the inputs span several (``site1/img001``).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from hyperkvasir.data.imaging import ImageDecodeError, decode_rgb, header_size
from hyperkvasir.data.inputs import output_names, resolve_inputs
from hyperkvasir.datasets.batches import collate_skipping
from hyperkvasir.engine.runs import pick_device
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.metrics.segmentation import PROBABILITY_THRESHOLD
from hyperkvasir.outputs import atomic_write, staged_folder
from hyperkvasir.segment.boxes import boxes_from_mask
from hyperkvasir.segment.data import SegmentedPolyps
from hyperkvasir.segment.module import SegmentModule


def _png(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", image)
    with atomic_write(path) as handle:
        handle.write(encoded.tobytes())


@torch.no_grad()
def mask_probabilities(module: SegmentModule, dataset: SegmentedPolyps, batch_size: int = 8):
    """Yield (file name, probability map at the original image size, float32 in [0, 1])."""
    module.eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_skipping)  # in dataset order
    index = 0
    for batch in loader:
        with torch.autocast(module.device.type, enabled=module.device.type == "cuda"):
            probs = torch.sigmoid(module(batch["image"].to(module.device)).float())[:, 0].cpu().numpy()
        for name, prob in zip(batch["name"], probs):
            width, height = header_size(dataset.images[index])
            index += 1
            yield name, cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)


@torch.no_grad()
def predict_masks(
    checkpoint: str | Path,
    inputs: list[str | Path],
    out: str | Path,
    *,
    part: str | None = None,
    device: str = "auto",
    progress=None,
) -> dict:
    """Masks, overlays and boxes for every image of ``inputs``; returns counts and the undecodable files."""
    module, _ = SegmentModule.from_checkpoint(checkpoint, pick_device(device))
    paths, root = resolve_inputs(inputs, part)
    if not paths:
        raise HyperKvasirError(f"no images found in {', '.join(map(str, inputs))}")
    name_of = dict(zip(paths, output_names(paths, inputs, root)))  # site1/img001 and site2/img001 stay apart
    out = Path(out)
    with staged_folder(out, "predict", reads=[root] if root else inputs) as staging:  # whole, or not at all
        boxes, failed = _write_predictions(module, paths, name_of, staging, progress)
    return {
        "images": len(boxes),
        "boxes": sum(len(e["bbox"]) for e in boxes.values()),
        "out": str(out),
        "undecodable": failed,
    }


def _write_predictions(
    module, paths: list[Path], name_of: dict[Path, str], out: Path, progress
) -> tuple[dict, list[str]]:
    """Write every image's mask, overlay and probability map, then ``bounding-boxes.json``, into ``out``."""
    size, boxes, failed = module.config.size, {}, []
    for path in progress(paths, len(paths)) if progress else paths:
        try:
            rgb = decode_rgb(path)
        except ImageDecodeError:
            failed.append(str(path))
            continue
        h, w = rgb.shape[:2]
        batch = torch.from_numpy(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)).permute(2, 0, 1)
        logits = module(batch[None].to(module.device)).float()
        probability = cv2.resize(torch.sigmoid(logits)[0, 0].cpu().numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
        mask = (probability > PROBABILITY_THRESHOLD).astype(np.uint8) * 255
        found = [box for box, _ in boxes_from_mask(probability)]
        boxes[name_of[path]] = {
            "height": h,
            "width": w,
            "bbox": [
                {"label": "polyp", "xmin": int(x0), "ymin": int(y0), "xmax": int(x1), "ymax": int(y1)}
                for x0, y0, x1, y1 in found
            ],
        }
        overlay = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(overlay, contours, -1, (0, 255, 0), max(1, w // 300))
        for x0, y0, x1, y1 in found:
            cv2.rectangle(overlay, (int(x0), int(y0)), (int(x1), int(y1)), (0, 200, 255), max(1, w // 300))
        _png(out / "masks" / f"{name_of[path]}.png", mask)
        _png(out / "overlays" / f"{name_of[path]}.png", overlay)
        _png(out / "probabilities" / f"{name_of[path]}.png", np.round(probability * 255).astype(np.uint8))
    if not boxes:
        raise DataError(f"none of the {len(paths)} inputs decodes as an image (first: {failed[0]}); nothing written")
    with atomic_write(out / "bounding-boxes.json", "w") as handle:
        json.dump(boxes, handle, indent=2)
    return boxes, failed
