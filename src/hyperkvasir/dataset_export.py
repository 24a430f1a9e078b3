"""Take the release anywhere: ImageFolder trees, COCO, YOLO, Hugging Face ``datasets`` and WebDataset shards.

Every export is written into a temporary folder beside ``OUT`` and renamed into place when complete, so an
interrupted export leaves no half-written shard or JSON. ``OUT`` must be new or empty unless ``overwrite``, and
even then only an earlier export is replaced (:mod:`hyperkvasir.outputs`). No file is read or linked through a
link that leaves the release. A mask whose size differs from its image's is refused, as training refuses it:
scaling would guess how it was misaligned (a resized copy or a crop). Class ids are the taxonomy (paper) order.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import yaml

from hyperkvasir.data.imaging import MIN_POLYP_COMPONENT, header_size, load_mask
from hyperkvasir.data.layout import Release
from hyperkvasir.data.segmentation_splits import segmentation_split
from hyperkvasir.data.splits import assignment
from hyperkvasir.data.tables import read_bounding_boxes
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.errors import DataError, DatasetNotFoundError, HyperKvasirError
from hyperkvasir.outputs import staged_folder

FORMATS = ("imagefolder", "coco", "yolo", "hf", "webdataset")


def _place(source: Path, target: Path, copy: bool) -> str:
    """Hard link, else symbolic link, else copy (``copy`` forces a copy); returns what was done."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        try:
            os.link(source, target)
            return "hardlink"
        except OSError:
            try:
                os.symlink(source.resolve(), target)
                return "symlink"
            except OSError:
                pass
    shutil.copyfile(source, target)
    return "copy"


def _inside(release: Release, path: Path) -> Path:
    """``path`` when it (through any link) is a file inside the release; a link leaving it is refused."""
    if not release.inside(path):
        raise DataError(
            f"{path}: a link to {path.resolve()}, outside the release {release.root}; the export reads "
            f"nothing outside the tree (replace the link with the file, or remove it; `hyperkvasir "
            f"validate`)"
        )
    return path


def _refuse_skipped(release: Release) -> None:
    """An export is a copy of the release: one that silently lacks the files no listing holds (links leaving
    the tree or pointing nowhere, entries that are not files) would pass for complete."""
    skipped = release.skipped()
    if skipped:
        first = skipped[0]
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise DataError(
            f"{release.root / first.path}: {first.code}{f' to {first.target}' if first.target else ''}"
            f"{more}; the export would lack it, so nothing was exported: fix it (`hyperkvasir validate` "
            f"lists every one), then export again"
        )


def _labeled_folds(release: Release, scheme: str, seed: int) -> dict[int, list[tuple[Path, int]]]:
    """fold → [(image path, class index)] for the labeled images of a split scheme."""
    release.require("labeled")
    split = assignment(release.root, scheme, seed=seed)
    by_name = {p.name: _inside(release, p) for p in release.labeled_files()}
    folds: dict[int, list[tuple[Path, int]]] = {k: [] for k in range(split.k)}
    for name, (cls, fold, _) in sorted(split.files.items()):
        if name in by_name:
            folds[fold].append((by_name[name], cls.index))
    return folds


def _segmented(release: Release) -> tuple[list[Path], dict[str, Path], dict]:
    if release.segmented_dir is None:
        raise DatasetNotFoundError(
            f"{release.root}: this format needs the segmented part; get it with "
            f"`hyperkvasir download {release.root} --parts segmented`"
        )
    boxes = read_bounding_boxes(release.bounding_boxes_json) if release.bounding_boxes_json else {}
    images = [_inside(release, p) for p in release.segmented_pairs()[0]]
    masks = {stem: _inside(release, p) for stem, p in release.segmented_masks().items()}
    return images, masks, boxes


