"""``benchmark --task classify|segment|video`` and the ``demo`` that runs the main job."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.text import Text

from hyperkvasir.cli.classify import _FREEZE_BATCHNORM_HELP, _REVIEWS_HELP, _REVIEWS_ON_TEST_HELP, _train_config
from hyperkvasir.cli.common import _RECIPE_HELP, _SYNC_BATCHNORM_HELP, _WORKERS_HELP, _log_to_stderr, app
from hyperkvasir.cli.console import out, progress_bar
from hyperkvasir.cli.flags import refuse_unfit
from hyperkvasir.cli.segment import _segment_config


@app.command()
def benchmark(
    root: Path = typer.Argument(..., help="Release root."),
    task: str = typer.Option("classify", help="classify (the paper's Table 3 protocol) | segment (polyps) | video."),
    models: str = typer.Option(
        None,
        help="Comma-separated model names (classify), one encoder (segment) or one "
        "frame model (video); default tf_efficientnet_lite0.",
    ),
    out_dir: Path = typer.Option(Path("benchmark"), "--out"),
    config_file: Path = typer.Option(None, "--config", help=_RECIPE_HELP + " (classify, segment)"),
    scheme: str = typer.Option(
        None,
        help="classify: official-2fold | official-5fold | grouped-2fold; segment: segmentation | kvasir-seg-official.",
    ),
    epochs: int = typer.Option(None),
    input_size: int = typer.Option(None),
    batch_size: int = typer.Option(None),
    lr: float = typer.Option(None),
    optimizer: str = typer.Option(None, help="sgd | adamw (classify only)."),
    mask_corners: bool = typer.Option(
        None, "--mask-corners/--keep-corners", help="Blank the lower-left corner in every image (classify)."
    ),
    exclude_conflicts: bool = typer.Option(
        None,
        "--exclude-conflicts/--keep-conflicts",
        help="Leave out images the audit finds under two classes (classify).",
    ),
    select_on_train: bool = typer.Option(
        False,
        "--select-on-train",
        help="Video: allow choosing the checkpoint on training videos when the tree has no validation video.",
    ),
    seed: int = typer.Option(None, min=0),
    device: str = typer.Option(None),
    workers: int = typer.Option(None, help=_WORKERS_HELP),
    sync_batchnorm: bool = typer.Option(None, "--sync-batchnorm/--no-sync-batchnorm", help=_SYNC_BATCHNORM_HELP),
    freeze_batchnorm: bool = typer.Option(None, "--freeze-batchnorm/--train-batchnorm", help=_FREEZE_BATCHNORM_HELP),
    seeds: int = typer.Option(
        None,
        help="Classify: repeat every fold with this many seeds (seed, seed+1, …); "
        "results give mean, standard deviation and each seed's row.",
    ),
    protocol: str = typer.Option(
        None,
        help="Classify: test (default; score each test fold once) | dev (score "
        "validation carve-outs, never open a test image: choose recipes "
        "with it).",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Classify: start over in an --out made with another config or tree (its runs are deleted).",
    ),
    average: str = typer.Option(
        None,
        help="Classify: rows averaging the probabilities of independently trained "
        "models, e.g. resnet152+densenet161 (the paper's averaged ensemble); "
        "comma-separated for several.",
    ),
    reviews: Path = typer.Option(None, help="Classify: " + _REVIEWS_HELP),
    reviews_on_test: bool = typer.Option(None, "--reviews-on-test", help="Classify: " + _REVIEWS_ON_TEST_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Train on one fold, test on the other, both directions; averaged metrics beside the paper's Table 3.

    Example: hyperkvasir benchmark /data/hyper-kvasir --models densenet161 --config configs/paper-densenet161.yaml
    """
    if task not in ("classify", "segment", "video"):
        raise typer.BadParameter(f"unknown task {task!r}; choose classify, segment or video", param_hint="--task")
    given = {
        "--config": config_file,
        "--scheme": scheme,
        "--optimizer": optimizer,
        "--exclude-conflicts": exclude_conflicts,
        "--select-on-train": select_on_train or None,
        "--mask-corners": mask_corners,
        "--seeds": seeds,
        "--protocol": protocol,
        "--force": force or None,
        "--average": average,
        "--reviews": reviews,
        "--reviews-on-test": reviews_on_test,
    }
    refuse_unfit("benchmark", task, given, f"--task {task}")
    names = [m.strip() for m in (models or _default_model(task, config_file)).split(",") if m.strip()]
    if not names:
        raise typer.BadParameter(
            f"{models!r} names no model; give one or more comma-separated names", param_hint="--models"
        )
    _check_model_names(task, names)
    from hyperkvasir.errors import require_output

    require_output(out_dir, folder=True)  # the options themselves are checked by each task before any work
    if task == "video":
        from hyperkvasir.video.benchmark import run_video_benchmark
        from hyperkvasir.video.config import VideoConfig

        options = {
            k: v
            for k, v in dict(
                epochs=epochs,
                size=input_size,
                batch_size=batch_size,
                lr=lr,
                workers=workers,
                seed=seed,
                device=device,
                sync_batchnorm=sync_batchnorm,
                freeze_batchnorm=freeze_batchnorm,
            ).items()
            if v is not None
        }
        _log_to_stderr()
        results = run_video_benchmark(
            VideoConfig(root=str(root), model=names[0], select_on_train=select_on_train, **options), out_dir
        )
        if not results:  # another process of a distributed run: rank 0 reports
            return 0
        print(json.dumps(results, indent=2) if as_json else (out_dir / "results.md").read_text())
        return 0
    if task == "segment":
        from hyperkvasir.data.segmentation_splits import SEGMENTATION_SCHEMES
        from hyperkvasir.segment.benchmark import run_segmentation_benchmark

        if scheme is not None and scheme not in SEGMENTATION_SCHEMES:
            raise typer.BadParameter(
                f"{scheme!r} is no segmentation scheme; choose one of {', '.join(SEGMENTATION_SCHEMES)}",
                param_hint="--scheme",
            )
        config = _segment_config(
            root,
            config_file,
            out=str(out_dir / "run"),
            epochs=epochs,
            size=input_size,
            batch_size=batch_size,
            lr=lr,
            workers=workers,
            seed=seed,
            device=device,
            scheme=scheme,
            model=names[0],
            sync_batchnorm=sync_batchnorm,
            freeze_batchnorm=freeze_batchnorm,
        )
        _log_to_stderr()
        results = run_segmentation_benchmark(config, out_dir)
        if not results:  # another process of a distributed run: rank 0 reports
            return 0
        print(json.dumps(results, indent=2) if as_json else (out_dir / "results.md").read_text())
        return 0
    from hyperkvasir.classify.benchmark import run_benchmark

    base = _train_config(
        root,
        config_file,
        scheme=scheme,
        epochs=epochs,
        input_size=input_size,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        workers=workers,
        seed=seed,
        device=device,
        sync_batchnorm=sync_batchnorm,
        freeze_batchnorm=freeze_batchnorm,
        exclude_conflicts=exclude_conflicts,
        mask_corners=mask_corners,
        protocol=protocol,
        reviews=str(reviews) if reviews else None,
        reviews_on_test=reviews_on_test,
    )
    _log_to_stderr()
    averages = [tuple(m.strip() for m in group.split("+")) for group in (average or "").split(",") if group.strip()]
    results = run_benchmark(
        root,
        names,
        out_dir,
        base=base,
        seeds=1 if seeds is None else seeds,
        force=force,
        average=averages,
        progress=progress_bar("caching images"),
    )
    if not results:  # another process of a distributed run: rank 0 reports
        return 0
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        print((out_dir / "results.md").read_text())
    return 0


