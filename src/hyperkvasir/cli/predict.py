"""``predict`` and ``export-model``: any task's checkpoint on images, folders, a release part or video files, or
as a deployable file with its model card."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.text import Text

from hyperkvasir.cli.common import app
from hyperkvasir.cli.console import err, out, progress_bar
from hyperkvasir.cli.flags import predict_target, refuse_unfit


def _report(summary: dict, line: str, skipped: list[str], as_json: bool) -> None:
    """The result as one line (stdout) or, with ``--json``, the whole summary, every skipped input included; the
    skipped inputs are also named on stderr (the first ten, then a count)."""
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(line, soft_wrap=True)
    if skipped:
        more = len(skipped) - 10
        err.print(
            Text("warning:", style="yellow"),
            f"{len(skipped)} inputs do not decode and were skipped: "
            f"{', '.join(skipped[:10])}{f' and {more} more' if more > 0 else ''}",
        )


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help="best.ckpt of `hyperkvasir train classify|segment|video`."),
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT...", help="Images, folders (jpg/png/bmp/tif), video files, or a release root with --part."
    ),
    part: str = typer.Option(
        None,
        help="unlabeled | labeled | segmented | videos (INPUT is then the release "
        "root; videos: a classifier or video checkpoint).",
    ),
    out_path: Path = typer.Option(
        None,
        "--out",
        help="classify on images: a Parquet file (default "
        "predictions.parquet); segment and videos: a folder (default "
        "predictions/, its resumable work in predictions.work/).",
    ),
    pseudo_labels: Path = typer.Option(None, help="classify: also write confident predictions as path,label CSV."),
    threshold: float = typer.Option(None, help="classify: confidence a pseudo-label needs (default 0.9)."),
    max_per_class: int = typer.Option(None, help="classify: keep at most this many pseudo-labels per class."),
    gradcam: Path = typer.Option(None, help="classify: also write a Grad-CAM overlay PNG per image here."),
    tta: bool = typer.Option(None, "--tta", help="classify: average the probabilities over flips."),
    every: int = typer.Option(None, help="videos: score every N-th frame (default 5)."),
    batch_size: int = typer.Option(64, help="Images (or frames of one video) per forward pass."),
    workers: int = typer.Option(
        None, help="Loading processes per rank (default: the node's cores shared by its ranks, less one; at most 8)."
    ),
    device: str = typer.Option("auto"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON, every skipped input named."),
) -> int:
    """Inference with any task's checkpoint: class probabilities (classify, with pseudo-labels and Grad-CAM),
    masks, overlays and boxes (segment), or — a classifier or video checkpoint on video files or `--part videos`
    — per-frame findings, a timeline and a strip per video (sharded over ranks, resumable per video).

    Example: hyperkvasir predict runs/f0/best.ckpt /data/hyper-kvasir --part unlabeled --pseudo-labels pl.csv
    """
    from hyperkvasir.data.inputs import VIDEO_PART, wants_videos
    from hyperkvasir.engine.runs import check_device, checkpoint_task, loader_workers
    from hyperkvasir.errors import require_output, require_ranges

    require_ranges(
        ("--threshold", threshold, 0, 1),
        ("--max-per-class", max_per_class, 1, None),
        ("--batch-size", batch_size, 1, None),
        ("--workers", workers, 0, None),
        ("--every", every, 1, None),
    )
    check_device(device)
    task = checkpoint_task(checkpoint)
    videos = task == "video" or (task == "classify" and wants_videos(inputs, part))
    described = "videos" if videos and task == "classify" else f"a {task} checkpoint"
    if task == "video" and part not in (None, VIDEO_PART):
        raise typer.BadParameter(
            f"--part does not apply to {described} (it scores videos: --part {VIDEO_PART} or video files); drop it",
            param_hint="--part",
        )
    refuse_unfit(
        "predict",
        predict_target(task, videos),
        {
            "--pseudo-labels": pseudo_labels,
            "--threshold": threshold,
            "--max-per-class": max_per_class,
            "--gradcam": gradcam,
            "--tta": tta,
            "--every": every,
        },
        described,
    )
    out_path = out_path or Path("predictions.parquet" if task == "classify" and not videos else "predictions")
    require_output(out_path, folder=videos or task != "classify")
    workers = loader_workers(workers)
    if task == "segment":
        from hyperkvasir.segment.predict import predict_masks

        summary = predict_masks(checkpoint, inputs, out_path, part=part, device=device, progress=progress_bar("images"))
        _report(
            summary,
            f"{summary['images']:,} masks and overlays, {summary['boxes']:,} boxes → {out_path}",
            summary["undecodable"],
            as_json,
        )
        return 0
    if videos:
        from hyperkvasir.engine.runs import pick_device
        from hyperkvasir.video.predict import predict_videos

        summary = predict_videos(
            frame_model(checkpoint, pick_device(device), tta=bool(tta)),
            inputs,
            out_path,
            part=part,
            every=every or 5,
            batch_size=batch_size,
            workers=workers,
            progress=progress_bar("videos"),
        )
        if summary.get("rank"):  # under torchrun, rank 0 merges and reports
            return 0
        kept = f" ({summary['kept']} kept from an earlier run)" if summary["kept"] else ""
        _report(
            summary,
            f"{summary['frames']:,} frames of {summary['videos']} videos scored{kept} → {out_path}",
            list(summary["failed"]),
            as_json,
        )
        return 1 if summary["failed"] else 0
    return _predict_classify(
        checkpoint,
        inputs,
        out_path,
        part=part,
        pseudo_labels=pseudo_labels,
        threshold=0.9 if threshold is None else threshold,
        max_per_class=max_per_class,
        gradcam=gradcam,
        tta=bool(tta),
        batch_size=batch_size,
        workers=workers,
        device=device,
        as_json=as_json,
    )


def frame_model(checkpoint: Path, device, *, tta: bool = False):
    """A classifier or video checkpoint as the video scorer's :class:`~hyperkvasir.video.predict.FrameModel`:
    probabilities as its own predict computes them (a classifier: normalised, flips averaged with ``tta``, its
    decision rule), its input size, classes and corner masking; identified by the checkpoint's hash."""
    from functools import partial

    import torch

    from hyperkvasir.data.imaging import sha256_file
    from hyperkvasir.engine.runs import checkpoint_task
    from hyperkvasir.video.predict import FrameModel

    identity = {"checkpoint_sha256": sha256_file(checkpoint), "tta": tta}
    if checkpoint_task(checkpoint) == "video":
        from hyperkvasir.data.taxonomy import VIDEO_CLASS_NAMES
        from hyperkvasir.video.module import VideoModule

        module, _ = VideoModule.from_checkpoint(checkpoint, device)
        return FrameModel(
            lambda images: torch.softmax(module(images).float(), 1),
            tuple(VIDEO_CLASS_NAMES),
            module.config.size,
            device,
            identity,
        )
    from hyperkvasir.classify.decision import decide, rule_offsets
    from hyperkvasir.classify.module import ClassifyModule
    from hyperkvasir.classify.predict import flip_averaged
    from hyperkvasir.data.taxonomy import CLASSES
    from hyperkvasir.datasets.transforms import normalise

    module, state = ClassifyModule.from_checkpoint(checkpoint, device)
    model, config, offsets, spec = module.model, module.config, rule_offsets(state), module.spec

    def probabilities(images: torch.Tensor) -> torch.Tensor:
        images = normalise(images, spec.mean, spec.std)
        return flip_averaged(model, images) if tta else torch.softmax(model(images).float(), 1)

    return FrameModel(
        probabilities,
        tuple(c.folder for c in CLASSES),
        config.input_size,
        device,
        identity,
        mask_corners=config.mask_corners,
        decide=partial(decide, offsets=offsets),
    )


