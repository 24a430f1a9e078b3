from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hyperkvasir.cli import main
from hyperkvasir.data.imaging import binarise_mask, decode_gray
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.dataset_export import export
from hyperkvasir.errors import HyperKvasirError


def test_imagefolder_links_and_loads_with_torchvision(tiny_twin, tmp_path: Path) -> None:
    from torchvision.datasets import ImageFolder

    summary = export("imagefolder", tiny_twin.root, tmp_path / "if")
    assert summary["files"] == {"hardlink": sum(tiny_twin.per_class.values())}
    for fold in (0, 1):
        loaded = ImageFolder(str(tmp_path / "if" / f"fold-{fold}"))
        assert len(loaded) == sum(1 for f in tiny_twin.folds2.values() if f == fold)
    copied = export("imagefolder", tiny_twin.root, tmp_path / "copy", copy=True)
    assert copied["files"] == {"copy": sum(tiny_twin.per_class.values())}
    some = next((tmp_path / "copy").rglob("*.jpg"))
    assert os.stat(some).st_nlink == 1


def test_coco_masks_round_trip_with_pycocotools(tiny_twin, tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    export("coco", tiny_twin.root, tmp_path / "coco")
    coco = COCO(str(tmp_path / "coco" / "polyps" / "annotations.json"))
    assert len(coco.getImgIds()) == len(tiny_twin.segmented)
    for image in coco.loadImgs(coco.getImgIds()):
        union = np.zeros((image["height"], image["width"]), bool)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            union |= coco.annToMask(annotation).astype(bool)
        stem = Path(image["file_name"]).stem
        truth = binarise_mask(decode_gray(tiny_twin.root / "segmented-images" / "masks" / f"{stem}.jpg"))
        assert (union == truth).mean() > 0.999
        assert (tmp_path / "coco" / "polyps" / image["file_name"]).is_file()
    labeled = COCO(str(tmp_path / "coco" / "labeled" / "annotations.json"))
    assert [c["name"] for c in labeled.loadCats(labeled.getCatIds())] == [c.folder for c in CLASSES]
    assert len(labeled.getImgIds()) == sum(tiny_twin.per_class.values())


def _yolo_consumer(data_yaml: Path) -> dict[str, list[tuple[Path, Path]]]:
    """(image, label) pairs per subset found the way YOLO trainers find them: the yaml's ``path`` (absolute, or
    else relative to the trainer's datasets folder, here the working directory) joined with each subset, and the
    label beside the image with ``images`` → ``labels``."""
    import yaml

    spec = yaml.safe_load(data_yaml.read_text())
    base = Path(spec["path"])
    base = base if base.is_absolute() else Path.cwd() / base
    pairs = {}
    for subset in ("train", "val", "test"):
        images = sorted((base / spec[subset]).glob("*.jpg"))
        pairs[subset] = [(p, base / spec[subset].replace("images", "labels", 1) / f"{p.stem}.txt") for p in images]
    return pairs


def test_yolo_labels_are_normalised(tiny_twin, tmp_path: Path) -> None:
    summary = export("yolo", tiny_twin.root, tmp_path / "yolo")
    assert summary["boxes"] == sum(tiny_twin.boxes_per_image.values()) and summary["polygons"] >= 6
    pairs = _yolo_consumer(tmp_path / "yolo" / "data.yaml")
    assert sum(len(p) for p in pairs.values()) == len(tiny_twin.segmented)
    assert all(label.is_file() for subset in pairs.values() for _, label in subset)
    for label in (tmp_path / "yolo").glob("labels*/*/*.txt"):
        for line in label.read_text().splitlines():
            values = [float(v) for v in line.split()[1:]]
            assert line.startswith("0 ") and all(0 <= v <= 1 for v in values)
    assert len(list((tmp_path / "yolo" / "images").rglob("*.jpg"))) == len(tiny_twin.segmented)


def test_hf_dataset_loads_back(tiny_twin, tmp_path: Path) -> None:
    import datasets

    export("hf", tiny_twin.root, tmp_path / "hf")
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert set(loaded) == {"fold_0", "fold_1"}
    assert loaded["fold_0"].features["label"].names == [c.folder for c in CLASSES]
    sample = loaded["fold_1"][0]
    assert sample["image"].size[0] > 0
    (original,) = (tiny_twin.root / "labeled-images").glob(f"*/*/*/{sample['file_name']}")
    assert CLASSES[sample["label"]].folder == original.parent.name
    assert len(loaded["fold_0"]) + len(loaded["fold_1"]) == sum(tiny_twin.per_class.values())


def test_webdataset_shards_stream_back(tiny_twin, tmp_path: Path) -> None:
    import webdataset as wds

    export("webdataset", tiny_twin.root, tmp_path / "wds")
    shards = sorted(str(p) for p in (tmp_path / "wds").glob("fold-1-*.tar"))
    samples = list(wds.WebDataset(shards, shardshuffle=False).decode().to_tuple("__key__", "cls", "json"))
    assert len(samples) == sum(1 for f in tiny_twin.folds2.values() if f == 1)
    counts = Counter(meta["class"] for _, _, meta in samples)
    assert all(CLASSES[cls].folder == meta["class"] for _, cls, meta in samples) and counts


def test_bad_outputs_and_missing_parts(tiny_twin, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(HyperKvasirError, match="not empty; pass --overwrite"):
        export("coco", tiny_twin.root, tmp_path / "full")
    assert main(["export", "imagefolder", str(tiny_twin.root), str(tmp_path / "full"), "--overwrite"]) == 2
    assert (tmp_path / "full" / "x").read_text() == "x"  # a folder the toolkit did not make is never deleted
    assert main(["export", "imagefolder", str(tiny_twin.root), str(tmp_path / "made")]) == 0
    assert main(["export", "coco", str(tiny_twin.root), str(tmp_path / "made"), "--overwrite"]) == 0
    assert (tmp_path / "made" / "polyps").is_dir() and not (tmp_path / "made" / "fold-0").exists()
    only_labeled = tmp_path / "labeled-only"
    (only_labeled).mkdir()
    os.symlink(tiny_twin.root / "labeled-images", only_labeled / "labeled-images")
    os.symlink(tiny_twin.root / "official_splits", only_labeled / "official_splits")
    assert main(["export", "yolo", str(only_labeled), str(tmp_path / "y")]) == 2
    assert not (tmp_path / "y").exists() and not list(tmp_path.glob(".y.*"))  # nothing half-written
    assert main(["export", "tiff", str(tiny_twin.root), str(tmp_path / "t")]) == 2
