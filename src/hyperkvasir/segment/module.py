"""Polyp segmentation as a LightningModule, trained through the engine on the seeded, duplicate-aware split (or
Kvasir-SEG's official one).

The run folder is the engine's: ``config.json``, ``metrics.csv``/``metrics.json``, ``last.ckpt``, ``best.ckpt``
(best validation Dice; the test part is never looked at before the end), TensorBoard logs, ``curves.png``, then
``predictions/`` (test probability maps as 8-bit PNGs at the ground-truth size) and ``metrics-test.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from hyperkvasir.data.imaging import header_size
from hyperkvasir.data.layout import Release
from hyperkvasir.data.splits import segmentation_scheme_split
from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.engine import EngineOptions, EpochSampler, RunFolder, fit
from hyperkvasir.engine.runs import check_device, checkpoint_config, load_checkpoint, loader_workers
from hyperkvasir.errors import DataError, require_choice, require_compatible, require_ranges
from hyperkvasir.metrics.segmentation import PROBABILITY_THRESHOLD
from hyperkvasir.outputs import atomic_write
from hyperkvasir.segment.data import SegmentedPolyps, collate_segmentation
from hyperkvasir.segment.loss import LOSSES, segmentation_loss
from hyperkvasir.segment.model import ENCODERS, create_unet

log = logging.getLogger(__name__)


@dataclass
class SegmentConfig:
    root: str
    model: str = "tf_efficientnet_lite0"  # the encoder
    out: str = "runs/segment"
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-4
    size: int = 352
    loss: str = "structure"  # structure | dice
    pretrained: bool = True
    weights: str | None = None
    weights_partial: bool = False
    seed: int = 0
    workers: int | None = None  # data-loading processes per rank; None = engine.runs.loader_workers()
    amp: bool = True
    device: str = "auto"
    max_steps_per_epoch: int = 0
    scheme: str = "segmentation"  # segmentation (duplicate-aware 80/10/10) | kvasir-seg-official (880/120)
    sync_batchnorm: bool = False  # under DDP: batch-norm statistics over the global batch (no effect on one process)
    freeze_batchnorm: bool = False  # batch norm on its running statistics while training (fine-tuning, CPU DDP)


class SegmentData(L.LightningDataModule):
    """Train/val/test of the segmentation scheme; validation and test are scored whole on every process."""

    def __init__(self, config: SegmentConfig) -> None:
        super().__init__()
        self.config, self.batch_size = config, config.batch_size

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

    def set_epoch(self, epoch: int) -> None:
        self.train_set.set_epoch(epoch)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        sampler = EpochSampler(
            len(self.train_set),
            seed=self.config.seed,
            rank=trainer.global_rank if trainer else 0,
            world=trainer.world_size if trainer else 1,
        )
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=loader_workers(self.config.workers),
            collate_fn=collate_segmentation,
            drop_last=len(sampler) > self.batch_size,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set,
            batch_size=self.batch_size,
            num_workers=loader_workers(self.config.workers),
            collate_fn=collate_segmentation,
        )


class SegmentationModule(L.LightningModule):
    """U-Net on a timm encoder; per-image Dice at the metrics' probability threshold selects the checkpoint."""

    def __init__(self, config: SegmentConfig, *, pretrained_weights: bool = True) -> None:
        super().__init__()
        self.config = config
        self.save_hyperparameters({"task": "segment", "config": dataclasses.asdict(config)})
        self.model, self.weights_from = create_unet(
            config.model,
            pretrained=config.pretrained and pretrained_weights,
            weights=config.weights,
            weights_partial=config.weights_partial,
        )
        encoder_config = getattr(self.model.encoder, "pretrained_cfg", {}) or {}
        self.mean = tuple(encoder_config.get("mean", (0.5,) * 3))
        self.std = tuple(encoder_config.get("std", (0.5,) * 3))
        self.loss = segmentation_loss(config.loss)
        self.seen, self.loss_sum, self.scores, self.val_dice = 0, 0.0, [], 0.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(normalise(images, self.mean, self.std))

    def on_train_epoch_start(self) -> None:
        self.seen, self.loss_sum = 0, 0.0

    def training_step(self, batch: dict, index: int) -> torch.Tensor:
        loss = self.loss(self(batch["image"]).float(), batch["mask"][:, None])
        self.seen += len(batch["image"])
        self.loss_sum += float(loss.detach()) * len(batch["image"])
        return loss

    def on_validation_epoch_start(self) -> None:
        self.scores = []

    def validation_step(self, batch: dict, index: int) -> None:
        prediction = (torch.sigmoid(self(batch["image"]).float()[:, 0]) > PROBABILITY_THRESHOLD).float()
        truth = batch["mask"].float()
        inter, total = (prediction * truth).sum((1, 2)), prediction.sum((1, 2)) + truth.sum((1, 2))
        self.scores += torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.zeros_like(total)).tolist()

    def on_validation_epoch_end(self) -> None:
        self.val_dice = float(np.mean(self.scores)) if self.scores else 0.0
        self.log("val_dice", self.val_dice, prog_bar=True)  # the whole set on every process: no reduction

    def epoch_row(self) -> dict:
        totals = self.trainer.strategy.reduce(
            torch.tensor([self.seen, self.loss_sum], dtype=torch.float64, device=self.device), reduce_op="sum"
        )
        seen, loss_sum = (float(v) for v in totals)
        return {
            "train_loss": loss_sum / max(seen, 1),
            "train_images": int(seen),
            "val_dice": self.val_dice,
            "val_images": len(self.scores),
        }

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.config.epochs))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["weights_from"] = self.weights_from


