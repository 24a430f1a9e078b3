"""Segmentation losses on logits.

``structure_loss`` is the PraNet family's (Fan et al., MICCAI 2020; also Polyp-PVT, HSNet): binary cross-entropy
and IoU, both weighted by ``1 + 5·|avgpool31(mask) − mask|`` so pixels near the boundary count up to six times.
``dice_loss`` is 1 − soft Dice per image, averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("structure", "dice")


def structure_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weight = 1 + 5 * torch.abs(F.avg_pool2d(mask, kernel_size=31, stride=1, padding=15) - mask)
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    weighted_bce = (weight * bce).sum((2, 3)) / weight.sum((2, 3))
    prob = torch.sigmoid(logits)
    inter = (prob * mask * weight).sum((2, 3))
    union = ((prob + mask) * weight).sum((2, 3))
    weighted_iou = 1 - (inter + 1) / (union - inter + 1)
    return (weighted_bce + weighted_iou).mean()


def dice_loss(logits: torch.Tensor, mask: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    prob = torch.sigmoid(logits)
    inter = (prob * mask).sum((2, 3))
    return (1 - (2 * inter + eps) / (prob.sum((2, 3)) + mask.sum((2, 3)) + eps)).mean()


def segmentation_loss(name: str):
    if name == "structure":
        return structure_loss
    if name == "dice":
        return dice_loss
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
