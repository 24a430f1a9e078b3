"""What every task's LightningModule and LightningDataModule share, so each task writes only what is its own: the
model, its loss and its validation score (module), its parts of the release (data).

A task module counts its training images and loss through :meth:`TaskModule.count`, reports its validation
score through :meth:`TaskModule.validation_row`, and is loaded back from a checkpoint by
:meth:`TaskModule.from_checkpoint` (the one checkpoint loader). A task's data module sets ``train_set``,
``val_set`` and ``test_set`` in ``setup`` and names its ``collate``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from hyperkvasir.datasets.batches import collate_skipping
from hyperkvasir.engine.runs import checkpoint_config, load_checkpoint
from hyperkvasir.engine.sampling import EpochSampler


class TaskModule(L.LightningModule):
    """A task's LightningModule: the run config in the checkpoint's hyper-parameters (``task``, ``config``), the
    origin of its weights in every checkpoint, and one history row per epoch summed over the processes."""

    task: ClassVar[str]  # classify | segment | video, as checkpoints record it
    config_type: ClassVar[type]  # the task's config dataclass
    models: ClassVar[Mapping[str, Any]]  # the task's model (or encoder) registry

    def __init__(self, config, **hyper_parameters) -> None:
        super().__init__()
        self.config = config
        self.save_hyperparameters({"task": self.task, "config": dataclasses.asdict(config), **hyper_parameters})
        self.weights_from: dict | None = None
        self.seen, self.skipped, self.loss_sum = 0, 0, 0.0

    def on_train_epoch_start(self) -> None:
        self.seen, self.skipped, self.loss_sum = 0, 0, 0.0

    def count(self, loss: torch.Tensor, images: int, skipped: int = 0) -> torch.Tensor:
        """Add one training batch to the epoch's totals; returns ``loss`` for ``training_step`` to return."""
        self.seen += images
        self.skipped += skipped
        self.loss_sum += float(loss.detach()) * images
        return loss

    def validation_row(self) -> dict:
        """The task's validation figures for the epoch's history row (the same on every process)."""
        return {}

    def skipped_before_training(self) -> int:
        """Images the data module left out before the first epoch (known undecodable), counted in epoch 0."""
        return 0

    def epoch_row(self) -> dict:
        totals = self.trainer.strategy.reduce(
            torch.tensor([self.seen, self.loss_sum, self.skipped], dtype=torch.float64, device=self.device),
            reduce_op="sum",
        )
        seen, loss_sum, skipped = (float(v) for v in totals)
        if self.current_epoch == 0:
            skipped += self.skipped_before_training()
        return {
            "train_loss": loss_sum / max(seen, 1),
            "train_images": int(seen),
            "skipped_images": int(skipped),
            **self.validation_row(),
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["weights_from"] = self.weights_from

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str = "cpu") -> tuple[Any, dict]:
        """(module in eval mode on ``device``, the checkpoint dict) of a checkpoint of this task, read safely
        (:func:`~hyperkvasir.engine.runs.load_checkpoint`: tensors and plain values, never code)."""
        checkpoint = load_checkpoint(path, cls.task, device)
        module = cls(checkpoint_config(checkpoint, path, cls.config_type, cls.models), pretrained_weights=False)
        module.load_state_dict(checkpoint["state_dict"])
        return module.to(device).eval(), checkpoint


class TaskData(L.LightningDataModule):
    """A task's LightningDataModule: ``setup`` (the task's) sets ``train_set``/``val_set``/``test_set``; training
    batches come from one :class:`EpochSampler` sequence shared by the processes, validation and test are read
    whole, in order, on every process."""

    collate: ClassVar[Callable[[list], Any]] = staticmethod(collate_skipping)

    def __init__(self, *, batch_size: int, workers: int, seed: int) -> None:
        super().__init__()
        self.batch_size, self.workers, self.seed = batch_size, workers, seed
        self.train_set: Dataset
        self.val_set: Dataset
        self.test_set: Dataset

    def sample_weights(self) -> list[float] | None:
        """Per-image sampling weights of the training set (None: uniform)."""
        return None

    def set_epoch(self, epoch: int) -> None:
        self.train_set.set_epoch(epoch)  # type: ignore[attr-defined]  # every task's training set has one

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        sampler = EpochSampler(
            len(self.train_set),  # type: ignore[arg-type]  # every task's datasets are sized
            seed=self.seed,
            weights=self.sample_weights(),
            rank=trainer.global_rank if trainer else 0,
            world=trainer.world_size if trainer else 1,
        )
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.workers,
            collate_fn=type(self).collate,
            drop_last=len(sampler) > self.batch_size,
        )

    def val_dataloader(self) -> DataLoader:
        return self.evaluation_loader(self.val_set)

    def evaluation_loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=self.workers, collate_fn=type(self).collate)
