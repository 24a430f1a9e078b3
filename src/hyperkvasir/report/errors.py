"""Error analysis for the report: where a benchmarked classifier goes wrong, and how sure it was.

For the first model of a benchmark, over its test folds: the most frequent confusions (true → predicted) with
the misclassified test images and their Grad-CAM, the most confident mistakes, the least confident correct
answers, and calibration per fold of the decision reported (reliability diagram, top-label and classwise ECE).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from hyperkvasir.data.taxonomy import CLASSES, lookup
from hyperkvasir.report import figures as fig

PAIRS, SHOWN = 3, 6


def _predictions(run: Path) -> list[dict]:
    with open(run / "predictions-test.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["probabilities"] = np.asarray([float(row[c.folder]) for c in CLASSES])
    return rows


def _gradcam_tiles(checkpoint: Path, paths: list[Path]) -> list[Image.Image]:
    from hyperkvasir.classify.gradcam import checkpoint_gradcam, overlay

    raw, heat, _ = checkpoint_gradcam(checkpoint, paths)
    return [Image.fromarray(overlay(image, cam)).resize((96, 96)) for image, cam in zip(raw, heat)]


def _labelled(tile: Image.Image, text: str) -> Image.Image:
    """The tile with ``text`` on a dark band along its top."""
    from PIL import ImageDraw

    tile = tile.copy()
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, 0, tile.width, 13), fill=(0, 0, 0))
    draw.text((3, 1), text, fill=(255, 255, 255))
    return tile


def _calibration(runs: list[Path], rows: list[dict], name: str, sink: fig.FigureSink) -> list[tuple[str, str, str]]:
    """Per fold (each fold model on its own test fold, never pooled), calibration of the decision reported — the
    probabilities after the run's decision rule — as a reliability diagram of the first fold and the top-label
    ECE of each, and the classwise ECE of every class averaged over folds."""
    import json

    from hyperkvasir.classify.decision import decision_probabilities
    from hyperkvasir.metrics.calibration import calibration, classwise_ece, plot_reliability

    eces, per_class, support, plotted = [], Counter(), Counter(), None
    for run in runs:
        members = [r for r in rows if r["run"] == run]
        if not members:
            continue
        rule = (
            json.loads((run / "metrics-test.json").read_text()).get("decision_rule")
            if (run / "metrics-test.json").is_file()
            else None
        )
        probabilities = decision_probabilities(
            np.stack([r["probabilities"] for r in members]), np.asarray(rule["offsets"]) if rule else None
        )
        truths = [r["truth"] for r in members]
        result = calibration(probabilities, truths, len(CLASSES))
        eces.append(f"{run.name} {result['ece']:.3f}")
        if plotted is None:
            plot_reliability(result, sink.folder / "reliability.png", f"{name} {run.name}")
            plotted = run.name
        present = sorted(set(truths))
        for cls, value in classwise_ece(probabilities, truths, present).items():
            per_class[cls] += value
            support[cls] += 1
    if not eces:
        return []
    table = [
        [CLASSES[cls].folder, str(sum(r["truth"] == cls for r in rows)), f"{per_class[cls] / support[cls]:.3f}"]
        for cls in sorted(per_class)
    ]
    return [
        (
            f"Calibration of {name}, per fold, of the decision reported (after its decision rule): top-label "
            f"expected calibration error {', '.join(eces)}; reliability diagram of {plotted}",
            "image",
            sink.png("reliability", (sink.folder / "reliability.png").read_bytes()),
        ),
        (
            "Classwise calibration: per class, the classwise ECE (Kull et al. 2019) of its probability, averaged over "
            "folds",
            "table",
            {"header": ["class", "test images", "classwise ECE"], "rows": table},
        ),
    ]


def error_analysis(results_dir: Path, root: Path, sink: fig.FigureSink) -> list[tuple[str, str, str]]:
    """(caption, "image" or "table", figure URI or ``{"header", "rows"}``) sections; empty without a
    classification run."""
    from hyperkvasir.data.layout import Release

    runs = sorted(p.parent for p in results_dir.glob("*/test-fold-*/predictions-test.csv"))
    runs = [r for r in runs if r.parent == runs[0].parent] if runs else []
    if not runs:
        return []
    paths = {p.name: p for p in Release(root).labeled_files()}
    rows = [dict(row, run=run) for run in runs for row in _predictions(run) if row["file-name"] in paths]
    for row in rows:
        row["truth"] = lookup(paths[row["file-name"]].parent.name).index
        row["predicted"] = lookup(row["label"]).index
        row["confidence"] = float(row["probabilities"][row["predicted"]])
    if not rows:
        return []
    name = runs[0].parent.name
    sections: list[tuple[str, str]] = []
    wrong = [r for r in rows if r["truth"] != r["predicted"]]
    for (truth, predicted), count in Counter((r["truth"], r["predicted"]) for r in wrong).most_common(PAIRS):
        members = sorted(
            (r for r in wrong if (r["truth"], r["predicted"]) == (truth, predicted)), key=lambda r: -r["confidence"]
        )[:SHOWN]
        images = [fig.thumbnail(paths[r["file-name"]]) for r in members]
        cams = _gradcam_tiles(members[0]["run"] / "best.ckpt", [paths[r["file-name"]] for r in members])
        caption = f"{CLASSES[truth].folder} taken for {CLASSES[predicted].folder}: {count} test images ({name})"
        sections.append(
            (
                caption,
                "image",
                sink.image(f"confusion-{truth}-{predicted}", fig.grid([("images", images), ("Grad-CAM", cams)])),
            )
        )
    right = (r for r in rows if r["truth"] == r["predicted"])
    for title, chosen in (
        ("Most confident mistakes", sorted(wrong, key=lambda r: -r["confidence"])[:SHOWN]),
        ("Least confident correct answers", sorted(right, key=lambda r: r["confidence"])[:SHOWN]),
    ):
        if chosen:
            tiles = [
                _labelled(
                    fig.thumbnail(paths[r["file-name"]]),
                    f"{CLASSES[r['truth']].letter}>{CLASSES[r['predicted']].letter} {r['confidence']:.2f}",
                )
                for r in chosen
            ]
            sections.append(
                (
                    f"{title} ({name}; on each image: true > predicted class letter, confidence)",
                    "image",
                    sink.image(title.lower().replace(" ", "-"), fig.grid([("", tiles)], label_width=4)),
                )
            )
    sections += _calibration(runs, rows, name, sink)
    return sections
