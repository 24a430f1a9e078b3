"""Commands that put a release tree on disk: ``synth`` renders the synthetic twin, ``download`` fetches and
extracts the real release. Registered before the data stages that read a tree (cli/commands.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from hyperkvasir.cli.common import _log_to_stderr, app
from hyperkvasir.cli.console import err, out


@app.command()
def synth(
    out_dir: Path = typer.Argument(..., metavar="OUT", help="Folder to create (must be new or empty)."),
    seed: int = typer.Option(0, min=0, help="Same seed, byte-identical tree."),
    scale: str = typer.Option(
        "tiny",
        help="tiny (unit tests) | small (demo) | medium (benchmarks) | full (every released count, small images).",
    ),
    faults: bool = typer.Option(False, "--faults", help="Plant known release faults and list them in FAULTS.json."),
    workers: int = typer.Option(2, min=1, help="Processes that render images."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> int:
    """Write a synthetic twin of the release in exactly the released layout.

    Example: hyperkvasir synth ./twin --scale small --seed 1
    """
    from hyperkvasir.errors import require_output
    from hyperkvasir.synth.tree import SCALES

    if scale not in SCALES:
        raise typer.BadParameter(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}", param_hint="--scale")
    require_output(out_dir, folder=True, option="OUT")
    summary = _synthesise(out_dir, seed, scale, faults, workers)
    if as_json:
        print(json.dumps(summary, indent=2))
    return 0


def _synthesise(out_dir: Path, seed: int, scale: str, faults: bool, workers: int) -> dict:
    from hyperkvasir.errors import HyperKvasirError
    from hyperkvasir.synth.tree import make_synthetic_release

    started = time.perf_counter()
    with err.status(Text(f"rendering a {scale} twin into {out_dir} …")):
        try:
            info = make_synthetic_release(out_dir, seed=seed, scale=scale, faults=faults, workers=workers)
        except FileExistsError as error:
            raise HyperKvasirError(str(error)) from None
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    summary: dict[str, Any] = {
        "root": str(out_dir),
        "seed": seed,
        "scale": scale,
        "seconds": round(seconds, 2),
        "bytes": size,
        "labeled": sum(info.per_class.values()),
        "segmented": len(info.segmented),
        "unlabeled": info.unlabeled,
        "videos": len(info.videos),
        "faults": [f["kind"] for f in info.faults],
    }
    err.print(
        Text(f"synthetic {scale} twin", style="green"),
        f"at {out_dir}: {summary['labeled']} labeled images in 23 classes, {summary['segmented']} segmented, "
        f"{summary['unlabeled']} unlabeled, {summary['videos']} videos "
        f"({size / 1e6:.1f} MB, {seconds:.1f} s)" + (f"; faults: {', '.join(summary['faults'])}" if faults else ""),
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
    allow_http: bool = typer.Option(False, "--allow-http", help="Accept a plain http:// mirror (unauthenticated)."),
    trust_archive: bool = typer.Option(
        False, "--trust-archive", help="Extract an archive found in ROOT whose hash is unknown (you vouch for it)."
    ),
) -> int:
    """Resumable, verified download and safe extraction of the release (about 66 GB in all).

    Example: hyperkvasir download /data/hyper-kvasir --parts labeled,segmented,splits
    """
    import urllib.parse

    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from hyperkvasir.data.download import PARTS, download as run_download
    from hyperkvasir.errors import HyperKvasirError, require_output

    wanted = tuple(p.strip() for p in parts.split(",") if p.strip())
    if not wanted:
        raise HyperKvasirError(f"--parts is empty; choose from {', '.join(PARTS)}")
    if base_url is not None and urllib.parse.urlparse(base_url).scheme not in ("http", "https", "file"):
        raise HyperKvasirError(f"--base-url {base_url}: not a URL; give the mirror as http(s)://… or file://…")
    if ca_bundle is not None and not ca_bundle.is_file():
        raise HyperKvasirError(f"--ca-bundle {ca_bundle}: no such file; give a PEM file of CA certificates")
    require_output(root, folder=True, option="ROOT")
    _log_to_stderr()
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:

        def progress(name: str):
            task = bar.add_task(name, total=None)
            return lambda done, total: bar.update(task, completed=done, total=total or None)

        done = run_download(
            root,
            wanted,
            base_url=base_url,
            extract_archives=extract,
            strict=strict,
            ca_bundle=ca_bundle,
            progress=progress,
            allow_http=allow_http,
            trust_archive=trust_archive,
        )
    for part, what in done.items():
        out.print(f"{part}: {what}")
    return 0
