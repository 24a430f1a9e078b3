"""Sub-commands of ``hyperkvasir``. Each parses, calls one library function and prints with rich."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from hyperkvasir.cli.console import err, out, progress_bar

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Toolkit for the HyperKvasir GI-endoscopy dataset: synth, index, validate, audit, splits, train, evaluate.",
    pretty_exceptions_enable=False,
)


@app.command()
def synth(
    out_dir: Path = typer.Argument(..., metavar="OUT", help="Folder to create (must be new or empty)."),
    seed: int = typer.Option(0, help="Same seed, byte-identical tree."),
    scale: str = typer.Option("tiny", help="tiny (unit tests) | small (demo) | medium (benchmarks)."),
    faults: bool = typer.Option(False, "--faults", help="Plant known release faults and list them in FAULTS.json."),
    workers: int = typer.Option(2, help="Processes that render images."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> int:
    """Write a synthetic twin of the release in exactly the released layout.

    Example: hyperkvasir synth ./twin --scale small --seed 1
    """
    from hyperkvasir.synth.tree import SCALES

    if scale not in SCALES:
        raise typer.BadParameter(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}", param_hint="--scale")
    summary = _synthesise(out_dir, seed, scale, faults, workers)
    if as_json:
        print(json.dumps(summary, indent=2))
    return 0


def _synthesise(out_dir: Path, seed: int, scale: str, faults: bool, workers: int) -> dict:
    from hyperkvasir.errors import HyperKvasirError
    from hyperkvasir.synth.tree import make_synthetic_release

    started = time.perf_counter()
    with err.status(f"rendering a {scale} twin into {out_dir} …"):
        try:
            info = make_synthetic_release(out_dir, seed=seed, scale=scale, faults=faults, workers=workers)
        except FileExistsError as error:
            raise HyperKvasirError(str(error)) from None
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    summary = {
        "root": str(out_dir), "seed": seed, "scale": scale, "seconds": round(seconds, 2), "bytes": size,
        "labeled": sum(info.per_class.values()), "segmented": len(info.segmented), "unlabeled": info.unlabeled,
        "videos": len(info.videos), "faults": [f["kind"] for f in info.faults],
    }
    err.print(
        f"[green]synthetic {scale} twin[/] at {out_dir}: {summary['labeled']} labeled images in 23 classes, "
        f"{summary['segmented']} segmented, {summary['unlabeled']} unlabeled, {summary['videos']} videos "
        f"({size / 1e6:.1f} MB, {seconds:.1f} s)" + (f"; faults: {', '.join(summary['faults'])}" if faults else "")
    )
    return summary


@app.command()
def download(
    root: Path = typer.Argument(..., help="Folder to download and extract into."),
    parts: str = typer.Option("labeled,segmented,unlabeled,videos,splits", help="Comma-separated parts."),
    base_url: str = typer.Option(None, help="A mirror that serves the archives (and official files) by name."),
    extract: bool = typer.Option(True, "--extract/--no-extract"),
    strict: bool = typer.Option(False, "--strict", help="An unknown archive hash is an error, not a warning."),
    ca_bundle: Path = typer.Option(None, help="Extra CA certificates (PEM) for hosts with an incomplete chain."),
) -> int:
    """Resumable, verified download and safe extraction of the release (about 66 GB in all).

    Example: hyperkvasir download /data/hyper-kvasir --parts labeled,segmented,splits
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from hyperkvasir.data.download import download as run_download

    _log_to_stderr()
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        def progress(name: str):
            task = bar.add_task(name, total=None)
            return lambda done, total: bar.update(task, completed=done, total=total or None)

        done = run_download(root, tuple(p.strip() for p in parts.split(",") if p.strip()), base_url=base_url,
                            extract_archives=extract, strict=strict, ca_bundle=ca_bundle, progress=progress)
    for part, what in done.items():
        out.print(f"{part}: {what}")
    return 0


