"""The ``hyperkvasir`` app, its sub-command groups and what the task modules share."""

from __future__ import annotations

from pathlib import Path

import typer

from hyperkvasir.cli.console import err

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Toolkit for the HyperKvasir GI-endoscopy dataset: synth, index, validate, audit, splits, train, evaluate.",
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    """``--version`` answers before any command runs (an eager option)."""
    if asked:
        from hyperkvasir.version import __version__

        typer.echo(f"hyperkvasir {__version__}")
        raise typer.Exit()


@app.callback()
def _work_dir_option(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the toolkit's version and exit."
    ),
    work_dir: Path = typer.Option(
        None,
        "--work-dir",
        help="Where manifests, caches and audit tables go (default "
        "ROOT/.hyperkvasir, or $HYPERKVASIR_HOME/<tree>): the "
        "release tree is then never written to.",
    ),
) -> None:
    import os

    from hyperkvasir.errors import require_output
    from hyperkvasir.outputs import WORK_DIR_VARIABLE

    require_output(work_dir, folder=True, option="--work-dir")
    if work_dir is None:
        os.environ.pop(WORK_DIR_VARIABLE, None)  # one call's choice never leaks into the next
    else:
        os.environ[WORK_DIR_VARIABLE] = str(work_dir.resolve())


train_app = typer.Typer(
    help="Train models through the engine: classify (23 classes), segment (polyps), video.", no_args_is_help=True
)

evaluate_app = typer.Typer(help="Evaluate predictions with the official metrics.", no_args_is_help=True)

video_app = typer.Typer(help="Labeled videos: frame extraction.", no_args_is_help=True)

app.add_typer(video_app, name="video")

app.add_typer(train_app, name="train")

app.add_typer(evaluate_app, name="evaluate")


def _config(kind, root: Path, config_file: Path | None, *, resume: bool = False, **overrides):
    """A run config (ClassifyConfig, SegmentConfig, VideoConfig): defaults — or, with ``resume``, the run's saved
    config — then a YAML recipe (type-checked), then the flags. A resumed run thus differs from its saved config
    only where the user asked, and the engine refuses such a difference by name."""
    import dataclasses

    from hyperkvasir.recipes import read_recipe

    values = read_recipe(resolve_recipe(config_file), kind) if config_file is not None else {}
    values |= {k: v for k, v in overrides.items() if v is not None}
    config = kind(root=str(root), **values)
    if resume:
        from hyperkvasir.engine.runs import RunFolder
        from hyperkvasir.errors import HyperKvasirError
        from hyperkvasir.provenance import differing_keys

        known = {f.name for f in dataclasses.fields(kind)}
        saved = {k: v for k, v in RunFolder(config.out).saved_config().items() if k in known}
        differ = [key for key in differing_keys(saved, values) if key in values]
        if differ:
            shown = ", ".join(f"{key} {saved.get(key)!r} → {values[key]!r}" for key in differ)
            raise HyperKvasirError(
                f"{config.out}: --resume continues the run as it was made, but {shown} differ "
                f"from it; drop those options, or start a new run in another --out"
            )
        config = kind(**{**saved, **values, "root": str(root)})
    return config


_WORKERS_HELP = (
    "Data-loading processes per training process (default: the cores of the node shared by its "
    "processes, less one each, at most 8)."
)
_SYNC_BATCHNORM_HELP = (
    "Under torchrun or SLURM on GPUs: batch-norm statistics over the batches of every process "
    "(SyncBatchNorm); no effect on one process. Recorded in config.json."
)
_FREEZE_BATCHNORM_HELP = (
    "Batch norm on its running statistics while training (its scale and shift still learn): "
    "small per-device batches, and exact data parallelism on CPU. Recorded in config.json."
)
_RECIPE_HELP = (
    "YAML recipe: a packaged name (demo, imbalanced-cpu, beat-the-paper, paper-densenet161, …) or a "
    "path; flags override it."
)


def resolve_recipe(value: Path) -> Path:
    """A path that exists, else the packaged recipe of that name (``configs/NAME.yaml``), else one clear error."""
    from hyperkvasir.errors import HyperKvasirError

    if value.exists():
        return value
    packaged = _packaged_recipe(value.stem if value.suffix in (".yaml", ".yml") else value.name)
    if packaged.is_file() and value.parent == Path("."):
        return packaged
    names = sorted(p.stem for p in packaged.parent.glob("*.yaml"))
    raise HyperKvasirError(f"{value}: no such recipe file or packaged recipe; packaged: {', '.join(names)}")


def _log_to_stderr() -> None:
    import logging

    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])
    logging.getLogger("matplotlib").setLevel(logging.WARNING)


def _packaged_recipe(name: str) -> Path:
    """A recipe shipped with the package (src/hyperkvasir/configs/NAME.yaml)."""
    return Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml"
