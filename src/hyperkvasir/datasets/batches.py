"""Batching shared by every task: samples that fail to load are dropped and counted, not fatal."""

from __future__ import annotations

import torch


def collate_skipping(batch: list):
    """Stack a batch, dropping samples that failed to load (``None``); ``None`` when none loaded.

    Tuple samples (image, label, name) give (images, labels, names, skipped); dict samples give a dict whose
    equal-shaped tensors are stacked and whose other values (boxes, whose number varies per image; names) stay
    lists, plus ``skipped``."""
    kept = [sample for sample in batch if sample is not None]
    if not kept:
        return None
    skipped = len(batch) - len(kept)
    if isinstance(kept[0], dict):
        collated: dict = {"skipped": skipped}
        for key in kept[0]:
            values = [sample[key] for sample in kept]
            stackable = isinstance(values[0], torch.Tensor) and all(v.shape == values[0].shape for v in values)
            collated[key] = torch.stack(values) if stackable else values
        return collated
    images, labels, names = zip(*kept)
    return torch.stack(images), torch.as_tensor(labels), list(names), skipped
