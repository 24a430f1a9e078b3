"""A frame classifier over the video classes as a LightningModule, trained through the engine
(:func:`hyperkvasir.video.train.train_video`).

The checkpoint is chosen on the validation videos by the video-level accuracy of the mean frame probability.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from hyperkvasir.data.taxonomy import VIDEO_CLASS_NAMES
from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.engine import zero_loss
from hyperkvasir.engine.task import TaskModule
from hyperkvasir.models import MODELS, create_model
from hyperkvasir.video.config import VideoConfig
from hyperkvasir.video.evaluate import video_level_metrics


class VideoModule(TaskModule):
    task = "video"
    config_type = VideoConfig
    models = MODELS

    def __init__(self, config: VideoConfig, *, pretrained_weights: bool = True) -> None:
        super().__init__(config, classes=list(VIDEO_CLASS_NAMES))
        self.spec = MODELS[config.model]
        self.model, self.weights_from = create_model(
            config.model, pretrained=config.pretrained and pretrained_weights, num_classes=len(VIDEO_CLASS_NAMES)
        )
        self.per_video: dict[str, list] = defaultdict(list)
        self.val_accuracy = 0.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(normalise(images, self.spec.mean, self.spec.std))

    def training_step(self, batch, index: int):
        if batch is None:  # every sample of the batch failed to load
            return zero_loss(self)
        images, targets, _, skipped = batch
        return self.count(nn.functional.cross_entropy(self(images), targets), len(targets), skipped)

    def on_validation_epoch_start(self) -> None:
        self.per_video = defaultdict(list)

    def validation_step(self, batch, index: int) -> None:
        if batch is not None:
            images, _, videos, _ = batch
            for video, prob in zip(videos, torch.softmax(self(images).float(), 1).cpu().numpy()):
                self.per_video[video].append(prob)

    def on_validation_epoch_end(self) -> None:
        labels = self.trainer.datamodule.labels  # type: ignore[attr-defined]
        self.val_accuracy = (
            video_level_metrics(self.per_video, labels)["mean_probability"]["accuracy"] if self.per_video else 0.0
        )
        self.log("val_video_accuracy", self.val_accuracy, prog_bar=True)  # whole set on every process

    def validation_row(self) -> dict:
        return {"val_video_accuracy": self.val_accuracy, "val_videos": len(self.per_video)}

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=self.config.lr, weight_decay=1e-4)
