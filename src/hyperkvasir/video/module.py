"""A frame classifier over the video classes as a LightningModule, trained through the engine.

Frames come from ``hyperkvasir video frames`` (extracted into ``OUT/frames`` when no ``frames`` folder is given;
the extraction resumes). The checkpoint is chosen on the validation videos by the video-level accuracy of the
mean frame probability; the test videos are scored once at the end, per video.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from hyperkvasir.data.taxonomy import VIDEO_CLASS_NAMES
from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.engine import EngineOptions, RunFolder, fit, zero_loss
from hyperkvasir.engine.runs import check_device, checkpoint_config, load_checkpoint
from hyperkvasir.errors import DataError, HyperKvasirError, require_choice, require_ranges
from hyperkvasir.models import MODELS, create_model
from hyperkvasir.outputs import atomic_write
from hyperkvasir.video.data import VideoData, video_split
from hyperkvasir.video.evaluate import video_level_metrics


@dataclass
class VideoConfig:
    root: str
    out: str = "runs/video"
    frames: str | None = None  # a frames folder of `hyperkvasir video frames` (default: OUT/frames, extracted)
    model: str = "tf_efficientnet_lite0"
    every: int = 5
    size: int = 96
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    workers: int | None = None  # data-loading processes per rank; None = engine.runs.loader_workers()
    pretrained: bool = True
    device: str = "auto"
    select_on_train: bool = False  # allow choosing the checkpoint on training videos when no validation video exists
    max_steps_per_epoch: int = 0
    sync_batchnorm: bool = False  # under DDP: batch-norm statistics over the global batch (no effect on one process)
    freeze_batchnorm: bool = False  # batch norm on its running statistics while training (fine-tuning, CPU DDP)


class FrameClassifierModule(L.LightningModule):
    def __init__(self, config: VideoConfig, *, pretrained_weights: bool = True) -> None:
        super().__init__()
        self.config = config
        self.save_hyperparameters(
            {"task": "video", "config": dataclasses.asdict(config), "classes": list(VIDEO_CLASS_NAMES)}
        )
        self.spec = MODELS[config.model]
        self.model, self.weights_from = create_model(
            config.model, pretrained=config.pretrained and pretrained_weights, num_classes=len(VIDEO_CLASS_NAMES)
        )
        self.seen, self.loss_sum, self.per_video, self.val_accuracy = 0, 0.0, defaultdict(list), 0.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(normalise(images, self.spec.mean, self.spec.std))

    def on_train_epoch_start(self) -> None:
        self.seen, self.loss_sum = 0, 0.0

    def training_step(self, batch, index: int):
        if batch is None:  # every sample of the batch failed to load
            return zero_loss(self)
        images, targets, _, _ = batch
        loss = nn.functional.cross_entropy(self(images), targets)
        self.seen += len(targets)
        self.loss_sum += float(loss.detach()) * len(targets)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.per_video = defaultdict(list)

    def validation_step(self, batch, index: int) -> None:
        if batch is not None:
            images, _, videos, _ = batch
            for video, prob in zip(videos, torch.softmax(self(images).float(), 1).cpu().numpy()):
                self.per_video[video].append(prob)

    def on_validation_epoch_end(self) -> None:
        labels = self.trainer.datamodule.labels
        self.val_accuracy = (
            video_level_metrics(self.per_video, labels)["mean_probability"]["accuracy"] if self.per_video else 0.0
        )
        self.log("val_video_accuracy", self.val_accuracy, prog_bar=True)  # whole set on every process

    def epoch_row(self) -> dict:
        totals = self.trainer.strategy.reduce(
            torch.tensor([self.seen, self.loss_sum], dtype=torch.float64, device=self.device), reduce_op="sum"
        )
        seen, loss_sum = (float(v) for v in totals)
        return {
            "train_loss": loss_sum / max(seen, 1),
            "train_images": int(seen),
            "val_video_accuracy": self.val_accuracy,
            "val_videos": len(self.per_video),
        }

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=self.config.lr, weight_decay=1e-4)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["weights_from"] = self.weights_from


@torch.no_grad()
def frame_probabilities(module: FrameClassifierModule, loader) -> dict[str, list[np.ndarray]]:
    module.eval()
    per_video: dict[str, list[np.ndarray]] = defaultdict(list)
    for batch in loader:
        if batch is None:
            continue
        images, _, videos, _ = batch
        for video, prob in zip(videos, torch.softmax(module(images.to(module.device)).float(), 1).cpu().numpy()):
            per_video[video].append(prob)
    return per_video


def load_video_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[FrameClassifierModule, dict]:
    """(module in eval mode, the checkpoint dict) of a checkpoint of ``train video``, loaded safely."""
    checkpoint = load_checkpoint(path, "video", device)
    module = FrameClassifierModule(checkpoint_config(checkpoint, path, VideoConfig, MODELS), pretrained_weights=False)
    module.load_state_dict(checkpoint["state_dict"])
    return module.to(device).eval(), checkpoint


def train_video(config: VideoConfig, *, resume: bool = False, progress: bool = False) -> dict:
    """Check the model and protocol, extract frames (resumable), train through the engine, select on the
    validation videos, score the test videos; returns the results (rank 0) or {} (other processes)."""
    folder = RunFolder(config.out)
    config = folder.config_for(config, resume)
    require_choice("model", config.model, MODELS)
    require_ranges(
        ("--epochs", config.epochs, 1, None),
        ("--batch-size", config.batch_size, 1, None),
        ("--size", config.size, 16, 2048),
        ("--every", config.every, 1, None),
        ("--lr", config.lr, 0, None),
        ("--workers", config.workers, 0, None),
    )
    check_device(config.device)
    if config.frames and not (Path(config.frames) / "frames.parquet").is_file():
        raise HyperKvasirError(
            f"--frames {config.frames}: no frames.parquet there; extract frames with "
            f"`hyperkvasir video frames ROOT {config.frames}` or drop --frames"
        )
    split = video_split(config.root, seed=config.seed)
    if not split["val"] and not config.select_on_train:
        raise DataError(
            f"{config.root}: the video split has no validation video ({len(split['train'])} train, "
            f"{len(split['test'])} test), so the checkpoint would be chosen on training videos; add videos or "
            f"pass --select-on-train to accept that protocol (it is printed in results.md)"
        )
    extract = None if config.frames else dict(every=config.every, size=config.size)
    trainer, module, data = fit(
        lambda: (
            FrameClassifierModule(config),
            VideoData(
                Path(config.frames) if config.frames else folder.path / "frames",
                config.root,
                split,
                size=config.size,
                batch_size=config.batch_size,
                workers=config.workers,
                seed=config.seed,
                extract=extract,
            ),
        ),
        folder,
        EngineOptions(
            epochs=config.epochs,
            monitor="val_video_accuracy",
            seed=config.seed,
            device=config.device,
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
    best, checkpoint = load_video_checkpoint(folder.best, module.device)
    results = {
        "config": dataclasses.asdict(config),
        "weights_from": checkpoint.get("weights_from"),
        "best_epoch": checkpoint["epoch"],
        "frames": data.extracted.frames if data.extracted else None,
        "failed_videos": data.extracted.failed if data.extracted else {},
        "split": {k: len(v) for k, v in split.items()},
        "validation_from": "val videos" if split["val"] else "train videos (no val video in this tree)",
        "test": video_level_metrics(frame_probabilities(best, data.evaluation_loader(data.test_set)), data.labels),
    }
    with atomic_write(folder.path / "metrics-test.json", "w") as handle:
        json.dump(results, handle, indent=2)
    return results
