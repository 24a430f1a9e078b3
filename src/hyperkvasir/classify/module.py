"""Classification as a LightningModule: a registry model on uint8 batches normalised on the device, its loss, its
steps and the validation macro-F1 that chooses the checkpoint (over the whole validation set, never the test
fold). Training one fold through the engine is :func:`hyperkvasir.classify.train.train_classify`."""

from __future__ import annotations

import torch
from torch import nn

from hyperkvasir.classify.config import LOSSES, ClassifyConfig
from hyperkvasir.classify.losses import uc_distance_penalty
from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.engine import zero_loss
from hyperkvasir.engine.task import TaskModule
from hyperkvasir.errors import require_choice
from hyperkvasir.metrics.classification import classification_metrics
from hyperkvasir.models import MODELS, NUM_CLASSES, create_model


def _optimizer(config: ClassifyConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The configured optimizer (its name was checked against ``OPTIMIZERS`` before the run started)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(config: ClassifyConfig, optimizer: torch.optim.Optimizer):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs))
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=10)


class ClassifyModule(TaskModule):
    """A registry model on uint8 batches normalised on the device; validation macro-F1 over the whole
    validation set chooses the checkpoint."""

    task = "classify"
    config_type = ClassifyConfig
    models = MODELS

    def __init__(self, config: ClassifyConfig, *, pretrained_weights: bool = True) -> None:
        super().__init__(config)
        self.spec = MODELS[config.model]
        self.model, self.weights_from = create_model(
            config.model,
            pretrained=config.pretrained and pretrained_weights,
            weights=config.weights,
            weights_partial=config.weights_partial,
        )
        require_choice("loss", config.loss, LOSSES)
        self.loss = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        # log of the training class prior, for the logit-adjusted loss; set when fitting starts, kept in checkpoints
        self.register_buffer("log_prior", torch.zeros(NUM_CLASSES))
        self.outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.val_metrics: dict = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = normalise(images, self.spec.mean, self.spec.std)
        if images.is_cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def on_fit_start(self) -> None:
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        counts = self.trainer.datamodule.train_set.class_counts()
        prior = torch.tensor([max(counts.get(i, 0), 1) for i in range(NUM_CLASSES)], dtype=torch.float32)
        self.log_prior.copy_((prior / prior.sum()).log())

    def training_step(self, batch, index: int):
        if batch is None:  # every sample of the batch failed to load
            return zero_loss(self)
        images, targets, _, skipped = batch
        logits = self(images)
        if self.config.loss == "logit-adjusted":  # train on adjusted logits; predict with the raw ones
            logits = logits + self.config.logit_tau * self.log_prior
        loss = self.loss(logits, targets)
        if self.config.loss == "uc-ordinal":
            loss = loss + uc_distance_penalty(logits, targets)
        return self.count(loss, len(targets), skipped)

    def on_validation_epoch_start(self) -> None:
        self.outputs = []

    def validation_step(self, batch, index: int) -> None:
        if batch is not None:
            images, targets, _, _ = batch
            self.outputs.append((torch.softmax(self(images).float(), 1).cpu(), targets.cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self.outputs:
            return
        probs = torch.cat([p for p, _ in self.outputs]).numpy()
        labels = torch.cat([t for _, t in self.outputs]).tolist()
        metrics = classification_metrics(labels, probs.argmax(1))
        self.val_metrics = {
            "val_macro_f1": metrics["macro_f1"],
            "val_accuracy": metrics["accuracy"],
            "val_mcc": metrics["mcc"],
            "val_images": len(labels),
        }
        for key, value in self.val_metrics.items():  # the same on every process: no reduction needed
            self.log(key, float(value), prog_bar=key == "val_macro_f1")

    def validation_row(self) -> dict:
        return self.val_metrics

    def skipped_before_training(self) -> int:
        """Files the manifest already knows as undecodable (in any part of the fold), counted once."""
        return self.trainer.datamodule.skipped

    def configure_optimizers(self):
        optimizer = _optimizer(self.config, self.model)
        scheduler = _scheduler(self.config, optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val_macro_f1", "interval": "epoch"},
        }


__all__ = ["ClassifyModule"]
