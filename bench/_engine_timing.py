"""Shared by the engine benchmarks: a callback that times training steps inside the engine."""

from __future__ import annotations

import time

import lightning as L
import torch


class StepTimer(L.Callback):
    """Images per second over training batches ``warmup`` … ``warmup + steps`` of the first epoch."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps, self.images, self.started, self.seconds = warmup, steps, 0, 0.0, 0.0

    def on_train_batch_start(self, trainer, module, batch, index: int) -> None:
        if index == self.warmup:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, index: int) -> None:
        if self.warmup <= index < self.warmup + self.steps:
            self.images += len(batch[0])
        if index == self.warmup + self.steps - 1:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds = time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0
