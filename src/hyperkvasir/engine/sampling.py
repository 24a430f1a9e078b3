"""A sampler whose order depends only on (seed, epoch) and that shards itself over processes.

Lightning calls ``set_epoch`` on it at every epoch start, so a resumed run draws exactly the batches an
uninterrupted one would. With ``weights`` it draws with replacement in proportion to them (class-balanced
sampling), and under DDP each rank takes every world-th draw of the same sequence: a distributed weighted
sampler, so balancing survives multi-GPU training.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    def __init__(
        self, size: int, *, seed: int, weights: Sequence[float] | None = None, rank: int = 0, world: int = 1
    ) -> None:
        self.size, self.seed, self.rank, self.world, self.epoch = size, seed, rank, world, 0
        self.weights = torch.as_tensor(weights, dtype=torch.double) if weights is not None else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        if self.weights is None:
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.multinomial(self.weights, self.size, replacement=True, generator=generator)
        padded = torch.cat([order, order[: (-len(order)) % self.world]])  # every rank gets the same count
        return iter(padded[self.rank :: self.world].tolist())

    def __len__(self) -> int:
        return -(-self.size // self.world)
