"""Build ``report.html`` for a release tree (and, optionally, a benchmark results folder).

The HTML needs no network: figures are embedded as data URIs and the interactive sunburst carries plotly.js
inline. Each figure is also written as PNG to ``<report stem>-figures/`` beside it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import jinja2

from hyperkvasir.data.audit import audit
from hyperkvasir.data.index import build_index
from hyperkvasir.data.layout import Release
from hyperkvasir.data.splits import assignment
from hyperkvasir.data.tables import read_bounding_boxes, read_split_csv, read_video_labels
from hyperkvasir.data.taxonomy import CLASSES, lookup
from hyperkvasir.data.validate import validate
from hyperkvasir.errors import HyperKvasirError
from hyperkvasir.outputs import atomic_write, staged_folder
from hyperkvasir.report import figures as fig
from hyperkvasir.report.labeling import labeling_section
from hyperkvasir.report.results import results_section
from hyperkvasir.version import __version__

SAMPLES_PER_CLASS = 6
WORST_GROUPS = 6


def _sunburst(labeled: list[dict]) -> str:
    import plotly.graph_objects as go

    counts = Counter((r["tract"], r["category"], r["class"]) for r in labeled)
    ids, labels, parents, values = [], [], [], []
    for level in range(3):
        totals = Counter()
        for key, n in counts.items():
            totals[key[: level + 1]] += n
        for key, n in sorted(totals.items()):
            ids.append("/".join(key))
            labels.append(key[-1])
            parents.append("/".join(key[:-1]))
            values.append(n)
    figure = go.Figure(go.Sunburst(ids=ids, labels=labels, parents=parents, values=values, branchvalues="total"))
    figure.update_layout(margin=dict(t=10, l=10, r=10, b=10), height=560)
    return figure.to_html(full_html=False, include_plotlyjs=True, config={"displaylogo": False})


def build_report(
    root: str | Path, out: str | Path = "report.html", *, results: str | Path | None = None, progress=None
) -> Path:
    """Write the report and return its path. Figures go to a staging folder renamed into place before the
    report is written, so a failed run leaves neither; an earlier report's figures folder is replaced, nothing
    else (:mod:`hyperkvasir.outputs`)."""
    release = Release(root)
    out = Path(out)
    if out.is_dir():
        raise HyperKvasirError(f"{out} is a folder; give the report's file name, e.g. {out / 'report.html'}")
    if results is not None and not (Path(results) / "results.json").is_file():
        raise HyperKvasirError(f"{results}: no results.json; pass the --out folder of `hyperkvasir benchmark`")
    figures = out.parent / f"{out.stem}-figures"
    reads = [release.root, *([results] if results is not None else [])]
    with staged_folder(figures, "report", reads=reads) as staging:  # the figures appear whole, or not at all
        html = _render_report(release, staging, figures.name, results, progress)
    with atomic_write(out, "w") as handle:
        handle.write(html)
    return out


def _render_report(release: Release, staging: Path, figures_name: str, results, progress) -> str:
    sink = fig.FigureSink(staging)
    rows = build_index(release.root).to_pylist()
    report = audit(release.root)
    findings = validate(release.root, audit_report=report).findings
    labeled = [r for r in rows if r["part"] == "labeled"]
    sections: list[tuple[str, str]] = []

    counts = Counter(r["class"] for r in labeled)
    uris = {"hierarchy": sink.figure("hierarchy", fig.hierarchy_rings(counts))}
    present = {Path(r["path"]).name for r in labeled}
    for k in (2, 5):
        path = release.split_csv(k)
        if path is None or not present:
            continue
        per: dict[str, Counter] = defaultdict(Counter)
        for row in read_split_csv(path):  # the files present, as the grouped split below counts them
            if row.file_name in present:
                per[row.cls.folder][str(row.fold)] += 1
        sections.append(
            (
                f"Class balance of the files present, official {k}-fold split",
                sink.figure(f"folds-{k}", fig.fold_balance(per, f"images per class and fold ({k}-fold)")),
            )
        )
    if labeled:
        grouped: dict[str, Counter] = defaultdict(Counter)
        for cls, fold, _ in assignment(release.root, "grouped-2fold").files.values():
            grouped[cls.folder][str(fold)] += 1
        sections.append(
            (
                "Class balance, leakage-free grouped-2fold split",
                sink.figure("folds-grouped-2", fig.fold_balance(grouped, "images per class and fold (grouped-2fold)")),
            )
        )
    sizes = Counter(f"{r['width']}×{r['height']}" for r in rows if r["kind"] == "image" and r["width"])
    sections.append(
        (
            "Image sizes",
            sink.figure(
                "sizes",
                fig.bars(
                    [s for s, _ in sizes.most_common(15)],
                    [n for _, n in sizes.most_common(15)],
                    "images per size",
                    "images",
                ),
            ),
        )
    )

    jobs = [
        (c.folder, [release.root / r["path"] for r in labeled if r["class"] == c.folder][:SAMPLES_PER_CLASS])
        for c in CLASSES
    ]
    total = sum(len(paths) for _, paths in jobs)
    thumbs = iter(fig.thumbnail(p) for _, paths in jobs for p in paths)
    if progress:
        thumbs = iter(progress(thumbs, total))
    grid_rows = [(f"{lookup(folder).letter} {folder}", [next(thumbs) for _ in paths]) for folder, paths in jobs]
    sections.append(("Samples per class", sink.image("samples", fig.grid(grid_rows))))
    shares = report.scopeguide
    sections.append(
        (
            "ScopeGuide thumbnail share per class (a shortcut a model can learn)",
            sink.figure(
                "scopeguide",
                fig.bars(
                    list(shares), [v["share"] for v in shares.values()], "share with ScopeGuide", "share of images"
                ),
            ),
        )
    )
    if report.label_conflicts:
        sections.append(
            (
                "Label conflicts: the same picture under two classes (class letter and 2-fold fold "
                "per image, letters as in the samples above)",
                sink.image(
                    "label-conflicts",
                    fig.grid(
                        [
                            (
                                " vs ".join(
                                    f"{lookup(c).letter} fold {f}"
                                    for c, f in zip(conflict["classes"], conflict["fold2"])
                                ),
                                [fig.thumbnail(release.root / f) for f in conflict["files"][:8]],
                            )
                            for conflict in report.label_conflicts[:WORST_GROUPS]
                        ]
                    ),
                ),
            )
        )
    groups = sorted(
        report.exact_groups + report.near_groups,
        key=lambda g: (-len(set(f for f in g.fold2 if f is not None)), -len(g.files)),
    )[:WORST_GROUPS]
    if groups:
        sections.append(
            (
                "Duplicates and cross-fold leakage (worst groups side by side)",
                sink.image(
                    "duplicates",
                    fig.grid(
                        [
                            (
                                f"{g.kind}, folds {sorted(set(map(str, g.fold2)))}",
                                [fig.thumbnail(release.root / f) for f in g.files[:8]],
                            )
                            for g in groups
                        ]
                    ),
                ),
            )
        )
    sections += _segmented_sections(release, rows, sink)
    sections += _video_sections(release, rows, sink)

    cards = [
        ("labeled images", f"{len(labeled):,}"),
        ("classes", str(len(counts))),
        ("segmented", str(sum(1 for r in rows if r["part"] == "segmented" and r["kind"] == "image"))),
        ("unlabeled", f"{sum(1 for r in rows if r['part'] == 'unlabeled'):,}"),
        ("videos", str(sum(1 for r in rows if r["kind"] == "video"))),
        ("duplicate groups", str(len(report.duplicate_sets()))),
        ("label conflicts", str(len(report.label_conflicts))),
    ]
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("hyperkvasir", "report"), autoescape=jinja2.select_autoescape(["html", "j2"])
    )
    return environment.get_template("template.html.j2").render(
        root=str(release.root),
        version=__version__,
        figures_dir=figures_name,
        findings=findings,
        cards=cards,
        sunburst=_sunburst(labeled),
        figures=uris,
        sections=sections,
        audit_summary=report.summary,
        results=results_section(Path(results), sink, release.root, report.scopeguide_files) if results else None,
        labeling=labeling_section(release, report, Path(results) if results else None, sink),
    )


def _segmented_sections(release: Release, rows: list[dict], sink: fig.FigureSink) -> list[tuple[str, str]]:
    images = [r for r in rows if r["part"] == "segmented" and r["kind"] == "image"]
    if not images:
        return []
    boxes = read_bounding_boxes(release.bounding_boxes_json) if release.bounding_boxes_json else {}
    areas = [r["mask_area"] for r in images if r["mask_area"] is not None]
    widths = [b.xmax - b.xmin for e in boxes.values() for b in e.boxes]
    heights = [b.ymax - b.ymin for e in boxes.values() for b in e.boxes]
    overlays = []
    for row in images[:12]:
        if row.get("mask_path") and row["decodes"]:
            entry = boxes.get(Path(row["path"]).stem)
            overlays.append(
                fig.overlay(
                    release.root / row["path"],
                    release.root / row["mask_path"],
                    [(b.xmin, b.ymin, b.xmax, b.ymax) for b in entry.boxes] if entry else [],
                )
            )
    return [
        ("Segmented polyps: mask area", sink.figure("mask-area", fig.histogram(areas, "mask area fraction", "share"))),
        (
            "Segmented polyps: polyps per image",
            sink.figure(
                "boxes-per-image",
                fig.histogram([r["box_count"] or 0 for r in images], "boxes per image", "boxes", bins=10),
            ),
        ),
        (
            "Segmented polyps: box sizes",
            sink.figure("box-sizes", fig.scatter(widths, heights, "box sizes", "width (px)", "height (px)")),
        ),
        (
            "Segmented polyps: image, mask outline and boxes",
            sink.image(
                "overlays",
                fig.grid([("", overlays[i : i + 6]) for i in range(0, len(overlays), 6)], size=160, label_width=4),
            ),
        ),
    ]


def _video_sections(release: Release, rows: list[dict], sink: fig.FigureSink) -> list[tuple[str, str]]:
    videos = [r for r in rows if r["kind"] == "video" and r["decodes"]]
    if not videos:
        return []
    findings = (
        Counter(v.main_finding for v in read_video_labels(release.video_labels_csv))
        if release.video_labels_csv
        else Counter()
    )
    resolutions = Counter(f"{v['width']}×{v['height']}@{v['fps']:.0f}" for v in videos)
    return [
        (
            "Videos: duration",
            sink.figure("video-duration", fig.histogram([v["duration_s"] or 0 for v in videos], "duration", "seconds")),
        ),
        (
            "Videos: resolution and frame rate",
            sink.figure(
                "video-resolution",
                fig.bars(list(resolutions), list(resolutions.values()), "videos per resolution", "videos"),
            ),
        ),
        (
            "Videos: main findings",
            sink.figure(
                "video-findings", fig.bars(list(findings), list(findings.values()), "videos per main finding", "videos")
            ),
        ),
    ]
