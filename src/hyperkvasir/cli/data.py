"""Data-stage commands that read a release tree: index, validate, audit, splits, report, export."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.text import Text

from hyperkvasir.cli.common import app
from hyperkvasir.cli.console import out, progress_bar


@app.command()
def index(
    root: Path = typer.Argument(..., help="Release root (the folder holding labeled-images/ …)."),
    workers: int = typer.Option(0, min=0, help="Processes (0 = one per core)."),
    out_file: Path = typer.Option(None, "--out", help="Manifest path (default manifest.parquet in the work dir)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> int:
    """Build or refresh the Parquet manifest (incremental: unchanged files are not read again).

    Example: hyperkvasir index /data/hyper-kvasir --workers 8
    """
    from hyperkvasir.data.index import build_index, manifest_path
    from hyperkvasir.errors import HyperKvasirError, require_output

    require_output(out_file, folder=False)
    if out_file is not None and out_file.suffix != ".parquet":
        raise HyperKvasirError(f"--out {out_file}: the manifest is Parquet; give a name ending in .parquet")
    started = time.perf_counter()
    table = build_index(root, workers=workers or None, out=out_file, progress=progress_bar("indexing"))
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    parts = {}
    for part in table.column("part").to_pylist():
        parts[part] = parts.get(part, 0) + 1
    bad = [p for p, ok in zip(table.column("path").to_pylist(), table.column("decodes").to_pylist()) if not ok]
    left_out = [entry for entry in meta.get("hyperkvasir.skipped", "").split("\n") if entry]
    summary = {
        "manifest": str(out_file or manifest_path(root)),
        "rows": table.num_rows,
        "parts": parts,
        "read": int(meta["hyperkvasir.read"]),
        "reused": int(meta["hyperkvasir.reused"]),
        "unreadable": bad,
        "left_out": left_out,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(
            f"{summary['rows']:,} files indexed ({summary['read']:,} read, {summary['reused']:,} unchanged) "
            f"in {summary['seconds']} s → {summary['manifest']}",
            soft_wrap=True,
        )
        for path in bad:
            out.print(
                Text("  unreadable:", style="yellow"),
                f"{path} (re-extract it from the archive or remove it; `hyperkvasir validate` names what is wrong)",
                soft_wrap=True,
            )
        for problem in filter(None, meta.get("hyperkvasir.problems", "").split("\n")):
            out.print(Text("  skipped:", style="yellow"), f"{problem} (run `hyperkvasir validate`)")
        for entry in left_out:
            out.print(Text("  left out:", style="yellow"), f"{entry} (`hyperkvasir validate` says what to do)")
    return 0


@app.command()
def validate(
    root: Path = typer.Argument(..., help="Release root."),
    workers: int = typer.Option(0, min=0, help="Processes (0 = one per core)."),
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
            out.print(
                Text(finding.severity, style=colours[finding.severity]),
                f"{finding.code}: {finding.file}: {finding.message}",
                Text(f"→ {finding.hint}", style="dim"),
            )
        counts = report.counts()
        out.print(
            f"{counts.get('error', 0)} errors, {counts.get('warning', 0)} warnings, {counts.get('info', 0)} notes"
        )
    return report.exit_code


@app.command()
def audit(
    root: Path = typer.Argument(..., help="Release root."),
    workers: int = typer.Option(0, min=0, help="Processes (0 = one per core)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON on stdout."),
) -> int:
    """Duplicates, cross-fold leakage, part overlaps and the ScopeGuide shortcut, with a paste-ready summary.

    Example: hyperkvasir audit /data/hyper-kvasir
    """
    from hyperkvasir.data.audit import audit as run_audit

    report = run_audit(root, workers=workers or None, progress=progress_bar("hashing pixels"))
    incomplete = 1 if report.unreadable else 0  # an image left out makes every count short: never a silent 0
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
        return incomplete
    from rich.table import Table

    for title, groups in (("exact duplicates", report.exact_groups), ("near duplicates", report.near_groups)):
        if not groups:
            out.print(f"no {title} in the parts present ({', '.join(sorted(report.images)) or 'none'})")
            continue
        table = Table(title=f"{title} in and across parts ({len(groups)} groups)")
        for column in ("files", "parts", "classes", "2-fold", "5-fold"):
            table.add_column(column)
        for group in groups[:20]:
            table.add_row(
                "\n".join(group.files),
                "\n".join(group.parts),
                "\n".join(map(str, group.classes)),
                " ".join(map(str, group.fold2)),
                " ".join(map(str, group.fold5)),
            )
        out.print(table)
    for conflict in report.label_conflicts:
        out.print(
            Text("label conflict:", style="red"),
            "; ".join(
                f"{f} ({c}, 2-fold {f2})" for f, c, f2 in zip(conflict["files"], conflict["classes"], conflict["fold2"])
            ),
            soft_wrap=True,
        )
    if report.images.get("labeled"):
        for scheme, leak in report.leakage.items():
            out.print(
                f"leakage {scheme}: {leak['pairs']} confirmed pairs across folds ({leak['images']} images, "
                f"{leak['groups']} duplicate groups), per fold pair {leak['fold_pairs']}"
            )
        out.print(f"overlaps: {report.overlaps}")
        shares = {k: v["share"] for k, v in report.scopeguide.items() if v["scopeguide"]}
        out.print(f"ScopeGuide share per class: {shares or 'no labeled image shows it'}")
    if report.segmented_corner:
        corner = report.segmented_corner
        out.print(
            f"segmented corner: black box {corner['black_box']} ({corner['black_box_share']:.0%}), "
            f"ScopeGuide {corner['scopeguide']} ({corner['share']:.0%}) of {corner['images']}"
        )
    out.print(Text("\nSummary", style="bold"), "\n" + report.summary, sep="")
    return incomplete


@app.command()
def splits(
    root: Path = typer.Argument(..., help="Release root."),
    scheme: str = typer.Option(
        "official-2fold", help="official-2fold | official-5fold | grouped-2fold | segmentation | kvasir-seg-official."
    ),
    out_file: Path = typer.Option(None, "--out", help="CSV to write (official format + a validation column)."),
    validation: float = typer.Option(None, help="Share of each fold carved out for model selection (default 0.1)."),
    seed: int = typer.Option(0, min=0),
) -> int:
    """Fold assignment with a validation carve-out, so no model is selected on its test fold.

    Example: hyperkvasir splits /data/hyper-kvasir --scheme grouped-2fold --out grouped.csv
    """
    from hyperkvasir.errors import require_output

    require_output(out_file, folder=False)
    from hyperkvasir.data.audit import audit
    from hyperkvasir.data.segmentation_splits import kvasir_seg_official_split, segmentation_split
    from hyperkvasir.data.splits import SCHEMES, assignment, assignment_leakage

    if scheme in ("segmentation", "kvasir-seg-official"):
        split = (
            segmentation_split(root, seed=seed, report=audit(root))
            if scheme == "segmentation"
            else kvasir_seg_official_split(root)
        )
        if out_file:
            split.write_csv(out_file)
        out.print(
            f"{scheme} split: train {len(split.train)}, val {len(split.val)}, test {len(split.test)}"
            + (f" → {out_file}" if out_file else "")
        )
        return 0
    if scheme not in SCHEMES:
        raise typer.BadParameter(
            f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}, segmentation, kvasir-seg-official",
            param_hint="--scheme",
        )
    from hyperkvasir.data.splits import DEFAULT_VALIDATION_FRACTION

    validation = DEFAULT_VALIDATION_FRACTION if validation is None else validation
    if not 0 <= validation < 1:
        raise typer.BadParameter("must be in [0, 1)", param_hint="--validation")
    report = audit(root)  # once: the split units, then the leakage of the folds written
    result = assignment(root, scheme, fraction=validation, seed=seed, report=report)
    if out_file:
        result.write_csv(out_file)
    for fold in range(result.k):
        sizes = {k: len(v) for k, v in result.subsets(fold).items()}
        out.print(f"{scheme} test fold {fold}: train {sizes['train']}, val {sizes['val']}, test {sizes['test']}")
    leak = assignment_leakage(root, result, report)
    out.print(
        f"{scheme}: {leak['pairs']} confirmed duplicate pairs across folds ({leak['images']} images); every "
        f"split unit (all confirmed pairs, however long the chain) is kept in one fold and one side of the "
        f"validation carve-out" + (" within its official fold" if scheme.startswith("official") else "")
    )
    for unit in leak["large_units"]:
        out.print(
            f"large split unit kept whole: {unit['files']} images from {unit['first']} "
            f"({unit['class']} has {unit['class_images']}); its class's folds are uneven"
        )
    if out_file:
        out.print(f"→ {out_file}")
    return 0


@app.command()
def report(
    root: Path = typer.Argument(..., help="Release root."),
    out_file: Path = typer.Option(Path("report.html"), "--out", help="HTML file to write (figures go beside it)."),
    results: Path = typer.Option(None, help="A benchmark output folder (results.json) to include."),
) -> int:
    """One self-contained HTML report: hierarchy, balance, samples, leakage, masks, videos, results.

    Example: hyperkvasir report /data/hyper-kvasir --out report.html --results benchmark/
    """
    from hyperkvasir.errors import require_output
    from hyperkvasir.report import build_report

    require_output(out_file, folder=False)
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
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace an earlier export in OUT (never a folder the toolkit did not make, a release or a work dir).",
    ),
    seed: int = typer.Option(0, min=0),
) -> int:
    """Convert the release for other tools; written atomically (a temp folder, then a rename).

    Example: hyperkvasir export coco /data/hyper-kvasir ./coco
    """
    from hyperkvasir.dataset_export import export as run_export
    from hyperkvasir.errors import require_output

    require_output(out_dir, folder=True, option="OUT")
    summary = run_export(fmt, root, out_dir, scheme=scheme, seed=seed, copy=copy, overwrite=overwrite)
    out.print(json.dumps(summary), soft_wrap=True)
    return 0