def _predict_classify(
    checkpoint: Path,
    inputs: list[str],
    out_file: Path,
    *,
    part,
    pseudo_labels,
    threshold,
    max_per_class,
    gradcam,
    tta,
    batch_size,
    workers,
    device,
    as_json,
) -> int:
    from hyperkvasir.classify.predict import predict_images
    from hyperkvasir.classify.pseudo_labels import pseudo_labels as make_pseudo_labels, write_teacher
    from hyperkvasir.errors import require_output

    require_output(pseudo_labels, folder=False, option="--pseudo-labels")
    require_output(gradcam, folder=True, option="--gradcam")
    if pseudo_labels and part != "unlabeled":
        raise typer.BadParameter(
            "pseudo-labels come from `--part unlabeled` only: labels for labeled, segmented or "
            "other images would leak or duplicate the ground truth",
            param_hint="--pseudo-labels",
        )
    summary = predict_images(
        checkpoint,
        inputs,
        out_file,
        part=part,
        batch_size=batch_size,
        workers=workers,
        device=device,
        progress=progress_bar("batches"),
        gradcam_dir=gradcam,
        tta=tta,
    )
    if summary.get("rank"):  # under torchrun, rank 0 writes and reports
        return 0
    line = f"{summary['images']:,} images scored → {out_file}"
    if pseudo_labels:
        counts = make_pseudo_labels(out_file, pseudo_labels, threshold=threshold, max_per_class=max_per_class)
        write_teacher(checkpoint, pseudo_labels)
        summary["pseudo_labels"] = counts
        line += f"; {sum(counts.values()):,} pseudo-labels at ≥ {threshold} → {pseudo_labels}: " + ", ".join(
            f"{k} {v}" for k, v in counts.items() if v
        )
    _report(summary, line, summary["undecodable"], as_json)
    return 0


@app.command("export-model")
def export_model_command(
    checkpoint: Path = typer.Argument(..., help="best.ckpt of `hyperkvasir train classify|segment|video`."),
    fmt: str = typer.Option("onnx", "--format", help="onnx | torchscript."),
    out_dir: Path = typer.Option(Path("exported-model"), "--out", help="Folder for the model and its card."),
) -> int:
    """A deployable model (normalisation inside the graph), checked against PyTorch, with a model card.

    Example: hyperkvasir export-model runs/f0/best.ckpt --format onnx --out deploy/
    """
    from hyperkvasir.errors import require_output
    from hyperkvasir.model_export import FORMATS, export_model

    if fmt not in FORMATS:
        raise typer.BadParameter(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", param_hint="--format")
    require_output(out_dir, folder=True)
    summary = export_model(checkpoint, fmt, out_dir)
    out.print(
        f"{summary['model']} (max |Δp| against PyTorch {summary['parity_max_abs_difference']:.1e}); "
        f"card: {summary['card']}",
        soft_wrap=True,
    )
    return 0
