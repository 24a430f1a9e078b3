"""Classification commands: train classify, evaluate classify, predict."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.text import Text

from hyperkvasir.cli.common import (
    _FREEZE_BATCHNORM_HELP,
    _RECIPE_HELP,
    _SYNC_BATCHNORM_HELP,
    _WORKERS_HELP,
    _config,
    _log_to_stderr,
    app,
    evaluate_app,
    train_app,
)
from hyperkvasir.cli.console import out, progress_bar

_REVIEWS_HELP = (
    "reviews.csv of `hyperkvasir review`: its relabels and exclusions apply to training and validation "
    "(test labels stay as released); recorded in the metrics' provenance."
)
_REVIEWS_ON_TEST_HELP = "Apply --reviews to the test labels too (the metrics then say so)."


def _train_config(root: Path, config_file: Path | None, **overrides):
    from hyperkvasir.classify.config import ClassifyConfig

    return _config(ClassifyConfig, root, config_file, **(overrides | _reviews_pin(overrides.get("reviews"))))


def _reviews_pin(reviews: str | None) -> dict:
    """The reviews file by absolute path and content hash, so a resumed run, or a benchmark rerun in the same
    --out, never mixes decisions made before and after the file changed (the config differs, and is refused)."""
    if not reviews or not Path(reviews).is_file():
        return {}  # the run's own checks name what is wrong
    from hyperkvasir.data.imaging import sha256_file

    return {"reviews": str(Path(reviews).resolve()), "reviews_sha256": sha256_file(reviews)}


@train_app.command("classify")
def train_classify(
    root: Path = typer.Argument(..., help="Release root."),
    model: str = typer.Option(
        None,
        help="Model name (resnet50, resnet152, densenet161, resnet152+densenet161, "
        "tf_efficientnet_lite0, efficientnet_b0, convnext_tiny).",
    ),
    fold: int = typer.Option(None, help="Test fold; training uses the others minus their validation carve-out."),
    out_dir: Path = typer.Option(None, "--out", help="Run folder."),
    config_file: Path = typer.Option(None, "--config", help=_RECIPE_HELP),
    scheme: str = typer.Option(None, help="official-2fold | official-5fold | grouped-2fold."),
    epochs: int = typer.Option(None),
    batch_size: int = typer.Option(None),
    lr: float = typer.Option(None),
    optimizer: str = typer.Option(None, help="sgd | adamw."),
    schedule: str = typer.Option(None, help="cosine | plateau."),
    patience: int = typer.Option(None, help="Early stopping patience in epochs (0 = off)."),
    input_size: int = typer.Option(None),
    recipe: str = typer.Option(None, help="paper | modern | rare (strong, label-safe) augmentation."),
    balanced: bool = typer.Option(None, "--balanced/--no-balanced", help="Class-balanced sampling."),
    loss: str = typer.Option(
        None, help="ce | logit-adjusted (tau · log prior added in training; tau 1 = balanced softmax)."
    ),
    logit_tau: float = typer.Option(None, help="Strength of the logit adjustment."),
    rare_below: int = typer.Option(
        None, help="Strong label-safe augmentation for classes with fewer training images than this (0 = off)."
    ),
    decision_rule: bool = typer.Option(
        None,
        "--decision-rule/--argmax",
        help="Fit per-class offsets on the validation carve-out; apply them at test and predict.",
    ),
    tta: bool = typer.Option(None, "--tta/--no-tta", help="Average test predictions over flips."),
    mask_corners: bool = typer.Option(
        None,
        "--mask-corners/--keep-corners",
        help="Blank the lower-left corner (ScopeGuide, black box) in every image; predict repeats it.",
    ),
    weights: str = typer.Option(
        None, help="Local pretrained weights file (the ensemble: one file, or one per member, comma-separated)."
    ),
    weights_partial: bool = typer.Option(
        None,
        "--weights-partial/--weights-strict",
        help="Load only the tensors of --weights that match (counts recorded).",
    ),
    pretrained: bool = typer.Option(None, "--pretrained/--no-pretrained"),
    seed: int = typer.Option(None, min=0),
    device: str = typer.Option(None),
    workers: int = typer.Option(None, help=_WORKERS_HELP),
    sync_batchnorm: bool = typer.Option(None, "--sync-batchnorm/--no-sync-batchnorm", help=_SYNC_BATCHNORM_HELP),
    freeze_batchnorm: bool = typer.Option(None, "--freeze-batchnorm/--train-batchnorm", help=_FREEZE_BATCHNORM_HELP),
    pseudo_labels: str = typer.Option(None, help="path,label CSV of pseudo-labelled images to add to training."),
    exclude_conflicts: bool = typer.Option(
        None, "--exclude-conflicts/--keep-conflicts", help="Leave out images the audit finds under two classes."
    ),
    protocol: str = typer.Option(
        None,
        help="test (score the test fold) | dev (score the validation carve-out, "
        "select on a second one: the test fold is never opened).",
    ),
    reviews: Path = typer.Option(None, help=_REVIEWS_HELP),
    reviews_on_test: bool = typer.Option(None, "--reviews-on-test", help=_REVIEWS_ON_TEST_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last epoch."),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Train one fold; the checkpoint is chosen on the validation carve-out, never on the test fold.

    Example: hyperkvasir train classify /data/hyper-kvasir --config configs/paper-densenet161.yaml --fold 0
    Multi-GPU: torchrun --nproc_per_node 4 -m hyperkvasir train classify ROOT --model resnet152 --fold 0
    """
    from hyperkvasir.classify.train import train_classify as train

    config = _train_config(
        root,
        config_file,
        model=model,
        fold=fold,
        out=str(out_dir) if out_dir else None,
        scheme=scheme,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        schedule=schedule,
        patience=patience,
        input_size=input_size,
        recipe=recipe,
        balanced=balanced,
        loss=loss,
        logit_tau=logit_tau,
        rare_below=rare_below,
        decision_rule=decision_rule,
        tta=tta,
        mask_corners=mask_corners,
        weights=weights,
        weights_partial=weights_partial,
        pretrained=pretrained,
        seed=seed,
        workers=workers,
        device=device,
        sync_batchnorm=sync_batchnorm,
        freeze_batchnorm=freeze_batchnorm,
        pseudo_labels=pseudo_labels,
        exclude_conflicts=exclude_conflicts,
        protocol=protocol,
        reviews=str(reviews) if reviews else None,
        reviews_on_test=reviews_on_test,
        resume=resume,
    )
    _log_to_stderr()
    metrics = train(config, resume=resume, progress=progress_bar("caching images"))
    if metrics:  # under torchrun, rank 0 reports
        _print_metrics(metrics, as_json)
    return 0


