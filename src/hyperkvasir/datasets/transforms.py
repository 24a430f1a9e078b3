"""Albumentations pipelines: the paper's recipe and a stronger modern one, applied to the cached square.

Input to every pipeline is the square of :func:`~hyperkvasir.data.imaging.load_square` at
:func:`square_size` (256 for a 224 input, as the paper's ``Resize(256) → CenterCrop(256) → Resize(224)``).
"""

from __future__ import annotations

import albumentations as A
from albumentations.pytorch import ToTensorV2

RECIPES = ("paper", "modern")


def square_size(input_size: int) -> int:
    """Side of the cached square for an input size: the paper's 256 : 224 ratio."""
    return round(input_size * 256 / 224)


def classification_transform(recipe: str, input_size: int, train: bool,
                             mean: tuple[float, ...], std: tuple[float, ...]) -> A.Compose:
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    finish = [A.Normalize(mean=mean, std=std), ToTensorV2()]
    if not train:
        return A.Compose([A.Resize(input_size, input_size), *finish])
    if recipe == "paper":  # flips and rotations of the paper's scripts (RandomRotation(90) → 90° steps)
        augment = [A.Resize(input_size, input_size), A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90()]
    else:
        augment = [
            A.RandomResizedCrop(size=(input_size, input_size), scale=(0.5, 1.0), ratio=(0.8, 1.25)),
            A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90(),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.15, hue=0.02, p=0.8),
        ]
    return A.Compose([*augment, *finish])
