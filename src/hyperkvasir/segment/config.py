"""The run config of ``train segment`` and ``benchmark --task segment``, and the one check of its options."""

from __future__ import annotations

from dataclasses import dataclass

from hyperkvasir.data.segmentation_splits import SEGMENTATION_SCHEMES
from hyperkvasir.engine.runs import check_device
from hyperkvasir.errors import require_choice, require_compatible, require_ranges
from hyperkvasir.segment.loss import LOSSES
from hyperkvasir.segment.model import ENCODERS


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


def check_segment_config(config: SegmentConfig) -> None:
    """Refuse an option out of range or a name outside its choices with one line naming it (exit 2), before any
    file is written."""
    require_choice("encoder", config.model, ENCODERS)
    require_choice("loss", config.loss, LOSSES)
    require_choice("segmentation scheme", config.scheme, SEGMENTATION_SCHEMES)
    require_compatible(config.weights, config.pretrained)
    require_ranges(
        ("--epochs", config.epochs, 1, None),
        ("--batch-size", config.batch_size, 1, None),
        ("--size", config.size, 32, 2048),
        ("--lr", config.lr, 0, None),
        ("--workers", config.workers, 0, None),
    )
    check_device(config.device)