def _print_metrics(metrics: dict, as_json: bool) -> None:
    from hyperkvasir.metrics.classification import SUMMARY_KEYS

    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    out.print(
        "  ".join(f"{key} {metrics[key]:.3f}" + _interval(metrics.get(key + "_ci")) for key in SUMMARY_KEYS)
        + f"  (n = {metrics['n']}; 95 % bootstrap intervals)"
    )


def _interval(bounds: list[float] | None) -> str:
    """The interval printed beside a metric that has one; nothing beside one that has none."""
    return f" [{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else ""


@evaluate_app.command("classify")
def evaluate_classify(
    predictions: Path = typer.Option(None, help="Predictions CSV: file-name,label[,one probability per class]."),
    truth: Path = typer.Option(None, help="Official split CSV or file-name,label CSV."),
    root: Path = typer.Option(None, help="Or: a release whose class folders are the truth."),
    checkpoint: Path = typer.Option(
        None, help="External validation: a classification checkpoint to run on --imagefolder."
    ),
    imagefolder: Path = typer.Option(
        None, help="With --checkpoint: class subfolders in any naming, or any images with --labels."
    ),
    labels: Path = typer.Option(None, help="With --checkpoint: file-name,label CSV for the images."),
    out_dir: Path = typer.Option(
        None,
        "--out",
        help="With --checkpoint: predictions, metrics.json, reliability and "
        "confusion PNGs (default external-validation/).",
    ),
    plot: Path = typer.Option(None, help="Write the confusion matrix as PNG here."),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """The paper's metrics (scikit-learn definitions) for any model's predictions, or a checkpoint on a hospital's
    own labelled folder (with calibration).

    Example: hyperkvasir evaluate classify --predictions preds.csv --truth official_splits/2_fold_split.csv --json
    Example: hyperkvasir evaluate classify --checkpoint runs/f0/best.ckpt --imagefolder ./our-hospital
    """
    if checkpoint is not None:
        from hyperkvasir.classify.evaluate import evaluate_checkpoint
        from hyperkvasir.errors import require_output

        if imagefolder is None or predictions is not None or truth is not None or root is not None or plot:
            raise typer.BadParameter(
                "--checkpoint takes --imagefolder (and optionally --labels), not "
                "--predictions/--truth/--root/--plot (its confusion matrix goes to --out)",
                param_hint="--checkpoint",
            )
        out_dir = out_dir or Path("external-validation")
        require_output(out_dir, folder=True)
        metrics = evaluate_checkpoint(checkpoint, imagefolder, out_dir, labels=labels, progress=progress_bar("batches"))
        _print_metrics(metrics, as_json)
        if not as_json:
            out.print(
                f"expected calibration error {metrics['calibration']['ece']:.3f} (15 bins); reliability "
                f"diagram and confusion matrix in {out_dir}"
            )
        return 0
    if predictions is None or imagefolder is not None or labels is not None:
        raise typer.BadParameter(
            "give --predictions with --truth or --root, or --checkpoint with --imagefolder", param_hint="--predictions"
        )
    if out_dir is not None:
        raise typer.BadParameter(
            "--out holds a checkpoint's predictions; with --predictions use --json or --plot", param_hint="--out"
        )
    from hyperkvasir.classify.evaluate import (
        evaluate_predictions,
        read_predictions,
        read_truth,
        truth_from_release,
    )
    from hyperkvasir.metrics.classification import plot_confusion_matrix

    if (truth is None) == (root is None):
        raise typer.BadParameter("give exactly one of --truth or --root", param_hint="--truth/--root")
    from hyperkvasir.errors import require_output

    require_output(plot, folder=False, option="--plot")
    truth_map = read_truth(truth) if truth else truth_from_release(root)
    metrics = evaluate_predictions(read_predictions(predictions), truth_map, str(predictions))
    if plot:
        plot_confusion_matrix(metrics, plot)
    _print_metrics(metrics, as_json)
    return 0


@app.command()
def shortcuts(
    root: Path = typer.Argument(..., help="Release root."),
    scheme: str = typer.Option("official-2fold", help="official-2fold | official-5fold | grouped-2fold."),
    seed: int = typer.Option(0, min=0),
    workers: int = typer.Option(0, min=0, help="Processes (0 = one per core)."),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """How much a classifier can learn from the lower-left corner alone (ScopeGuide box, black box).

    Example: hyperkvasir shortcuts /data/hyper-kvasir --json
    """
    from hyperkvasir.classify.shortcuts import PROBES, shortcut_probes
    from hyperkvasir.data.splits import SCHEMES

    if scheme not in SCHEMES:
        raise typer.BadParameter(
            f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}", param_hint="--scheme"
        )
    result = shortcut_probes(
        root, scheme=scheme, seed=seed, workers=workers or None, progress=progress_bar("reading pixels")
    )
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    for name in (*PROBES, "majority"):
        if name in result:
            m = result[name]
            out.print(f"{name:22s} macro-F1 {m['macro_f1']:.3f}  accuracy {m['micro_f1']:.3f}  MCC {m['mcc']:.3f}")
    out.print(Text("\nSummary", style="bold"), "\n" + result["summary"], sep="")
    return 0