def _components(mask_path: Path, width: int, height: int) -> list[np.ndarray]:
    """Binary masks of the connected polyp regions of a JPEG mask (specks under 25 px dropped); a mask that is
    not ``width`` × ``height`` (its image's size) is refused."""
    mask = load_mask(mask_path)
    if mask.shape != (height, width):
        raise DataError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, its image is {width}x{height}; "
            f"resize the mask with nearest-neighbour to the image size or restore it "
            f"(`hyperkvasir validate` lists every such mask)"
        )
    count, labels = cv2.connectedComponents(mask.astype(np.uint8))
    return [labels == i for i in range(1, count) if (labels == i).sum() >= MIN_POLYP_COMPONENT]


# ---------------------------------------------------------------------------------------------- formats
def export_imagefolder(release: Release, out: Path, *, scheme: str, seed: int, copy: bool) -> dict:
    done: dict[str, int] = {}
    for fold, items in _labeled_folds(release, scheme, seed).items():
        for path, index in items:
            how = _place(path, out / f"fold-{fold}" / CLASSES[index].folder / path.name, copy)
            done[how] = done.get(how, 0) + 1
    return {"files": done}


def export_coco(release: Release, out: Path, *, scheme: str, seed: int, copy: bool) -> dict:
    """``polyps/annotations.json`` (instances with RLE masks and boxes) and ``labeled/annotations.json``
    (image-level classification, one category per class)."""
    from pycocotools import mask as mask_utils

    images, masks, boxes = _segmented(release)
    coco_images: list[dict] = []
    annotations: list[dict] = []
    for image_id, path in enumerate(images, start=1):
        width, height = header_size(path)
        _place(path, out / "polyps" / "images" / path.name, copy)
        coco_images.append({"id": image_id, "file_name": f"images/{path.name}", "width": width, "height": height})
        for region in _components(masks[path.stem], width, height) if path.stem in masks else []:
            rle = mask_utils.encode(np.asfortranarray(region.astype(np.uint8)))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                    "area": float(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                }
            )
    _write_json(
        out / "polyps" / "annotations.json",
        {
            "info": {"description": "HyperKvasir segmented polyps (Borgli et al. 2020, CC BY 4.0)"},
            "images": coco_images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "polyp"}],
            "box_annotations_of_the_release": {
                p.stem: [vars(b) for b in boxes[p.stem].boxes] for p in images if p.stem in boxes
            },
        },
    )
    labeled = {
        "images": [],
        "annotations": [],
        "categories": [{"id": c.index + 1, "name": c.folder, "supercategory": c.category} for c in CLASSES],
    }
    if release.labeled_dir is not None:
        for fold, items in _labeled_folds(release, scheme, seed).items():
            for path, index in items:
                image_id = len(labeled["images"]) + 1
                width, height = header_size(path)
                labeled["images"].append(
                    {
                        "id": image_id,
                        "file_name": str(path.relative_to(release.root)),
                        "width": width,
                        "height": height,
                        "fold": fold,
                    }
                )
                labeled["annotations"].append({"id": image_id, "image_id": image_id, "category_id": index + 1})
        _write_json(out / "labeled" / "annotations.json", labeled)
    return {"instances": len(annotations), "polyp_images": len(coco_images), "labeled_images": len(labeled["images"])}