@app.command()
def index(
    root: Path = typer.Argument(..., help="Release root (the folder holding labeled-images/ …)."),
    workers: int = typer.Option(0, help="Processes (0 = one per core)."),
    out_file: Path = typer.Option(None, "--out", help="Manifest path (default ROOT/.hyperkvasir/manifest.parquet)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> int:
    """Build or refresh the Parquet manifest (incremental: unchanged files are not read again).

    Example: hyperkvasir index /data/hyper-kvasir --workers 8
    """
    from hyperkvasir.data.index import build_index, manifest_path

    started = time.perf_counter()
    table = build_index(root, workers=workers or None, out=out_file, progress=progress_bar("indexing"))
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    parts = {}
    for part in table.column("part").to_pylist():
        parts[part] = parts.get(part, 0) + 1
    bad = [p for p, ok in zip(table.column("path").to_pylist(), table.column("decodes").to_pylist()) if not ok]
    summary = {"manifest": str(out_file or manifest_path(root)), "rows": table.num_rows, "parts": parts,
               "read": int(meta["hyperkvasir.read"]), "reused": int(meta["hyperkvasir.reused"]),
               "unreadable": bad, "seconds": round(time.perf_counter() - started, 2)}
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(f"{summary['rows']:,} files indexed ({summary['read']:,} read, {summary['reused']:,} unchanged) "
                  f"in {summary['seconds']} s → {summary['manifest']}", soft_wrap=True)
        for path in bad:
            out.print(f"  [yellow]unreadable:[/] {path}", soft_wrap=True)
        for problem in filter(None, meta.get("hyperkvasir.problems", "").split("\n")):
            out.print(f"  [yellow]skipped:[/] {problem} (run `hyperkvasir validate`)", soft_wrap=True)
    return 0


@app.command()
def validate(
    root: Path = typer.Argument(..., help="Release root."),
    workers: int = typer.Option(0, help="Processes (0 = one per core)."),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON on stdout."),
) -> int:
    """Check a tree against the release; exit 1 when a finding makes results wrong.

    Example: hyperkvasir validate /data/hyper-kvasir --json
    """
    from hyperkvasir.data.validate import validate as run_validate

    report = run_validate(root, workers=workers or None, progress=progress_bar("hashing pixels"))
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        colours = {"error": "red", "warning": "yellow", "info": "cyan"}
        for finding in report.findings:
            out.print(f"[{colours[finding.severity]}]{finding.severity}[/] {finding.code}: {finding.file}: "
                      f"{finding.message} [dim]→ {finding.hint}[/]", soft_wrap=True)
        counts = report.counts()
        out.print(f"{counts.get('error', 0)} errors, {counts.get('warning', 0)} warnings, "
                  f"{counts.get('info', 0)} notes")
    return report.exit_code


@app.command()
def audit(
    root: Path = typer.Argument(..., help="Release root."),
    workers: int = typer.Option(0, help="Processes (0 = one per core)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON on stdout."),
) -> int:
    """Duplicates, cross-fold leakage, part overlaps and the ScopeGuide shortcut, with a paste-ready summary.

    Example: hyperkvasir audit /data/hyper-kvasir
    """
    from hyperkvasir.data.audit import audit as run_audit

    report = run_audit(root, workers=workers or None, progress=progress_bar("hashing pixels"))
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    from rich.table import Table

    for title, groups in (("exact duplicates", report.exact_groups), ("near duplicates", report.near_groups)):
        if not groups:
            out.print(f"no {title} in the parts present ({', '.join(sorted(report.images)) or 'none'})")
            continue
        table = Table(title=f"{title} in and across parts ({len(groups)} groups)")
        for column in ("files", "parts", "classes", "2-fold", "5-fold"):
            table.add_column(column)
        for group in groups[:20]:
            table.add_row("\n".join(group.files), "\n".join(group.parts), "\n".join(map(str, group.classes)),
                          " ".join(map(str, group.fold2)), " ".join(map(str, group.fold5)))
        out.print(table)
    for conflict in report.label_conflicts:
        out.print(f"[red]label conflict[/]: " + "; ".join(
            f"{f} ({c}, 2-fold {f2})" for f, c, f2 in zip(conflict["files"], conflict["classes"], conflict["fold2"])),
            soft_wrap=True)
    if report.images.get("labeled"):
        for scheme, leak in report.leakage.items():
            out.print(f"leakage {scheme}: {leak['groups']} groups, {leak['images']} images, "
                      f"per fold pair {leak['fold_pairs']}")
        out.print(f"overlaps: {report.overlaps}")
        shares = {k: v["share"] for k, v in report.scopeguide.items() if v["scopeguide"]}
        out.print(f"ScopeGuide share per class: {shares or 'no labeled image shows it'}")
    if report.segmented_corner:
        corner = report.segmented_corner
        out.print(f"segmented corner: black box {corner['black_box']} ({corner['black_box_share']:.0%}), "
                  f"ScopeGuide {corner['scopeguide']} ({corner['share']:.0%}) of {corner['images']}")
    out.print("\n[bold]Summary[/]\n" + report.summary, soft_wrap=True)
    return 0


@app.command()
def splits(
    root: Path = typer.Argument(..., help="Release root."),
    scheme: str = typer.Option("official-2fold", help="official-2fold | official-5fold | grouped-2fold | segmentation | kvasir-seg-official."),
    out_file: Path = typer.Option(None, "--out", help="CSV to write (official format + a validation column)."),
    validation: float = typer.Option(None, help="Share of each fold carved out for model selection (default "
                                                "0.1)."),
    seed: int = typer.Option(0),
) -> int:
    """Fold assignment with a validation carve-out, so no model is selected on its test fold.

    Example: hyperkvasir splits /data/hyper-kvasir --scheme grouped-2fold --out grouped.csv
    """
    from hyperkvasir.data.splits import SCHEMES, assignment, kvasir_seg_official_split, segmentation_split

    if scheme in ("segmentation", "kvasir-seg-official"):
        split = segmentation_split(root, seed=seed) if scheme == "segmentation" else kvasir_seg_official_split(root)
        if out_file:
            split.write_csv(out_file)
        out.print(f"{scheme} split: train {len(split.train)}, val {len(split.val)}, test {len(split.test)}"
                  + (f" → {out_file}" if out_file else ""))
        return 0
    if scheme not in SCHEMES:
        raise typer.BadParameter(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}, segmentation, "
                                 f"kvasir-seg-official",
                                 param_hint="--scheme")
    from hyperkvasir.data.splits import DEFAULT_VALIDATION_FRACTION

    validation = DEFAULT_VALIDATION_FRACTION if validation is None else validation
    if not 0 <= validation < 1:
        raise typer.BadParameter("must be in [0, 1)", param_hint="--validation")
    result = assignment(root, scheme, fraction=validation, seed=seed)
    if out_file:
        result.write_csv(out_file)
    for fold in range(result.k):
        sizes = {k: len(v) for k, v in result.subsets(fold).items()}
        out.print(f"{scheme} test fold {fold}: train {sizes['train']}, val {sizes['val']}, test {sizes['test']}")
    if out_file:
        out.print(f"→ {out_file}")
    return 0


train_app = typer.Typer(help="Train models through the engine: classify (23 classes), segment (polyps), video.",
                        no_args_is_help=True)
evaluate_app = typer.Typer(help="Evaluate predictions with the official metrics.", no_args_is_help=True)
video_app = typer.Typer(help="Labeled videos: frame extraction.", no_args_is_help=True)
app.add_typer(video_app, name="video")
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")


def _config(kind, root: Path, config_file: Path | None, **overrides):
    """A run config (TrainConfig or SegmentConfig): defaults, then a YAML recipe, then the flags given."""
    import dataclasses

    import yaml

    from hyperkvasir.errors import HyperKvasirError

    values: dict = {}
    if config_file is not None:
        try:
            values = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise HyperKvasirError(f"{config_file}: cannot read recipe ({error})") from None
        known = {f.name for f in dataclasses.fields(kind)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise HyperKvasirError(f"{config_file}: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values |= {k: v for k, v in overrides.items() if v is not None}
    return kind(root=str(root), **values)


def _train_config(root: Path, config_file: Path | None, **overrides):
    from hyperkvasir.classify.module import TrainConfig

    return _config(TrainConfig, root, config_file, **overrides)


def _segment_config(root: Path, config_file: Path | None, **overrides):
    from hyperkvasir.segment.module import SegmentConfig

    return _config(SegmentConfig, root, config_file, **overrides)


_RECIPE_HELP = "YAML recipe (configs/*.yaml); flags override it."


@train_app.command("classify")
def train_classify(
    root: Path = typer.Argument(..., help="Release root."),
    model: str = typer.Option(None, help="Model name (resnet50, resnet152, densenet161, resnet152+densenet161, "
                                         "tf_efficientnet_lite0, efficientnet_b0, convnext_tiny)."),
    fold: int = typer.Option(None, help="Test fold; training uses the others minus their validation carve-out."),
    out_dir: Path = typer.Option(None, "--out", help="Run folder."),
    config_file: Path = typer.Option(None, "--config", help=_RECIPE_HELP),
    scheme: str = typer.Option(None, help="official-2fold | official-5fold | grouped-2fold."),
    epochs: int = typer.Option(None), batch_size: int = typer.Option(None), lr: float = typer.Option(None),
    optimizer: str = typer.Option(None, help="sgd | adamw."), schedule: str = typer.Option(None, help="cosine | plateau."),
    patience: int = typer.Option(None, help="Early stopping patience in epochs (0 = off)."),
    input_size: int = typer.Option(None), recipe: str = typer.Option(None, help="paper | modern augmentation."),
    balanced: bool = typer.Option(None, "--balanced/--no-balanced", help="Class-balanced sampling."),
    weights: str = typer.Option(None, help="Local pretrained weights file (the ensemble: one file, or one per "
                                           "member, comma-separated)."),
    weights_partial: bool = typer.Option(None, "--weights-partial/--weights-strict",
                                         help="Load only the tensors of --weights that match (counts recorded)."),
    pretrained: bool = typer.Option(None, "--pretrained/--no-pretrained"),
    seed: int = typer.Option(None), workers: int = typer.Option(None), device: str = typer.Option(None),
    pseudo_labels: str = typer.Option(None, help="path,label CSV of pseudo-labelled images to add to training."),
    exclude_conflicts: bool = typer.Option(None, "--exclude-conflicts/--keep-conflicts",
                                           help="Leave out images the audit finds under two classes."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last epoch."),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Train one fold; the checkpoint is chosen on the validation carve-out, never on the test fold.

    Example: hyperkvasir train classify /data/hyper-kvasir --config configs/paper-densenet161.yaml --fold 0
    Multi-GPU: torchrun --nproc_per_node 4 -m hyperkvasir train classify ROOT --model resnet152 --fold 0
    """
    from hyperkvasir.classify.module import train_classifier

    config = _train_config(root, config_file, model=model, fold=fold, out=str(out_dir) if out_dir else None,
                           scheme=scheme, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                           schedule=schedule, patience=patience, input_size=input_size, recipe=recipe,
                           balanced=balanced, weights=weights, weights_partial=weights_partial, pretrained=pretrained,
                           seed=seed, workers=workers, device=device, pseudo_labels=pseudo_labels,
                           exclude_conflicts=exclude_conflicts)
    _log_to_stderr()
    metrics = train_classifier(config, resume=resume, progress=progress_bar("caching images"))
    if metrics:  # under torchrun, rank 0 reports
        _print_metrics(metrics, as_json)
    return 0


def _log_to_stderr() -> None:
    import logging

    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])
    logging.getLogger("matplotlib").setLevel(logging.WARNING)


def _print_metrics(metrics: dict, as_json: bool) -> None:
    from hyperkvasir.metrics.classification import SUMMARY_KEYS

    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    out.print("  ".join(f"{key} {metrics[key]:.3f}" for key in SUMMARY_KEYS) + f"  (n = {metrics['n']})")


@train_app.command("segment")
def train_segment(
    root: Path = typer.Argument(..., help="Release root."),
    model: str = typer.Option(None, help="Encoder: tf_efficientnet_lite0 (offline weights), efficientnet_b3, "
                                         "resnet50, convnext_tiny."),
    out_dir: Path = typer.Option(None, "--out", help="Run folder."),
    config_file: Path = typer.Option(None, "--config", help=_RECIPE_HELP),
    epochs: int = typer.Option(None), batch_size: int = typer.Option(None), lr: float = typer.Option(None),
    size: int = typer.Option(None, help="Square input size (352 in the PraNet family)."),
    loss: str = typer.Option(None, help="structure (PraNet: weighted BCE + weighted IoU) | dice."),
    weights: str = typer.Option(None, help="Local weights file for the encoder."),
    weights_partial: bool = typer.Option(None, "--weights-partial/--weights-strict",
                                         help="Load only the tensors of --weights that match (counts recorded)."),
    pretrained: bool = typer.Option(None, "--pretrained/--no-pretrained"),
    scheme: str = typer.Option(None, help="segmentation (duplicate-aware 80/10/10) | kvasir-seg-official (880/120)."),
    seed: int = typer.Option(None), workers: int = typer.Option(None), device: str = typer.Option(None),
    resume: bool = typer.Option(False, "--resume"),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Train the U-Net polyp baseline on the seeded segmentation split; test maps saved as 8-bit PNGs.

    Example: hyperkvasir train segment /data/hyper-kvasir --epochs 50 --out runs/unet-lite0
    """
    from hyperkvasir.segment.module import train_segmenter

    config = _segment_config(root, config_file, model=model, out=str(out_dir) if out_dir else None, epochs=epochs,
                             batch_size=batch_size, lr=lr, size=size, loss=loss, weights=weights,
                             weights_partial=weights_partial, pretrained=pretrained, seed=seed, workers=workers,
                             device=device, scheme=scheme)
    _log_to_stderr()
    metrics = train_segmenter(config, resume=resume)
    if metrics:  # under torchrun, rank 0 reports
        _print_segmentation(metrics, as_json)
    return 0


@train_app.command("video")
def train_video_command(
    root: Path = typer.Argument(..., help="Release root (with labeled-videos/)."),
    model: str = typer.Option(None, help="Frame classifier (a classification model name)."),
    out_dir: Path = typer.Option(None, "--out", help="Run folder."),
    frames: Path = typer.Option(None, help="Frames of `hyperkvasir video frames` (default: extracted into OUT)."),
    every: int = typer.Option(None, help="Keep every N-th frame when extracting."),
    size: int = typer.Option(None, help="Square frame size."),
    epochs: int = typer.Option(None), batch_size: int = typer.Option(None), lr: float = typer.Option(None),
    pretrained: bool = typer.Option(None, "--pretrained/--no-pretrained"),
    select_on_train: bool = typer.Option(None, "--select-on-train",
                                         help="Allow choosing the checkpoint on training videos when the tree has "
                                              "no validation video."),
    seed: int = typer.Option(None), workers: int = typer.Option(None), device: str = typer.Option(None),
    resume: bool = typer.Option(False, "--resume"),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Train a frame classifier on the training videos; select on validation videos; score test videos.

    Example: hyperkvasir train video /data/hyper-kvasir --every 10 --size 160 --epochs 5 --out runs/video
    """
    import dataclasses

    from hyperkvasir.video.module import VideoConfig, train_video

    values = {k: v for k, v in dict(model=model, out=str(out_dir) if out_dir else None,
                                    frames=str(frames) if frames else None, every=every, size=size, epochs=epochs,
                                    batch_size=batch_size, lr=lr, pretrained=pretrained,
                                    select_on_train=select_on_train, seed=seed, workers=workers,
                                    device=device).items() if v is not None}
    _log_to_stderr()
    results = train_video(dataclasses.replace(VideoConfig(root=str(root)), **values), resume=resume)
    if results:
        print(json.dumps(results, indent=2) if as_json else json.dumps(
            {k: results["test"][k]["accuracy"] for k in ("mean_probability", "majority_vote")}))
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
    pred: Path = typer.Option(..., help="Folder of predicted maps (8-bit PNG/JPG, any size), named by image stem."),
    truth: Path = typer.Option(..., help="Folder of ground-truth masks (e.g. segmented-images/masks)."),
    boxes: Path = typer.Option(None, help="bounding-boxes.json: also score boxes derived from the predictions."),
    subset: bool = typer.Option(False, "--subset", help="Score only predicted files (a test part)."),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Segmentation metrics with the evaluation toolbox's definitions (pysodmetrics).

    Example: hyperkvasir evaluate segment --pred runs/unet/predictions --truth ROOT/segmented-images/masks --subset
    """
    from hyperkvasir.segment.evaluate import evaluate_segmentation

    _print_segmentation(evaluate_segmentation(pred, truth, boxes_json=boxes, subset=subset), as_json)
    return 0


@evaluate_app.command("classify")
def evaluate_classify(
    predictions: Path = typer.Option(..., help="Predictions CSV: file-name,label[,one probability per class]."),
    truth: Path = typer.Option(None, help="Official split CSV or file-name,label CSV."),
    root: Path = typer.Option(None, help="Or: a release whose class folders are the truth."),
    plot: Path = typer.Option(None, help="Write the confusion matrix as PNG here."),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """The paper's metrics (scikit-learn definitions) for any model's predictions.

    Example: hyperkvasir evaluate classify --predictions preds.csv --truth official_splits/2_fold_split.csv --json
    """
    from hyperkvasir.classify.evaluate import (
        evaluate_predictions,
        read_predictions,
        read_truth,
        truth_from_release,
    )
    from hyperkvasir.metrics.classification import plot_confusion_matrix

    if (truth is None) == (root is None):
        raise typer.BadParameter("give exactly one of --truth or --root", param_hint="--truth/--root")
    truth_map = read_truth(truth) if truth else truth_from_release(root)
    metrics = evaluate_predictions(read_predictions(predictions), truth_map, str(predictions))
    if plot:
        plot_confusion_matrix(metrics, plot)
    _print_metrics(metrics, as_json)
    return 0


@app.command()
def benchmark(
    root: Path = typer.Argument(..., help="Release root."),
    task: str = typer.Option("classify", help="classify (the paper's Table 3 protocol) | segment (polyps) | video."),
    models: str = typer.Option(None, help="Comma-separated model names (classify), one encoder (segment) or one "
                                          "frame model (video); default tf_efficientnet_lite0."),
    out_dir: Path = typer.Option(Path("benchmark"), "--out"),
    config_file: Path = typer.Option(None, "--config", help=_RECIPE_HELP + " (classify, segment)"),
    scheme: str = typer.Option(None, help="classify: official-2fold | official-5fold | grouped-2fold; "
                                          "segment: segmentation | kvasir-seg-official."),
    epochs: int = typer.Option(None), input_size: int = typer.Option(None),
    batch_size: int = typer.Option(None), lr: float = typer.Option(None),
    optimizer: str = typer.Option(None, help="sgd | adamw (classify only)."),
    exclude_conflicts: bool = typer.Option(None, "--exclude-conflicts/--keep-conflicts",
                                           help="Leave out images the audit finds under two classes (classify)."),
    select_on_train: bool = typer.Option(False, "--select-on-train",
                                         help="Video: allow choosing the checkpoint on training videos when the "
                                              "tree has no validation video."),
    workers: int = typer.Option(None), seed: int = typer.Option(None), device: str = typer.Option(None),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Train on one fold, test on the other, both directions; averaged metrics beside the paper's Table 3.

    Example: hyperkvasir benchmark /data/hyper-kvasir --models densenet161 --config configs/paper-densenet161.yaml
    """
    if task not in ("classify", "segment", "video"):
        raise typer.BadParameter(f"unknown task {task!r}; choose classify, segment or video", param_hint="--task")
    given = {"--config": config_file, "--scheme": scheme, "--optimizer": optimizer,
             "--exclude-conflicts": exclude_conflicts, "--select-on-train": select_on_train or None}
    applies = {"classify": {"--config", "--scheme", "--optimizer", "--exclude-conflicts"},
               "segment": {"--config", "--scheme"}, "video": {"--select-on-train"}}[task]
    refused = [flag for flag, value in given.items() if value is not None and flag not in applies]
    if refused:
        raise typer.BadParameter(f"{', '.join(refused)} does not apply to --task {task}; drop it",
                                 param_hint=refused[0])
    names = [m.strip() for m in (models or "tf_efficientnet_lite0").split(",") if m.strip()]
    _check_model_names(task, names)
    if task == "video":
        from hyperkvasir.video.benchmark import run_video_benchmark
        from hyperkvasir.video.module import VideoConfig

        options = {k: v for k, v in dict(epochs=epochs, size=input_size, batch_size=batch_size, lr=lr,
                                         workers=workers, seed=seed, device=device).items() if v is not None}
        _log_to_stderr()
        results = run_video_benchmark(VideoConfig(root=str(root), model=names[0], select_on_train=select_on_train,
                                                  **options), out_dir)
        print(json.dumps(results, indent=2) if as_json else (out_dir / "results.md").read_text())
        return 0
    if task == "segment":
        from hyperkvasir.data.splits import SEGMENTATION_SCHEMES
        from hyperkvasir.segment.benchmark import run_segmentation_benchmark

        if scheme is not None and scheme not in SEGMENTATION_SCHEMES:
            raise typer.BadParameter(f"{scheme!r} is no segmentation scheme; choose one of "
                                     f"{', '.join(SEGMENTATION_SCHEMES)}", param_hint="--scheme")
        config = _segment_config(root, config_file, out=str(out_dir / "run"), epochs=epochs, size=input_size,
                                 batch_size=batch_size, lr=lr, workers=workers, seed=seed, device=device,
                                 scheme=scheme, model=names[0])
        _log_to_stderr()
        results = run_segmentation_benchmark(config, out_dir)
        print(json.dumps(results, indent=2) if as_json else (out_dir / "results.md").read_text())
        return 0
    from hyperkvasir.classify.benchmark import run_benchmark

    base = _train_config(root, config_file, scheme=scheme, epochs=epochs, input_size=input_size,
                         batch_size=batch_size, lr=lr, optimizer=optimizer, workers=workers, seed=seed, device=device,
                         exclude_conflicts=exclude_conflicts)
    _log_to_stderr()
    results = run_benchmark(root, names, out_dir, base=base, progress=progress_bar("caching images"))
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        print((out_dir / "results.md").read_text())
    return 0


def _check_model_names(task: str, names: list[str]) -> None:
    """Refuse unknown model names (and several models where the task trains one) before any work starts."""
    if task == "segment":
        from hyperkvasir.segment.model import ENCODERS as known
    else:
        from hyperkvasir.models import MODELS as known
    unknown = [name for name in names if name not in known]
    if unknown:
        raise typer.BadParameter(f"unknown model {unknown[0]!r} for --task {task}; choose one of "
                                 f"{', '.join(known)}", param_hint="--models")
    if task != "classify" and len(names) > 1:
        raise typer.BadParameter(f"--task {task} trains one model; give one name, not {len(names)}",
                                 param_hint="--models")


@app.command()
def report(
    root: Path = typer.Argument(..., help="Release root."),
    out_file: Path = typer.Option(Path("report.html"), "--out", help="HTML file to write (figures go beside it)."),
    results: Path = typer.Option(None, help="A benchmark output folder (results.json) to include."),
) -> int:
    """One self-contained HTML report: hierarchy, balance, samples, leakage, masks, videos, results.

    Example: hyperkvasir report /data/hyper-kvasir --out report.html --results benchmark/
    """
    from hyperkvasir.report import build_report

    path = build_report(root, out_file, results=results, progress=progress_bar("thumbnails"))
    out.print(f"report: {path.resolve()}", soft_wrap=True)
    return 0


@app.command()
def export(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="imagefolder | coco | yolo | hf | webdataset."),
    root: Path = typer.Argument(..., help="Release root."),
    out_dir: Path = typer.Argument(..., metavar="OUT", help="Folder to create (new or empty)."),
    scheme: str = typer.Option("official-2fold", help="Fold scheme for the labeled images."),
    copy: bool = typer.Option(False, "--copy", help="Copy files instead of hard/symbolic links."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty OUT."),
    seed: int = typer.Option(0),
) -> int:
    """Convert the release for other tools; written atomically (a temp folder, then a rename).

    Example: hyperkvasir export coco /data/hyper-kvasir ./coco
    """
    from hyperkvasir.export import export as run_export

    summary = run_export(fmt, root, out_dir, scheme=scheme, seed=seed, copy=copy, overwrite=overwrite)
    out.print(json.dumps(summary), soft_wrap=True)
    return 0


@video_app.command("frames")
def video_frames(
    root: Path = typer.Argument(..., help="Release root."),
    out_dir: Path = typer.Argument(..., metavar="OUT", help="Frames folder (a rerun resumes it)."),
    every: int = typer.Option(None, help="Keep every N-th frame."),
    fps: float = typer.Option(None, help="Or: keep F frames per second."),
    size: int = typer.Option(None, help="Scale frames so the shorter side is S pixels."),
    workers: int = typer.Option(0, help="Processes (0 = one per core)."),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Extract JPEG frames from the labeled videos, in parallel and resumable; writes OUT/frames.parquet.

    Example: hyperkvasir video frames /data/hyper-kvasir ./frames --fps 1 --size 256
    """
    from dataclasses import asdict

    from hyperkvasir.video.frames import extract_frames

    report = extract_frames(root, out_dir, every=every, fps=fps, size=size, workers=workers or None,
                            progress=progress_bar("videos"))
    if as_json:
        print(json.dumps(asdict(report), indent=2))
    else:
        out.print(f"{report.frames:,} frames from {report.videos - len(report.failed)} videos "
                  f"({report.skipped_finished} already finished) → {report.manifest}", soft_wrap=True)
        for video, reason in report.failed.items():
            out.print(f"  [yellow]failed:[/] {video}: {reason}", soft_wrap=True)
    return 1 if report.failed else 0


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help="best.ckpt of `hyperkvasir train classify`."),
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="A release root with --part, or images/folders."),
    part: str = typer.Option(None, help="unlabeled | labeled | segmented (INPUT is then the release root)."),
    out_file: Path = typer.Option(Path("predictions.parquet"), "--out", help="Parquet of class probabilities."),
    pseudo_labels: Path = typer.Option(None, help="Also write confident predictions as a path,label CSV here."),
    threshold: float = typer.Option(0.9, help="Confidence a pseudo-label needs."),
    max_per_class: int = typer.Option(None, help="Keep at most this many pseudo-labels per class."),
    gradcam: Path = typer.Option(None, help="Also write a Grad-CAM overlay PNG per image into this folder."),
    batch_size: int = typer.Option(64), workers: int = typer.Option(2), device: str = typer.Option("auto"),
) -> int:
    """Batched inference (e.g. over the 99,417 unlabeled images), optionally writing pseudo-labels.

    Example: hyperkvasir predict runs/f0/best.ckpt /data/hyper-kvasir --part unlabeled --pseudo-labels pl.csv
    """
    from hyperkvasir.classify.predict import predict_images, write_teacher
    from hyperkvasir.classify.predict import pseudo_labels as make_pseudo_labels

    if pseudo_labels and part != "unlabeled":
        raise typer.BadParameter("pseudo-labels come from `--part unlabeled` only: labels for labeled, segmented or "
                                 "other images would leak or duplicate the ground truth", param_hint="--pseudo-labels")
    summary = predict_images(checkpoint, inputs, out_file, part=part, batch_size=batch_size, workers=workers,
                             device=device, progress=progress_bar("batches"), gradcam_dir=gradcam)
    if summary.get("rank"):  # under torchrun, rank 0 writes and reports
        return 0
    out.print(f"{summary['images']:,} images scored ({summary['skipped']} undecodable skipped) → {out_file}",
              soft_wrap=True)
    if pseudo_labels:
        counts = make_pseudo_labels(out_file, pseudo_labels, threshold=threshold, max_per_class=max_per_class)
        write_teacher(checkpoint, pseudo_labels)
        out.print(f"{sum(counts.values()):,} pseudo-labels at ≥ {threshold} → {pseudo_labels}: "
                  + ", ".join(f"{k} {v}" for k, v in counts.items() if v), soft_wrap=True)
    return 0


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("hyperkvasir-demo"), "--out", help="Work folder."),
    seed: int = typer.Option(0),
) -> int:
    """The main job on the embedded default, on a synthetic twin (CPU, minutes).

    Example: hyperkvasir demo --out ./hyperkvasir-demo
    """
    import os
    import shutil

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo's weights are the offline EfficientNet-Lite0 ones
    started = time.perf_counter()
    root = out_dir / "release"
    for previous in (root, out_dir / "benchmark", out_dir / "segmentation", out_dir / "frames"):
        if previous.exists():
            shutil.rmtree(previous)
    summary = _synthesise(root, seed, "small", False, 2)
    out.print(f"demo twin: {summary['root']} ({summary['labeled']} labeled images, {summary['segmented']} masks)")
    for command in (["index", str(root)], ["validate", str(root)], ["audit", str(root)],
                    ["benchmark", str(root), "--config", str(_packaged_recipe("demo")), "--out", str(out_dir / "benchmark")],
                    ["benchmark", str(root), "--task", "segment", "--config", str(_packaged_recipe("demo-segment")),
                     "--out", str(out_dir / "segmentation")],
                    ["video", "frames", str(root), str(out_dir / "frames"), "--every", "10", "--size", "128"],
                    ["report", str(root), "--out", str(out_dir / "report.html"), "--results",
                     str(out_dir / "benchmark")]):
        out.rule(f"hyperkvasir {' '.join(command)}")
        app(args=command, prog_name="hyperkvasir", standalone_mode=False)
    out.print(f"[green]demo finished in {time.perf_counter() - started:.0f} s[/]; results in {out_dir / 'benchmark'}")
    return 0


def _packaged_recipe(name: str) -> Path:
    """A recipe shipped with the package (src/hyperkvasir/configs/NAME.yaml)."""
    return Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml"