def load_segmentation_checkpoint(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[SegmentationModule, dict]:
    """(module in eval mode, the checkpoint dict) of a checkpoint of ``train segment``, loaded safely."""
    checkpoint = load_checkpoint(path, "segment", device)
    module = SegmentationModule(checkpoint_config(checkpoint, path, SegmentConfig, ENCODERS), pretrained_weights=False)
    module.load_state_dict(checkpoint["state_dict"])
    return module.to(device).eval(), checkpoint


@torch.no_grad()
def predict_probabilities(module: SegmentationModule, dataset: SegmentedPolyps, batch_size: int = 8):
    """Yield (file name, probability map at the original image size, float32 in [0, 1])."""
    module.eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_segmentation)  # in dataset order
    index = 0
    for batch in loader:
        with torch.autocast(module.device.type, enabled=module.device.type == "cuda"):
            probs = torch.sigmoid(module(batch["image"].to(module.device)).float())[:, 0].cpu().numpy()
        for name, prob in zip(batch["name"], probs):
            width, height = header_size(dataset.images[index])
            index += 1
            yield name, cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)


def train_segmenter(config: SegmentConfig, *, resume: bool = False, progress: bool = False) -> dict:
    """Train through the engine, select on the validation part, predict the test part; the test metrics
    (rank 0) or {} (other processes)."""
    from hyperkvasir.segment.evaluate import evaluate_segmentation

    folder = RunFolder(config.out)
    config = folder.config_for(config, resume)
    require_choice("encoder", config.model, ENCODERS)
    require_choice("loss", config.loss, LOSSES)
    require_compatible(config.weights, config.pretrained)
    require_ranges(
        ("--epochs", config.epochs, 1, None),
        ("--batch-size", config.batch_size, 1, None),
        ("--size", config.size, 32, 2048),
        ("--lr", config.lr, 0, None),
        ("--workers", config.workers, 0, None),
    )
    check_device(config.device)
    trainer, module, data = fit(
        lambda: (SegmentationModule(config), SegmentData(config)),
        folder,
        EngineOptions(
            epochs=config.epochs,
            monitor="val_dice",
            seed=config.seed,
            device=config.device,
            precision="auto" if config.amp else "32-true",
            max_steps_per_epoch=config.max_steps_per_epoch,
            progress=progress,
            sync_batchnorm=config.sync_batchnorm,
            freeze_batchnorm=config.freeze_batchnorm,
        ),
        config=config,
        resume=resume,
    )
    if not trainer.is_global_zero:
        return {}
    best, checkpoint = load_segmentation_checkpoint(folder.best, module.device)
    predictions = folder.path / "predictions"
    predictions.mkdir(exist_ok=True)
    for name, prob in predict_probabilities(best, data.test_set):
        ok, encoded = cv2.imencode(".png", np.round(prob * 255).astype(np.uint8))
        with atomic_write(predictions / f"{Path(name).stem}.png") as handle:
            handle.write(encoded.tobytes())
    release = Release(config.root)
    metrics = evaluate_segmentation(
        predictions, release.segmented_dir / "masks", boxes_json=release.bounding_boxes_json, subset=True
    )
    history = json.loads((folder.path / "metrics.json").read_text())
    metrics |= {
        "encoder": config.model,
        "scheme": config.scheme,
        "weights_from": checkpoint.get("weights_from"),
        "best_epoch": checkpoint["epoch"],
        "world_size": trainer.world_size,
        "train_images_per_s": float(np.mean([h["train_images_per_s"] for h in history])),
    }
    with atomic_write(folder.path / "metrics-test.json", "w") as handle:
        json.dump(metrics, handle, indent=2)
    return metrics