def export_yolo(release: Release, out: Path, *, scheme: str, seed: int, copy: bool, final: Path) -> dict:
    """YOLO detection (boxes of bounding-boxes.json) and segmentation (mask polygons) labels, with data.yaml
    whose ``path`` is the absolute ``final`` folder (YOLO trainers resolve a relative one against their own
    datasets folder, not the yaml's)."""
    images, masks, boxes = _segmented(release)
    split = segmentation_split(release.root, seed=seed)
    subset_of = {name: subset for subset in ("train", "val", "test") for name in getattr(split, subset)}
    counts = {"boxes": 0, "polygons": 0}
    for path in images:
        subset = subset_of.get(path.name, "train")
        width, height = header_size(path)
        _place(path, out / "images" / subset / path.name, copy)
        entry = boxes.get(path.stem)
        lines = []
        for x0, y0, x1, y1 in entry.scaled(width, height) if entry else []:
            lines.append(
                f"0 {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
                f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"
            )
        _write_text(out / "labels" / subset / f"{path.stem}.txt", lines)
        counts["boxes"] += len(lines)
        polygons = []
        for region in _components(masks[path.stem], width, height) if path.stem in masks else []:
            contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            contour = max(contours, key=cv2.contourArea).reshape(-1, 2)
            if len(contour) >= 3:
                coords = " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in contour)
                polygons.append(f"0 {coords}")
        _write_text(out / "labels-segment" / subset / f"{path.stem}.txt", polygons)
        counts["polygons"] += len(polygons)
    for name, labels in (("data.yaml", "labels"), ("data-segment.yaml", "labels-segment")):
        spec = {
            "path": str(final.resolve()),
            "train": "images/train",
            "val": "images/val",
            "test": "images/test",
            "names": {0: "polyp"},
        }
        _write_text(
            out / name,
            [
                f"# YOLO {'detection' if labels == 'labels' else 'segmentation'}: labels in {labels}/",
                yaml.safe_dump(spec, sort_keys=False).rstrip("\n"),
            ],
        )
    return counts


def export_hf(release: Release, out: Path, *, scheme: str, seed: int, copy: bool) -> dict:
    """A ``datasets.DatasetDict`` with one split per fold, ``ClassLabel`` names in taxonomy order."""
    import datasets

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=[c.folder for c in CLASSES]),
            "file_name": datasets.Value("string"),
        }
    )
    splits = {}
    for fold, items in _labeled_folds(release, scheme, seed).items():
        splits[f"fold_{fold}"] = datasets.Dataset.from_dict(
            {
                "image": [str(p) for p, _ in items],
                "label": [i for _, i in items],
                "file_name": [p.name for p, _ in items],
            },
            features=features,
        )
    datasets.DatasetDict(splits).save_to_disk(str(out))
    return {name: len(split) for name, split in splits.items()}


def export_webdataset(
    release: Release, out: Path, *, scheme: str, seed: int, copy: bool, shard_bytes: int = 100 * 2**20
) -> dict:
    """Tar shards per fold (``fold-K-000000.tar`` …), each sample ``<stem>.jpg`` + ``.cls`` + ``.json``."""
    import webdataset as wds

    shards = {}
    for fold, items in _labeled_folds(release, scheme, seed).items():
        pattern = str(out / f"fold-{fold}-%06d.tar")
        with wds.ShardWriter(pattern, maxsize=shard_bytes, verbose=0) as sink:
            for path, index in items:
                sink.write(
                    {
                        "__key__": path.stem,
                        "jpg": path.read_bytes(),
                        "cls": index,
                        "json": {"class": CLASSES[index].folder, "fold": fold, "file_name": path.name},
                    }
                )
        shards[f"fold_{fold}"] = len(list(out.glob(f"fold-{fold}-*.tar")))
    return {"shards": shards}


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def _write_text(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


_EXPORTERS: dict[str, Callable[..., dict]] = {
    "imagefolder": export_imagefolder,
    "coco": export_coco,
    "yolo": export_yolo,
    "hf": export_hf,
    "webdataset": export_webdataset,
}


def export(
    fmt: str,
    root: str | Path,
    out: str | Path,
    *,
    scheme: str = "official-2fold",
    seed: int = 0,
    copy: bool = False,
    overwrite: bool = False,
) -> dict:
    """Export the tree at ``root`` as ``fmt`` into ``out``, atomically."""
    if fmt not in _EXPORTERS:
        raise HyperKvasirError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    release = Release(root)
    _refuse_skipped(release)
    out = Path(out)
    extra = {"final": out} if fmt == "yolo" else {}
    with staged_folder(out, "export", option="OUT", overwrite=overwrite, reads=[release.root]) as staging:
        summary = _EXPORTERS[fmt](release, staging, scheme=scheme, seed=seed, copy=copy, **extra)
    return {"format": fmt, "out": str(out), **summary}
