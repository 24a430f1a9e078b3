"""Callbacks every task gets: epoch seeding, one history row per epoch (metrics.csv/json) and the curve PNG."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import lightning as L
import torch

from hyperkvasir.engine.runs import seed_everything
from hyperkvasir.outputs import atomic_write


class EpochSeeding(L.Callback):
    """Seed Python, NumPy and torch from (seed, epoch, rank) and tell the datamodule the epoch, so dropout of
    epoch *e* is the same in an uninterrupted and a resumed run and differs between the processes of a
    distributed one (the sampler shares one sequence and each sample's augmentation is seeded by its index)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        seed_everything(self.seed * 1000 + trainer.current_epoch + 1_000_003 * trainer.global_rank)
        datamodule = trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(trainer.current_epoch)


class FrozenBatchNorm(L.Callback):
    """Batch-norm layers normalise with their running statistics while training (eval mode) and those statistics
    stay as loaded; their scale and shift still learn. Every process then computes the same function of each
    image whatever its batch, so N processes × batch B learn as one process × batch N·B: for fine-tuning
    pretrained weights on small per-device batches, and on CPUs, where SyncBatchNorm does not run."""

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch, batch_idx: int) -> None:
        for layer in module.modules():  # Lightning puts the module back in train mode after each validation
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                layer.eval()


class EpochHistory(L.Callback):
    """One row per epoch from the module's ``epoch_row()`` plus throughput and learning rate, written as
    ``metrics.json`` and ``metrics.csv`` before the epoch's checkpoint is saved (so a resume restores it).

    ``train_images_per_s`` is the training images of all processes over the training steps' wall time (loading
    included, validation excluded); ``epoch_s`` is the whole epoch, validation included."""

    def __init__(self, run: Path) -> None:
        self.run, self.rows, self.started, self.trained_until = run, [], 0.0, 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.started = self.trained_until = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        self.trained_until = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        training = self.trained_until - self.started
        row = {"epoch": trainer.current_epoch, **module.epoch_row()}
        row["train_images_per_s"] = row.get("train_images", 0) / training if training > 0 else 0.0
        row["epoch_s"] = time.perf_counter() - self.started
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if trainer.is_global_zero:
            write_history(self.run, self.rows)

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.rows:
            plot_curves(self.rows, self.run / "curves.png")

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])


def write_history(run: Path, rows: list[dict]) -> None:
    with atomic_write(run / "metrics.json", "w") as handle:
        json.dump(rows, handle, indent=2)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_write(run / "metrics.csv", "w") as handle:
        writer = csv.DictWriter(handle, keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def plot_curves(rows: list[dict], path: Path) -> None:
    """Training loss and every validation metric per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    keys = [k for k in rows[0] if k.startswith("val_")]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].plot(epochs, [r.get("train_loss") for r in rows], marker="o")
    axes[0].set(title="training loss", xlabel="epoch")
    for key in keys:
        axes[1].plot(epochs, [r.get(key) for r in rows], marker="o", label=key)
    axes[1].set(title="validation", xlabel="epoch")
    if keys:
        axes[1].legend(fontsize=7)
    figure.tight_layout()
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)
