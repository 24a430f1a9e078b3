"""``demo``: the whole flow on a synthetic twin, from rendering to the report, in minutes on a CPU."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.text import Text

from hyperkvasir.cli.acquire import _synthesise
from hyperkvasir.cli.common import _packaged_recipe, app
from hyperkvasir.cli.console import out


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("hyperkvasir-demo"), "--out", help="Work folder."),
    seed: int = typer.Option(0, min=0),
) -> int:
    """The main job on the embedded default, on a synthetic twin (CPU, minutes).

    Example: hyperkvasir demo --out ./hyperkvasir-demo
    """
    import os

    from hyperkvasir.errors import HyperKvasirError, require_output
    from hyperkvasir.outputs import made_by, mark, remove_folder

    require_output(out_dir, folder=True)
    if out_dir.is_dir() and any(out_dir.iterdir()) and made_by(out_dir) != "demo":
        raise HyperKvasirError(
            f"--out {out_dir}: holds files an earlier demo did not make; nothing was deleted, "
            f"give a new or empty folder"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo's weights are the offline EfficientNet-Lite0 ones
    started = time.perf_counter()
    root = out_dir / "release"
    for previous in (root, out_dir / "benchmark", out_dir / "segmentation", out_dir / "frames"):
        remove_folder(previous, "demo", "--out", owner=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mark(out_dir, "demo")
    summary = _synthesise(root, seed, "small", False, 2)
    out.print(f"demo twin: {summary['root']} ({summary['labeled']} labeled images, {summary['segmented']} masks)")
    for command in (
        ["index", str(root)],
        ["validate", str(root)],
        ["audit", str(root)],
        ["benchmark", str(root), "--config", str(_packaged_recipe("demo")), "--out", str(out_dir / "benchmark")],
        [
            "benchmark",
            str(root),
            "--task",
            "segment",
            "--config",
            str(_packaged_recipe("demo-segment")),
            "--out",
            str(out_dir / "segmentation"),
        ],
        ["video", "frames", str(root), str(out_dir / "frames"), "--every", "10", "--size", "128"],
        ["report", str(root), "--out", str(out_dir / "report.html"), "--results", str(out_dir / "benchmark")],
    ):
        out.rule(f"hyperkvasir {' '.join(command)}")
        app(args=command, prog_name="hyperkvasir", standalone_mode=False)
    out.print(
        Text(f"demo finished in {time.perf_counter() - started:.0f} s;", style="green"),
        f"results in {out_dir / 'benchmark'}",
    )
    return 0
