"""The report's results section, shown when ``--results`` names a benchmark folder: its tables (classify,
segment or video ``results.json``, beside the paper's Table 3), per-class F1 and confusion-matrix figures per
fold, the error analysis, Grad-CAM on frames with the ScopeGuide box and the leakage beside the results.
"""

from __future__ import annotations

import json
from pathlib import Path

from hyperkvasir.report import figures as fig


def _corner_gradcam(results_dir: Path, root: Path, scopeguide_files: list[str], sink: fig.FigureSink):
    """Grad-CAM of the first model's first fold on test frames that show the ScopeGuide box, and the share of
    the heat that falls in the masked corner region (the corner is 0.38 × 0.4 = 15 % of a frame's area)."""
    import numpy as np

    from hyperkvasir.classify.gradcam import checkpoint_gradcam, overlay
    from hyperkvasir.data.imaging import corner_region

    runs = sorted(results_dir.glob("*/test-fold-*/best.ckpt"))
    if not runs:
        return None
    tested = {line.split(",")[0] for line in (runs[0].parent / "predictions-test.csv").read_text().splitlines()[1:]}
    frames = [root / f for f in scopeguide_files if f.startswith("labeled-images/") and Path(f).name in tested][:6]
    if not frames:
        return None
    raw, heat, model_name = checkpoint_gradcam(runs[0], frames)
    side = raw.shape[1]  # the centre square: the corner region maps to its lower-left part (exact for square frames)
    corner = np.zeros((side, side), bool)
    corner[corner_region(side, side)] = True
    share = float(np.mean([h[corner].sum() / max(h.sum(), 1e-9) for h in heat]))
    from PIL import Image

    tiles = [Image.fromarray(overlay(image, cam)).resize((120, 120)) for image, cam in zip(raw, heat)]
    caption = (
        f"Grad-CAM of {model_name} ({runs[0].parent.name}) on test frames with the ScopeGuide box: "
        f"{share:.0%} of the heat falls in the lower-left corner region"
    )
    return caption, sink.image("gradcam-corner", fig.grid([("", tiles)], size=120, label_width=4))


def _number(value) -> str:
    return "N/A" if value is None else f"{value:.3f}"


def results_tables(results: dict) -> list[dict]:
    """The benchmark's tables as ``{"header": [...], "rows": [[cell, ...]]}`` from ``results.json`` (classify,
    segment or video), cells as plain text: the template escapes them, so a results folder from someone else
    cannot put markup or script into the report."""
    if "models" in results:
        from hyperkvasir.classify.results import PAPER_TABLE3, TABLE3_COLUMNS as _COLUMNS

        header = ["Method", "Protocol", "Macro P", "Macro R", "Macro F1", "Micro P", "Micro R", "Micro F1", "MCC"]
        rows = [
            [name, "this tree", *(_number(r["mean"].get(k)) for k in _COLUMNS)] for name, r in results["models"].items()
        ]
        if results.get("majority_class"):
            rows.append(["Majority class", "this tree", *(_number(results["majority_class"].get(k)) for k in _COLUMNS)])
        rows += [[name, "paper Table 3", *map(_number, values)] for name, values in PAPER_TABLE3.items()]
        tables = [{"header": header, "rows": rows}]
        per_class = {name: r["per_class_f1"] for name, r in results["models"].items() if r.get("per_class_f1")}
        if per_class:
            classes = sorted({c for table in per_class.values() for c in table})
            tables.append(
                {
                    "header": ["class", *per_class],
                    "rows": [
                        [c, *(_number(t[c]["f1"]) if c in t else "–" for t in per_class.values())] for c in classes
                    ],
                }
            )
        return tables
    if "metrics" in results:  # segment
        return [
            {
                "header": ["metric", "value"],
                "rows": [[k, _number(v)] for k, v in results["metrics"].items() if isinstance(v, (int, float))],
            }
        ]
    if "test" in results:  # video
        return [
            {
                "header": ["aggregation", "accuracy", "macro F1", "MCC"],
                "rows": [
                    [key, *(_number(m.get(k)) for k in ("accuracy", "macro_f1", "mcc"))]
                    for key, m in results["test"].items()
                    if isinstance(m, dict)
                ],
            }
        ]
    return []


def results_section(results_dir: Path, sink: fig.FigureSink, root: Path, scopeguide_files: list[str]) -> dict:
    from hyperkvasir.metrics.classification import plot_confusion_matrix

    results = json.loads((results_dir / "results.json").read_text())
    tables = results_tables(results)
    shown = []
    for name, result in results.get("models", {}).items():
        if result.get("per_class_f1"):
            per_class = result["per_class_f1"]
            shown.append(
                (
                    f"Per-class F1 averaged over folds: {name}",
                    sink.figure(
                        f"f1-{name}-mean",
                        fig.bars(
                            list(per_class), [v["f1"] for v in per_class.values()], "F1 per class (fold mean)", "F1"
                        ),
                    ),
                )
            )
        for run in sorted((results_dir / name).glob("test-fold-*/metrics-test.json")):
            metrics = json.loads(run.read_text())
            png = sink.folder / f"confusion-{name}-{run.parent.name}.png"
            plot_confusion_matrix(metrics, png, f"{name}, {run.parent.name}")
            shown.append((f"Confusion matrix: {name}, {run.parent.name}", sink.png(png.stem, png.read_bytes())))
            per_class = metrics["per_class"]
            shown.append(
                (
                    f"Per-class F1: {name}, {run.parent.name}",
                    sink.figure(
                        f"f1-{name}-{run.parent.name}",
                        fig.bars(list(per_class), [v["f1"] for v in per_class.values()], "F1 per class", "F1"),
                    ),
                )
            )
    from hyperkvasir.report.errors import error_analysis

    analysis = error_analysis(results_dir, root, sink)
    corner = _corner_gradcam(results_dir, root, scopeguide_files, sink)
    if corner:
        shown.insert(0, corner)
    leak = results.get("leakage", {}).get("fold2")
    return {
        "tables": tables,
        "figures": shown,
        "analysis": analysis,
        "shortcuts": results.get("shortcuts", {}).get("summary"),
        "leakage": (
            f"Leakage beside the results: {leak['groups']} duplicate groups ({leak['images']} images) span "
            f"both folds of the 2-fold split."
        )
        if leak
        else None,
    }
