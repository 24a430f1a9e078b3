"""The segmented polyps as ``{"image", "mask", "boxes", "name"}`` samples, transformed together, and the task's
data module over the segmentation scheme's split.

Masks are JPEG in the release: they are read by the one mask reader (0/1 maps scaled up, files that are no mask
refused) and thresholded (``>= 128``) before any transform, and every resize of a
mask is nearest-neighbour. Boxes come from ``bounding-boxes.json`` (keyed by image stem) and are rescaled when
the file's width/height differ from the image (a resized copy).
"""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from torch.utils.data import Dataset

from hyperkvasir.data.download import ensure_parts
from hyperkvasir.data.imaging import decode_rgb, load_mask
from hyperkvasir.data.segmentation_splits import segmentation_scheme_split
from hyperkvasir.data.tables import read_bounding_boxes
from hyperkvasir.engine.runs import loader_workers
from hyperkvasir.engine.task import TaskData
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.segment.config import SegmentConfig


def segmentation_transform(size: int, train: bool) -> A.Compose:
    """The usual polyp recipe: resize to ``size``², flips, rotations, scale and colour jitter when training."""
    steps: list = [A.Resize(size, size, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST)]
    if train:
        steps += [
            A.HorizontalFlip(),
            A.VerticalFlip(),
            A.RandomRotate90(),
            A.Affine(
                scale=(0.75, 1.25),
                rotate=(-30, 30),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                p=0.7,
            ),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1, hue=0.02, p=0.5),
        ]
    return A.Compose(
        [*steps, ToTensorV2()],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["box_labels"], clip=True, min_visibility=0.1),
    )


class SegmentedPolyps(Dataset):
    """Segmented images named by file name; the image is a uint8 CHW tensor, the mask a float HW tensor."""

    def __init__(
        self,
        root: str | Path,
        files: list[str],
        *,
        size: int = 352,
        train: bool = False,
        seed: int = 0,
        download: bool = False,
    ) -> None:
        release = ensure_parts(root, ("segmented",), download_missing=download)
        by_name = {p.name: p for p in release.segmented_pairs()[0]}
        mask_by_stem = release.segmented_masks()
        missing = [f for f in files if f not in by_name or Path(f).stem not in mask_by_stem]
        if missing:
            raise HyperKvasirError(
                f"{release.root}: {len(missing)} segmented images lack an image or a mask "
                f"(first: {missing[0]}); run `hyperkvasir validate {release.root}`"
            )
        self.images = [by_name[f] for f in files]
        self.masks = [mask_by_stem[Path(f).stem] for f in files]
        self.boxes = read_bounding_boxes(release.bounding_boxes_json) if release.bounding_boxes_json else {}
        self.transform = segmentation_transform(size, train)
        self.train, self.seed, self.epoch = train, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray, list[list[float]]]:
        """Image, binary mask (uint8 0/1) and boxes at the original size."""
        image = decode_rgb(self.images[index])
        mask = load_mask(self.masks[index]).astype(np.uint8)  # a file that is no mask is refused (MaskError)
        if mask.shape != image.shape[:2]:
            raise DataError(
                f"{self.masks[index]}: mask is {mask.shape[1]}x{mask.shape[0]}, image is "
                f"{image.shape[1]}x{image.shape[0]}; run `hyperkvasir validate`"
            )
        entry = self.boxes.get(self.images[index].stem)
        boxes = [list(box) for box in entry.scaled(image.shape[1], image.shape[0])] if entry else []
        return image, mask, boxes

    def __getitem__(self, index: int) -> dict:
        image, mask, boxes = self.raw(index)
        if self.train:
            self.transform.set_random_seed(hash((self.seed, self.epoch, index)) & 0x7FFFFFFF)
        out = self.transform(image=image, mask=mask, bboxes=boxes, box_labels=[0] * len(boxes))
        return {
            "image": out["image"],
            "mask": out["mask"].float(),
            "boxes": torch.as_tensor(np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)),
            "name": self.images[index].name,
        }


class SegmentData(TaskData):
    """Train/val/test of the segmentation scheme; validation and test are scored whole on every process."""

    train_set: SegmentedPolyps
    val_set: SegmentedPolyps
    test_set: SegmentedPolyps

    def __init__(self, config: SegmentConfig) -> None:
        super().__init__(batch_size=config.batch_size, workers=loader_workers(config.workers), seed=config.seed)
        self.config = config

    def setup(self, stage: str | None = None) -> None:
        config = self.config
        split = segmentation_scheme_split(config.root, config.scheme, seed=config.seed)
        if not split.train or not split.val or not split.test:
            raise DataError(
                f"{config.root}: the {config.scheme} split has {len(split.train)}/{len(split.val)}/"
                f"{len(split.test)} train/val/test images; at least one each is needed"
            )
        self.train_set = SegmentedPolyps(config.root, list(split.train), size=config.size, train=True, seed=config.seed)
        self.val_set = SegmentedPolyps(config.root, list(split.val), size=config.size)
        self.test_set = SegmentedPolyps(config.root, list(split.test), size=config.size)
