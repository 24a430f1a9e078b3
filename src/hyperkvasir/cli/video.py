"""Video commands: video frames, train video, evaluate video."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.text import Text

from hyperkvasir.cli.common import (
    _FREEZE_BATCHNORM_HELP,
    _SYNC_BATCHNORM_HELP,
    _WORKERS_HELP,
    _log_to_stderr,
    evaluate_app,
    train_app,
    video_app,
)
from hyperkvasir.cli.console import out, progress_bar


@video_app.command("frames")
def video_frames(
    root: Path = typer.Argument(..., help="Release root."),
    out_dir: Path = typer.Argument(..., metavar="OUT", help="Frames folder (a rerun resumes it)."),
    every: int = typer.Option(None, help="Keep every N-th frame."),
    fps: float = typer.Option(None, help="Or: keep F frames per second."),
    size: int = typer.Option(None, help="Scale frames so the shorter side is S pixels."),
    workers: int = typer.Option(0, min=0, help="Processes (0 = one per core)."),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Extract JPEG frames from the labeled videos, in parallel and resumable; writes OUT/frames.parquet.

    Example: hyperkvasir video frames /data/hyper-kvasir ./frames --fps 1 --size 256
    """
    from dataclasses import asdict

    from hyperkvasir.errors import require_output, require_ranges
    from hyperkvasir.video.frames import extract_frames

    require_ranges(("--every", every, 1, None), ("--fps", fps, 0.001, None), ("--size", size, 16, 8192))
    require_output(out_dir, folder=True, option="OUT")
    report = extract_frames(
        root, out_dir, every=every, fps=fps, size=size, workers=workers or None, progress=progress_bar("videos")
    )
    if as_json:
        print(json.dumps(asdict(report), indent=2))
    else:
        out.print(
            f"{report.frames:,} frames from {report.videos - len(report.failed)} videos "
            f"({report.skipped_finished} already finished) → {report.manifest}",
            soft_wrap=True,
        )
        for video, reason in report.failed.items():
            out.print(Text("  failed:", style="yellow"), f"{video}: {reason}")
    return 1 if report.failed else 0


@train_app.command("video")
def train_video_command(
    root: Path = typer.Argument(..., help="Release root (with labeled-videos/)."),
    model: str = typer.Option(None, help="Frame classifier (a classification model name)."),
    out_dir: Path = typer.Option(None, "--out", help="Run folder."),
    frames: Path = typer.Option(None, help="Frames of `hyperkvasir video frames` (default: extracted into OUT)."),
    every: int = typer.Option(None, help="Keep every N-th frame when extracting."),
    size: int = typer.Option(None, help="Square frame size."),
    epochs: int = typer.Option(None),
    batch_size: int = typer.Option(None),
    lr: float = typer.Option(None),
    pretrained: bool = typer.Option(None, "--pretrained/--no-pretrained"),
    select_on_train: bool = typer.Option(
        None,
        "--select-on-train",
        help="Allow choosing the checkpoint on training videos when the tree has no validation video.",
    ),
    seed: int = typer.Option(None, min=0),
    device: str = typer.Option(None),
    workers: int = typer.Option(None, help=_WORKERS_HELP),
    sync_batchnorm: bool = typer.Option(None, "--sync-batchnorm/--no-sync-batchnorm", help=_SYNC_BATCHNORM_HELP),
    freeze_batchnorm: bool = typer.Option(None, "--freeze-batchnorm/--train-batchnorm", help=_FREEZE_BATCHNORM_HELP),
    resume: bool = typer.Option(False, "--resume"),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Train a frame classifier on the training videos; select on validation videos; score test videos.

    Example: hyperkvasir train video /data/hyper-kvasir --every 10 --size 160 --epochs 5 --out runs/video
    """
    from hyperkvasir.cli.common import _config
    from hyperkvasir.video.config import VideoConfig, check_video_config
    from hyperkvasir.video.train import train_video

    config = _config(
        VideoConfig,
        root,
        None,
        resume=resume,
        model=model,
        out=str(out_dir) if out_dir else None,
        frames=str(frames) if frames else None,
        every=every,
        size=size,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        pretrained=pretrained,
        select_on_train=select_on_train,
        seed=seed,
        workers=workers,
        device=device,
        sync_batchnorm=sync_batchnorm,
        freeze_batchnorm=freeze_batchnorm,
    )
    check_video_config(config)
    _log_to_stderr()
    results = train_video(config, resume=resume, progress=True)
    if results:
        print(
            json.dumps(results, indent=2)
            if as_json
            else json.dumps({k: results["test"][k]["accuracy"] for k in ("mean_probability", "majority_vote")})
        )
    return 0


@evaluate_app.command("video")
def evaluate_video(
    pred: Path = typer.Option(..., help="OUT folder of `hyperkvasir predict CKPT ROOT --part videos` (a video model)."),
    root: Path = typer.Option(..., help="The release whose videos were predicted: its video labels are the truth."),
    out_file: Path = typer.Option(None, "--out", help="Also write the metrics (the --json document) to this file."),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Video-level metrics of a video checkpoint's per-frame predictions: each labeled video decided by the mean
    frame probability and by the majority of its frames, scored against the release's video labels.

    Example: hyperkvasir evaluate video --pred video-findings --root /data/hyper-kvasir --json
    """
    from hyperkvasir.errors import require_output
    from hyperkvasir.outputs import atomic_write
    from hyperkvasir.video.evaluate import AGGREGATIONS, evaluate_video_predictions

    require_output(out_file, folder=False, option="--out")
    metrics = evaluate_video_predictions(pred, root)
    if out_file is not None:
        with atomic_write(out_file, "w") as handle:
            json.dump(metrics, handle, indent=2)
    if as_json:
        print(json.dumps(metrics, indent=2))
        return 0
    out.print(
        f"{metrics['videos']} labeled videos scored ({len(metrics['unlabeled'])} predicted videos not in the labels, "
        f"{len(metrics['unmapped'])} with a finding no video class covers, {metrics['not_predicted']} labeled "
        f"videos not predicted)",
        soft_wrap=True,
    )
    keys = {"accuracy": "accuracy", "macro_f1": "macro F1", "mcc": "MCC"}
    out.print(f"{'aggregation':18s}" + "".join(f"{name:22s}" for name in keys.values()))
    for aggregation in AGGREGATIONS:
        m = metrics[aggregation]
        cells = "".join(f"{m[k]:.3f} [{m[k + '_ci'][0]:.3f}, {m[k + '_ci'][1]:.3f}]".ljust(22) for k in keys)
        out.print(f"{aggregation.replace('_', ' '):18s}{cells}".rstrip(), soft_wrap=True)
    out.print("(95 % bootstrap intervals over videos)")
    return 0
