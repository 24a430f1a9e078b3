"""``benchmark --task segment``: train → predict → evaluate on the segmentation split, beside published
Kvasir-SEG figures, each labelled with its protocol so nobody compares across protocols by mistake."""

from __future__ import annotations

import json
from pathlib import Path

from hyperkvasir.metrics.segmentation import METRIC_KEYS
from hyperkvasir.outputs import atomic_write
from hyperkvasir.segment.config import SegmentConfig, check_segment_config
from hyperkvasir.segment.train import train_segment

# (method, mDice, metric key it corresponds to, protocol)
PUBLISHED = (
    (
        "PraNet (Fan et al., MICCAI 2020)",
        0.898,
        "mdice_256",
        "Kvasir-SEG, PraNet split (900 train / 100 test), mean Dice over 256 thresholds",
    ),
    ("Polyp-PVT (Dong et al., 2021)", 0.917, "mdice_256", "Kvasir-SEG, PraNet split, mean Dice over 256 thresholds"),
    ("HSNet (Zhang et al., 2022)", 0.926, "mdice_256", "Kvasir-SEG, PraNet split, mean Dice over 256 thresholds"),
    ("TransNetR (Jha et al., 2023)", 0.8706, "dice", "Kvasir-SEG official 880 / 120 split, per-image Dice at 0.5"),
)


_PROTOCOL = {
    "segmentation": "seeded duplicate-aware 80/10/10 split",
    "kvasir-seg-official": "Kvasir-SEG's official 880/120 split (validation carved from the 880)",
}


def run_segmentation_benchmark(config: SegmentConfig, out: str | Path) -> dict:
    """Train, test and tabulate; a finished benchmark is read back, an unfinished run continues."""
    out = Path(out)
    if (out / "results.json").is_file():
        return json.loads((out / "results.json").read_text())
    check_segment_config(config)
    metrics = train_segment(config, resume=(Path(config.out) / "last.ckpt").is_file())
    if not metrics:  # another process of a distributed run
        return {}
    results = {
        "config": config.__dict__,
        "metrics": metrics,
        "published": [{"method": m, "mdice": v, "comparable_key": k, "protocol": p} for m, v, k, p in PUBLISHED],
    }
    with atomic_write(out / "results.json", "w") as handle:
        json.dump(results, handle, indent=2)
    lines = [
        "# Polyp segmentation benchmark",
        "",
        f"This tree, {_PROTOCOL[config.scheme]}, test part: {metrics['n']} images, encoder {config.model}, "
        f"{config.size} px, {config.epochs} epochs, checkpoint chosen on the validation part by per-image "
        f"Dice at probability > 0.5 computed at {config.size} px (the `dice` below is the same definition at "
        f"each mask's own size). Intervals: 95 % bootstrap over test images (docs/intervals.md).",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [
        f"| {key} | {metrics[key]:.4f}"
        + (f" [{metrics[key + '_ci'][0]:.4f}, {metrics[key + '_ci'][1]:.4f}]" if f"{key}_ci" in metrics else "")
        + " |"
        for key in METRIC_KEYS
    ]
    if "boxes" in metrics:
        lines += [
            f"| box mAP@0.5 | {metrics['boxes']['map_50']:.4f} |",
            f"| box mAP@0.5:0.95 | {metrics['boxes']['map_50_95']:.4f} |",
        ]
    lines += [
        "",
        "Published Kvasir-SEG figures (not comparable with a synthetic or HyperKvasir-split tree; compare a "
        "row only with the metric key it names):",
        "",
        "| method | mDice | our key | protocol |",
        "|---|---|---|---|",
    ]
    lines += [f"| {m} | {v:.4f} | {k} | {p} |" for m, v, k, p in PUBLISHED]
    with atomic_write(out / "results.md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return results
