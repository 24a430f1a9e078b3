"""The labeling loop: ``embed``, ``similar``, ``label-issues`` and ``to-label`` (``label/``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.text import Text

from hyperkvasir.cli.common import app
from hyperkvasir.cli.console import err, out, progress_bar

_PARTS_HELP = "labeled | segmented | unlabeled | videos (the frames of --frames); repeat for several."
_FRAMES_HELP = (
    "Folder of `hyperkvasir video frames ROOT DIR` (its frames.parquet): the frames the videos part "
    "embeds, named VIDEO#frame=NNNNNN."
)
_CHECKPOINT_HELP = (
    "best.ckpt of `hyperkvasir train classify`: its penultimate layer, input size and corner masking "
    "(default: the offline ImageNet backbone)."
)


@app.command()
def embed(
    root: Path = typer.Argument(..., help="Release root."),
    part: list[str] = typer.Option(["labeled"], "--part", help=_PARTS_HELP),
    checkpoint: Path = typer.Option(None, help=_CHECKPOINT_HELP),
    model: str = typer.Option(None, help="ImageNet backbone without --checkpoint (default tf_efficientnet_lite0)."),
    size: int = typer.Option(None, help="Input size without --checkpoint (default 224)."),
    batch_size: int = typer.Option(64),
    workers: int = typer.Option(0, help="Data-loading processes."),
    device: str = typer.Option("auto"),
    frames: Path = typer.Option(None, help=_FRAMES_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> int:
    """One L2-normalised embedding per image, kept in the work dir (resumable; sharded under torchrun).

    Example: hyperkvasir embed /data/hyper-kvasir --part labeled --part videos --frames ./frames
    """
    import time

    from hyperkvasir.engine.runs import check_device, global_rank
    from hyperkvasir.errors import HyperKvasirError, require_ranges
    from hyperkvasir.label.embed import DEFAULT_MODEL, embed_parts

    require_ranges(("--batch-size", batch_size, 1, None), ("--workers", workers, 0, None))
    check_device(device)
    if checkpoint is not None and model is not None:
        raise HyperKvasirError(
            f"--model {model} and --checkpoint {checkpoint} contradict each other (the checkpoint "
            f"names its model); drop one"
        )
    started = time.perf_counter()
    found = embed_parts(
        root,
        parts=tuple(part),
        checkpoint=checkpoint,
        size=size,
        model=model or DEFAULT_MODEL,
        workers=workers,
        batch_size=batch_size,
        device=device,
        frames=frames,
        progress=progress_bar("chunks"),
    )
    if global_rank() != 0:
        return 0
    seconds = time.perf_counter() - started
    summary = {
        "images": len(found.paths),
        "dimensions": int(found.vectors.shape[1]),
        "parts": list(part),
        "seconds": round(seconds, 2),
        "undecodable": found.undecodable,
    }
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        out.print(
            f"{summary['images']:,} embeddings ({summary['dimensions']} dimensions) of {', '.join(part)} in "
            f"{seconds:.1f} s (read from the work dir where already computed)"
        )
    _warn_undecodable(found.undecodable)
    return 0


@app.command()
def similar(
    root: Path = typer.Argument(..., help="Release root."),
    query: list[str] = typer.Option(
        ..., "--query", help="An image of the tree (relative to ROOT or below it); several may follow one --query."
    ),
    more: list[str] = typer.Argument(None, metavar="[FILE...]", help="Further queries after --query FILE."),
    k: int = typer.Option(5, "-k", help="Neighbours per query."),
    part: list[str] = typer.Option(["labeled"], "--part", help=f"Where to search: {_PARTS_HELP}"),
    checkpoint: Path = typer.Option(None, help=_CHECKPOINT_HELP),
    size: int = typer.Option(None, help="Input size without --checkpoint (default 224)."),
    workers: int = typer.Option(0, help="Data-loading processes."),
    frames: Path = typer.Option(None, help=_FRAMES_HELP + " Needed for --part videos or a frame as --query."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print {query: [{file, distance}, …]} on stdout (a video frame also with its JPEG as image).",
    ),
) -> int:
    """Nearest images by embedding (cosine distance, exact), never the query itself; video frames too.

    Example: hyperkvasir similar /data/hyper-kvasir --query segmented-images/images/x.jpg -k 5 --json
    """
    from hyperkvasir.errors import require_range
    from hyperkvasir.label.neighbours import similar as find_similar

    require_range("--workers", workers, 0, None)
    found = find_similar(
        root,
        [*query, *(more or [])],
        k,
        parts=tuple(part),
        checkpoint=checkpoint,
        size=size,
        workers=workers,
        frames=frames,
        progress=progress_bar("chunks"),
    )
    image = _frame_images(root, frames)
    if as_json:
        print(
            json.dumps(
                {
                    q: [{"file": f, "distance": d} | ({"image": image[f]} if f in image else {}) for f, d in near]
                    for q, near in found.items()
                },
                indent=2,
            )
        )
        return 0
    for q, near in found.items():
        out.print(q)
        for f, d in near:
            out.print(f"  {d:.4f}  {f}{f'  ({image[f]})' if f in image else ''}")
    return 0


def _frame_images(root: Path, frames: Path | None) -> dict[str, str]:
    """Frame name → its JPEG in the frames folder (empty without one)."""
    if frames is None:
        return {}
    from hyperkvasir.data.index import build_index
    from hyperkvasir.label.frames import read_frames

    videos = {r["path"] for r in build_index(root).to_pylist() if r["kind"] == "video"}
    return read_frames(frames, root, videos).image_of()


@app.command("label-issues")
def label_issues_command(
    root: Path = typer.Argument(..., help="Release root (only read)."),
    results: Path = typer.Option(
        ...,
        "--results",
        help="--out folder of `hyperkvasir benchmark --protocol test` on this tree (its out-of-fold probabilities).",
    ),
    out_file: Path = typer.Option(None, "--out", help="Also write the rows as CSV here."),
    top: int = typer.Option(20, help="Rows printed (all with --json and --out)."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as a JSON list, most doubtful first."),
) -> int:
    """Labeled images whose label is doubtful: confident learning (cleanlab) on out-of-fold probabilities,
    merged with the audit's label conflicts and copies of segmented polyps filed elsewhere.

    Example: hyperkvasir label-issues /data/hyper-kvasir --results bench/ --out issues.csv
    """
    from hyperkvasir.errors import require_output, require_range
    from hyperkvasir.label.issues import FIELDS, out_of_fold, rank_issues

    require_range("--top", top, 1, None)
    require_output(out_file, folder=False)
    scored = out_of_fold(root, results)
    rows = rank_issues(root, scored)
    if out_file is not None:
        _write_csv(out_file, FIELDS, rows)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        out.print(
            f"{len(rows)} doubtful labels among {len(scored.files):,} labeled images (model {scored.model}, "
            f"out of fold){f' → {out_file}' if out_file else ''}"
        )
        for row in rows[:top]:
            steps = f" ({row['grade_steps']} grade steps)" if row["grade_steps"] is not None else ""
            score = "  –  " if row["score"] is None else f"{row['score']:.3f}"
            out.print(f"{score}  {row['file']}  {row['given']} → {row['suggested']}{steps}  [{row['reason']}]")
    if scored.unscored:
        err.print(
            Text("warning:", style="yellow"),
            f"{len(scored.unscored)} labeled images have no out-of-fold "
            f"probability in {results} (first: {scored.unscored[0]}); rerun the benchmark to rank them",
        )
    return 0


@app.command("to-label")
def to_label_command(
    root: Path = typer.Argument(..., help="Release root (only read)."),
    checkpoint: Path = typer.Option(..., help="best.ckpt of `hyperkvasir train classify`."),
    budget: int = typer.Option(..., help="How many unlabeled images to choose."),
    out_dir: Path = typer.Option(
        ...,
        "--out",
        help="Folder for to-label.csv, label-studio.json (tasks: images as "
        "/data/local-files/?d=PATH below ROOT: run Label Studio with "
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=ROOT) and "
        "label-studio.xml (the labeling interface).",
    ),
    classes: str = typer.Option(None, help="Aim at these classes (comma-separated, any naming), e.g. rare ones."),
    workers: int = typer.Option(0, help="Data-loading processes."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary and rows as JSON."),
) -> int:
    """The next unlabeled images worth an expert's time: uncertain (margin), diverse (k-center greedy on the
    checkpoint's embeddings), no near duplicates of labeled images or of each other; with a Label Studio import.

    Example: hyperkvasir to-label /data/hyper-kvasir --checkpoint runs/f0/best.ckpt --budget 200 --out queue/
    """
    from hyperkvasir.errors import require_output, require_range
    from hyperkvasir.label.queue import to_label, write_queue

    require_range("--budget", budget, 1, None)
    require_range("--workers", workers, 0, None)
    require_output(out_dir, folder=True)
    names = [c.strip() for c in classes.split(",") if c.strip()] if classes is not None else None
    if names is not None and not names:
        raise typer.BadParameter("give one or more class names, comma-separated", param_hint="--classes")
    summary = to_label(root, checkpoint, budget, classes=names, workers=workers, progress=progress_bar("chunks"))
    written = write_queue(out_dir, summary, f"{checkpoint.parent.name}/{checkpoint.name}")
    if as_json:
        print(json.dumps(summary | {"written": [str(p) for p in written]}, indent=2))
    else:
        out.print(
            f"{len(summary['rows'])} of {summary['unlabeled']:,} unlabeled images chosen (duplicate distance "
            f"{summary['duplicate_distance']:.4g} from {summary['calibration_pairs']} audit pairs) → "
            f"{', '.join(str(p) for p in written)}"
        )
    if len(summary["rows"]) < budget:
        err.print(
            Text("warning:", style="yellow"),
            f"only {len(summary['rows'])} images qualify for --budget "
            f"{budget}: the others are near duplicates of labeled or chosen images",
        )
    return 0


def _write_csv(path: Path, fields: tuple[str, ...], rows: list[dict]) -> None:
    import csv

    from hyperkvasir.outputs import atomic_write

    with atomic_write(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _warn_undecodable(paths: list[str]) -> None:
    if paths:
        err.print(
            Text("warning:", style="yellow"),
            f"{len(paths)} images do not decode and have no embedding: "
            f"{', '.join(paths[:10])}{f' and {len(paths) - 10} more' if len(paths) > 10 else ''}",
        )
