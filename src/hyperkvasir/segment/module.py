"""Polyp segmentation as a LightningModule: a U-Net on a timm encoder, its loss, and per-image Dice on the
validation part (at the metrics' probability threshold), which selects the checkpoint."""

from __future__ import annotations

import numpy as np
import torch

from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.engine.task import TaskModule
from hyperkvasir.metrics.segmentation import PROBABILITY_THRESHOLD
from hyperkvasir.segment.config import SegmentConfig
from hyperkvasir.segment.loss import segmentation_loss
from hyperkvasir.segment.model import ENCODERS, create_unet


class SegmentModule(TaskModule):
    """U-Net on a timm encoder; per-image Dice at the metrics' probability threshold selects the checkpoint."""

    task = "segment"
    config_type = SegmentConfig
    models = ENCODERS  # names only: the checkpoint loader asks whether the recorded encoder is one of them

    def __init__(self, config: SegmentConfig, *, pretrained_weights: bool = True) -> None:
        super().__init__(config)
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
        self.scores: list[float] = []
        self.val_dice = 0.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(normalise(images, self.mean, self.std))

    def training_step(self, batch: dict, index: int) -> torch.Tensor:
        loss = self.loss(self(batch["image"]).float(), batch["mask"][:, None])
        return self.count(loss, len(batch["image"]), batch["skipped"])

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

    def validation_row(self) -> dict:
        return {"val_dice": self.val_dice, "val_images": len(self.scores)}

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.config.epochs))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
