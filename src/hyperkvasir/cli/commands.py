"""Sub-commands of ``hyperkvasir``. Each parses, calls one library function and prints with rich."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from hyperkvasir.cli.console import err, out

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
def demo(
    out_dir: Path = typer.Option(Path("hyperkvasir-demo"), "--out", help="Work folder."),
    seed: int = typer.Option(0),
) -> int:
    """The main job on the embedded default, on a synthetic twin (CPU, minutes).

    Example: hyperkvasir demo --out ./hyperkvasir-demo
    """
    root = out_dir / "release"
    if root.exists():
        import shutil

        shutil.rmtree(root)
    summary = _synthesise(root, seed, "small", False, 2)
    out.print(f"demo twin: {summary['root']} ({summary['labeled']} labeled images, {summary['segmented']} masks)")
    return 0
