"""Batching shared by the image tasks: samples that fail to load are dropped and counted, not fatal."""

from __future__ import annotations

import torch


def collate_skipping(batch: list):
    """Stack a batch, dropping samples that failed to load; returns (images, labels, names, skipped)."""
    kept = [sample for sample in batch if sample is not None]
    if not kept:
        return None
    images, labels, names = zip(*kept)
    return torch.stack(images), torch.as_tensor(labels), list(names), len(batch) - len(kept)
