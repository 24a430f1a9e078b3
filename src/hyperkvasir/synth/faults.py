"""Faults the release is known to have, or a user's copy may get, planted into a twin and listed in FAULTS.json.

Each fault is ``{"kind", "files", "detail"}`` with paths relative to the tree root, so a validator or auditor
can be checked to report every planted fault and nothing else.
"""

from __future__ import annotations

import io
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from hyperkvasir.data.splits import official_chunk_folds
from hyperkvasir.synth.files import LabeledImage, jpeg_bytes, seeded_uuid


def _crossing_copy(images: list[LabeledImage], source: LabeledImage, names: random.Random) -> LabeledImage:
    """A new image of the source's class whose name lands it in the other fold of the 2-fold split."""
    siblings = sorted(f"{im.stem}.jpg" for im in images if im.cls is source.cls)
    while True:
        stem = seeded_uuid(names)
        files = sorted([*siblings, f"{stem}.jpg"])
        folds = dict(zip(files, official_chunk_folds(files, 2)))
        if folds[f"{stem}.jpg"] != folds[f"{source.stem}.jpg"]:
            return replace(source, stem=stem)


def plant_labeled_faults(
    root: Path, images: list[LabeledImage], names: random.Random, seed: int
) -> tuple[list[LabeledImage], set[str], list[dict]]:
    """Exact and near duplicates across folds, a label conflict, a truncated JPEG, an image without an
    image-labels.csv row."""
    rng = np.random.default_rng((seed, 5))
    faults: list[dict] = []
    by_class: dict[str, list[LabeledImage]] = {}
    for image in images:
        by_class.setdefault(image.cls.folder, []).append(image)

    exact_source = by_class["bbps-2-3"][0]
    exact = _crossing_copy(images, exact_source, names)
    (root / exact.relpath).write_bytes((root / exact_source.relpath).read_bytes())
    images = [*images, exact]
    faults.append(
        {
            "kind": "exact-duplicate",
            "files": [exact_source.relpath, exact.relpath],
            "detail": "byte-identical copy in the other fold of the 2-fold split",
        }
    )

    near_source = by_class["cecum"][0]
    near = _crossing_copy(images, near_source, names)
    with Image.open(root / near_source.relpath) as original:
        brighter = ImageEnhance.Brightness(original.convert("RGB")).enhance(1.04)
    (root / near.relpath).write_bytes(jpeg_bytes(brighter, quality=80))
    images = [*images, near]
    faults.append(
        {
            "kind": "near-duplicate",
            "files": [near_source.relpath, near.relpath],
            "detail": "re-encoded copy (quality 80, 4 % brighter) in the other fold of the 2-fold split",
        }
    )

    conflict_source = by_class["ulcerative-colitis-grade-2"][0]
    other = by_class["ulcerative-colitis-grade-2-3"][0].cls
    conflict = replace(conflict_source, cls=other, stem=seeded_uuid(names))
    (root / conflict.relpath).write_bytes((root / conflict_source.relpath).read_bytes())
    images = [*images, conflict]
    faults.append(
        {
            "kind": "label-conflict",
            "files": [conflict_source.relpath, conflict.relpath],
            "detail": f"the same bytes filed under {conflict_source.cls.folder} and {other.folder}",
        }
    )

    truncated = by_class["esophagitis-a"][-1]
    data = (root / truncated.relpath).read_bytes()
    (root / truncated.relpath).write_bytes(data[: int(len(data) * rng.uniform(0.4, 0.7))])
    faults.append(
        {"kind": "truncated-image", "files": [truncated.relpath], "detail": "JPEG cut short; the file does not decode"}
    )

    unlisted = by_class["retroflex-stomach"][-1]
    faults.append(
        {
            "kind": "missing-image-label",
            "files": [unlisted.relpath],
            "detail": "image has no row in labeled-images/image-labels.csv",
        }
    )
    return images, {unlisted.stem}, faults


def plant_segmented_faults(root: Path, chosen: list[LabeledImage], boxes: dict[str, dict]) -> list[dict]:
    """A mask whose size differs from its image and a box that leaves its image."""
    faults = []
    resized = chosen[0]
    mask_path = root / "segmented-images" / "masks" / f"{resized.stem}.jpg"
    with Image.open(mask_path) as mask:
        smaller = mask.resize((mask.width // 2, mask.height // 2), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    smaller.save(buffer, "JPEG", quality=90)
    mask_path.write_bytes(buffer.getvalue())
    faults.append(
        {
            "kind": "mask-size-mismatch",
            "files": [f"segmented-images/masks/{resized.stem}.jpg"],
            "detail": f"mask is {smaller.width}x{smaller.height}, image is {resized.size[0]}x{resized.size[1]}",
        }
    )

    outside = chosen[1]
    entry = boxes[outside.stem]
    entry["bbox"][0]["xmax"] = entry["width"] + 25
    faults.append(
        {
            "kind": "box-out-of-bounds",
            "files": ["segmented-images/bounding-boxes.json"],
            "key": outside.stem,
            "detail": f"box 0 of {outside.stem} has xmax {entry['width'] + 25} > width {entry['width']}",
        }
    )
    return faults
