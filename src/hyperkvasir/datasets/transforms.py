"""Albumentations pipelines on uint8 images (the paper's recipe and a stronger modern one) and the batched
normalisation that follows them on the device.

Every pipeline starts from the square of :func:`~hyperkvasir.data.imaging.load_square` at the input size (the
paper's ``Resize(256) → CenterCrop(256) → Resize(224)`` framing) and returns a uint8 CHW tensor: normalising
per sample in float would cost more than decoding from the cache, so :func:`normalise` does it per batch.
"""

from __future__ import annotations

import albumentations as A
import cv2
import torch
from albumentations.pytorch import ToTensorV2

RECIPES = ("paper", "modern", "rare")


def classification_transform(recipe: str, input_size: int, train: bool) -> A.Compose:
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if not train:
        return A.Compose([ToTensorV2()])
    if recipe == "paper":  # the paper's scripts: RandomHorizontalFlip, RandomVerticalFlip, RandomRotation(90)
        augment = [A.HorizontalFlip(), A.VerticalFlip(), paper_rotation()]
    elif recipe == "rare":  # strong but label-safe: geometry and light, never hue (colour is a finding here)
        augment = [
            A.HorizontalFlip(),
            A.VerticalFlip(),
            A.Affine(
                scale=(0.8, 1.25),
                translate_percent=(-0.08, 0.08),
                rotate=(-180, 180),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                p=0.9,
            ),
            A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.7),
            A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.Sharpen(alpha=(0.1, 0.3))], p=0.3),
        ]
    else:
        augment = [
            A.RandomResizedCrop(size=(input_size, input_size), scale=(0.5, 1.0), ratio=(0.8, 1.25)),
            A.HorizontalFlip(),
            A.VerticalFlip(),
            A.RandomRotate90(),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.15, hue=0.02, p=0.8),
        ]
    return A.Compose([*augment, ToTensorV2()])


def paper_rotation() -> A.Rotate:
    """torchvision's ``RandomRotation(90)`` as the paper used it: every image, an angle uniform in [-90°, 90°],
    nearest-neighbour, the canvas kept, corners filled black."""
    return A.Rotate(limit=(-90, 90), interpolation=cv2.INTER_NEAREST, border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0)


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 NCHW batch → float, ``(x / 255 - mean) / std``, on the batch's device."""
    mean_t = torch.tensor(mean, device=images.device).view(1, -1, 1, 1) * 255
    std_t = torch.tensor(std, device=images.device).view(1, -1, 1, 1) * 255
    return (images.float() - mean_t) / std_t
