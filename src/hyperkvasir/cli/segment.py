"""Segmentation commands: train segment, evaluate segment."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from hyperkvasir.cli.common import (
    _FREEZE_BATCHNORM_HELP,
    _RECIPE_HELP,
    _SYNC_BATCHNORM_HELP,
    _WORKERS_HELP,
    _config,
    _log_to_stderr,
    evaluate_app,
    train_app,
)
from hyperkvasir.cli.console import out


def _segment_config(root: Path, config_file: Path | None, **overrides):
    from hyperkvasir.segment.config import SegmentConfig

    return _config(SegmentConfig, root, config_file, **overrides)


@train_app.command("segment")
def train_segment(
    root: Path = typer.Argument(..., help="Release root."),
    model: str = typer.Option(
        None, help="Encoder: tf_efficientnet_lite0 (offline weights), efficientnet_b3, resnet50, convnext_tiny."
    ),
    out_dir: Path = typer.Option(None, "--out", help="Run folder."),
    config_file: Path = typer.Option(None, "--config", help=_RECIPE_HELP),
    epochs: int = typer.Option(None),
    batch_size: int = typer.Option(None),
    lr: float = typer.Option(None),
    size: int = typer.Option(None, help="Square input size (352 in the PraNet family)."),
    loss: str = typer.Option(None, help="structure (PraNet: weighted BCE + weighted IoU) | dice."),
    weights: str = typer.Option(None, help="Local weights file for the encoder."),
    weights_partial: bool = typer.Option(
        None,
        "--weights-partial/--weights-strict",
        help="Load only the tensors of --weights that match (counts recorded).",
    ),
    pretrained: bool = typer.Option(None, "--pretrained/--no-pretrained"),
    scheme: str = typer.Option(None, help="segmentation (duplicate-aware 80/10/10) | kvasir-seg-official (880/120)."),
    seed: int = typer.Option(None, min=0),
    device: str = typer.Option(None),
    workers: int = typer.Option(None, help=_WORKERS_HELP),
    sync_batchnorm: bool = typer.Option(None, "--sync-batchnorm/--no-sync-batchnorm", help=_SYNC_BATCHNORM_HELP),
    freeze_batchnorm: bool = typer.Option(None, "--freeze-batchnorm/--train-batchnorm", help=_FREEZE_BATCHNORM_HELP),
    resume: bool = typer.Option(False, "--resume"),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Train the U-Net polyp baseline on the seeded segmentation split; test maps saved as 8-bit PNGs.

    Example: hyperkvasir train segment /data/hyper-kvasir --epochs 50 --out runs/unet-lite0
    """
    from hyperkvasir.segment import train
    from hyperkvasir.segment.config import check_segment_config

    config = _segment_config(
        root,
        config_file,
        model=model,
        out=str(out_dir) if out_dir else None,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        size=size,
        loss=loss,
        weights=weights,
        weights_partial=weights_partial,
        pretrained=pretrained,
        seed=seed,
        workers=workers,
        device=device,
        scheme=scheme,
        sync_batchnorm=sync_batchnorm,
        freeze_batchnorm=freeze_batchnorm,
        resume=resume,
    )
    check_segment_config(config)
    _log_to_stderr()
    metrics = train.train_segment(config, resume=resume, progress=True)
    if metrics:  # under torchrun, rank 0 reports
        _print_segmentation(metrics, as_json)
    return 0


def _print_segmentation(metrics: dict, as_json: bool) -> None:
    from hyperkvasir.metrics.segmentation import METRIC_KEYS

    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    out.print(f"scored {metrics['n']} images ({metrics['empty_truth']} with an empty truth)")
    out.print("  ".join(f"{key} {metrics[key]:.4f}" for key in METRIC_KEYS), soft_wrap=True)
    if "boxes" in metrics:
        out.print(f"boxes: mAP@0.5 {metrics['boxes']['map_50']:.4f}, mAP@0.5:0.95 {metrics['boxes']['map_50_95']:.4f}")


@evaluate_app.command("segment")
def evaluate_segment(
    pred: Path = typer.Option(None, help="Folder of predicted maps (8-bit PNG/JPG, any size), named by image stem."),
    truth: Path = typer.Option(None, help="Folder of ground-truth masks (e.g. segmented-images/masks)."),
    boxes: Path = typer.Option(None, help="bounding-boxes.json: also score boxes derived from the predictions."),
    subset: bool = typer.Option(False, "--subset", help="Score only predicted files (a test part)."),
    checkpoint: Path = typer.Option(None, help="External validation: a segmentation checkpoint run on --images."),
    images: Path = typer.Option(None, help="With --checkpoint: a folder of images."),
    masks: Path = typer.Option(None, help="With --checkpoint: their masks (same file stems)."),
    out_dir: Path = typer.Option(
        None, "--out", help="With --checkpoint: the predictions (default external-validation/)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Segmentation metrics with the evaluation toolbox's definitions (pysodmetrics), for prediction maps or for a
    checkpoint run on your own images and masks.

    Example: hyperkvasir evaluate segment --pred runs/unet/predictions --truth ROOT/segmented-images/masks --subset
    Example: hyperkvasir evaluate segment --checkpoint runs/unet/best.ckpt --images ours/images --masks ours/masks
    """
    from hyperkvasir.segment.evaluate import evaluate_segmentation, evaluate_segmentation_checkpoint

    if checkpoint is not None:
        from hyperkvasir.errors import require_output

        if images is None or masks is None or pred is not None or truth is not None or boxes is not None or subset:
            raise typer.BadParameter(
                "--checkpoint takes --images and --masks, not --pred/--truth/--boxes/--subset",
                param_hint="--checkpoint",
            )
        out_dir = out_dir or Path("external-validation")
        require_output(out_dir, folder=True)
        _print_segmentation(evaluate_segmentation_checkpoint(checkpoint, images, masks, out_dir), as_json)
        return 0
    if pred is None or truth is None:
        raise typer.BadParameter(
            "give --pred and --truth, or --checkpoint with --images and --masks", param_hint="--pred/--truth"
        )
    if out_dir is not None or images is not None or masks is not None:
        raise typer.BadParameter(
            "--out, --images and --masks go with --checkpoint; with --pred/--truth drop them", param_hint="--out"
        )
    _print_segmentation(evaluate_segmentation(pred, truth, boxes_json=boxes, subset=subset), as_json)
    return 0
