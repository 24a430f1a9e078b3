"""The run config of ``train video`` and ``benchmark --task video``, and its one checker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hyperkvasir.engine.runs import check_device
from hyperkvasir.errors import HyperKvasirError, require_choice, require_ranges
from hyperkvasir.models import MODELS


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


def check_video_config(config: VideoConfig) -> None:
    """Refuse a config whose model, numbers, device or frames folder cannot run, with one line naming the option,
    before any file is written."""
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