def _default_model(task: str, config_file: Path | None) -> str:
    """The model a recipe names, else the task's default: ``--config`` with a ``model:`` key trains that model."""
    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.segment.config import SegmentConfig
    from hyperkvasir.video.config import VideoConfig

    kind = {"classify": ClassifyConfig, "segment": SegmentConfig, "video": VideoConfig}[task]
    if config_file is not None:
        from hyperkvasir.cli.common import resolve_recipe
        from hyperkvasir.recipes import read_recipe

        return read_recipe(resolve_recipe(config_file), kind).get("model", kind.model)
    return kind.model


def _check_model_names(task: str, names: list[str]) -> None:
    """Refuse unknown model names (and several models where the task trains one) before any work starts."""
    if task == "segment":
        from hyperkvasir.segment.model import ENCODERS as known
    else:
        from hyperkvasir.models import MODELS as known
    unknown = [name for name in names if name not in known]
    if unknown:
        raise typer.BadParameter(
            f"unknown model {unknown[0]!r} for --task {task}; choose one of {', '.join(known)}", param_hint="--models"
        )
    if task != "classify" and len(names) > 1:
        raise typer.BadParameter(
            f"--task {task} trains one model; give one name, not {len(names)}", param_hint="--models"
        )


@app.command()
def compare(
    results_a: Path = typer.Argument(..., help="Benchmark folder A (the baseline)."),
    results_b: Path = typer.Argument(..., help="Benchmark folder B (the candidate)."),
    model_a: str = typer.Option(None, help="Model of A to compare (needed when A holds several)."),
    model_b: str = typer.Option(None, help="Model of B to compare (needed when B holds several)."),
    resamples: int = typer.Option(1000, help="Paired bootstrap resamples."),
    seed: int = typer.Option(0, min=0, help="Seed of the resampling."),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """B − A for each headline metric with a paired-bootstrap 95 % interval and the share of resamples in which B
    is better: how one recipe is said to beat another. Both folders must come from the same tree, scheme and
    protocol, with the same images scored in every seed and fold.

    Example: hyperkvasir compare bench-demo bench-imbalanced
    """
    from hyperkvasir.classify.compare import compare_benchmarks
    from hyperkvasir.errors import require_range

    require_range("--resamples", resamples, 100, 100_000)
    result = compare_benchmarks(results_a, results_b, model_a=model_a, model_b=model_b, resamples=resamples, seed=seed)
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    paired = result.pop("paired")
    out.print(
        Text(
            f"B − A: {paired['b']['folder']} ({paired['b']['model']}) minus {paired['a']['folder']} "
            f"({paired['a']['model']}); {paired['protocol']} protocol, {paired['runs']} runs, "
            f"{paired['images_per_seed']} scored images per seed, {paired['resamples']} paired resamples"
        )
    )
    for metric, row in result.items():
        out.print(
            Text(
                f"{metric:16s} A {row['a']:.3f}  B {row['b']:.3f}  Δ {row['delta']:+.3f} "
                f"[{row['ci'][0]:+.3f}, {row['ci'][1]:+.3f}]  B better in {row['p_better']:.0%} of resamples"
            )
        )
    return 0
