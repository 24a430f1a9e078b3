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
            out.print(f"no {title} within the labeled set")
            continue
        table = Table(title=f"{title} within the labeled set ({len(groups)} groups)")
        for column in ("files", "classes", "2-fold", "5-fold"):
            table.add_column(column)
        for group in groups[:20]:
            table.add_row("\n".join(group.files), "\n".join(map(str, group.classes)),
                          " ".join(map(str, group.fold2)), " ".join(map(str, group.fold5)))
        out.print(table)
    for scheme, leak in report.leakage.items():
        out.print(f"leakage {scheme}: {leak['groups']} groups, {leak['images']} images, per fold pair {leak['fold_pairs']}")
    out.print(f"overlaps: {report.overlaps}")
    shares = {k: v["share"] for k, v in report.scopeguide.items() if v["scopeguide"]}
    out.print(f"ScopeGuide share per class: {shares}")
    out.print("\n[bold]Summary[/]\n" + report.summary, soft_wrap=True)
    return 0


@app.command()
def splits(
    root: Path = typer.Argument(..., help="Release root."),
    scheme: str = typer.Option("official-2fold", help="official-2fold | official-5fold | grouped-2fold | segmentation."),
    out_file: Path = typer.Option(None, "--out", help="CSV to write (official format + a validation column)."),
    validation: float = typer.Option(0.1, help="Share of each fold carved out for model selection."),
    seed: int = typer.Option(0),
) -> int:
    """Fold assignment with a validation carve-out, so no model is selected on its test fold.

    Example: hyperkvasir splits /data/hyper-kvasir --scheme grouped-2fold --out grouped.csv
    """
    from hyperkvasir.data.splits import SCHEMES, assignment, segmentation_split

    if scheme == "segmentation":
        split = segmentation_split(root, seed=seed)
        if out_file:
            split.write_csv(out_file)
        out.print(f"segmentation split: train {len(split.train)}, val {len(split.val)}, test {len(split.test)}"
                  + (f" → {out_file}" if out_file else ""))
        return 0
    if scheme not in SCHEMES:
        raise typer.BadParameter(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}, segmentation",
                                 param_hint="--scheme")
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


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("hyperkvasir-demo"), "--out", help="Work folder."),
    seed: int = typer.Option(0),
) -> int:
    """The main job on the embedded default, on a synthetic twin (CPU, minutes).

    Example: hyperkvasir demo --out ./hyperkvasir-demo
    """
    import shutil

    root = out_dir / "release"
    if root.exists():
        shutil.rmtree(root)
    summary = _synthesise(root, seed, "small", False, 2)
    out.print(f"demo twin: {summary['root']} ({summary['labeled']} labeled images, {summary['segmented']} masks)")
    for command in (["index", str(root)], ["validate", str(root)], ["audit", str(root)]):
        out.rule(f"hyperkvasir {' '.join(command)}")
        app(args=command, prog_name="hyperkvasir", standalone_mode=False)
    return 0
