"""Make docs/twin-vs-real.jpg: the twin beside real release frames of the same classes, three of each per row.

Real frames come from ``$HYPERKVASIR_SHARED/real-sample`` (HyperKvasir, CC BY 4.0, Borgli et al. 2020; Kvasir-SEG,
Jha et al. 2020); the sheet shows small thumbnails only. Rows pick frames with each corner mark (ScopeGuide box,
black box, none) where the class has them, so the marks can be compared by eye.

Usage: python docs/twin_vs_real.py TWIN_ROOT SHARED_DATA docs/twin-vs-real.jpg
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

from hyperkvasir.data.pixels import BLACK_BOX_MIN_HEIGHT, SCOPEGUIDE_MIN_SHARE, pixel_evidence

TILE = 180
ROWS = ("polyps", "ulcerative-colitis-grade-1", "ulcerative-colitis-grade-2", "ulcerative-colitis-grade-3", "ileum")


def _mark(path: Path) -> str:
    evidence = pixel_evidence(path.read_bytes())
    if evidence["scopeguide"] >= SCOPEGUIDE_MIN_SHARE:
        return "scopeguide"
    return "black-box" if evidence["black_box"] >= BLACK_BOX_MIN_HEIGHT else "none"


def _pick(files: list[Path], count: int = 3) -> list[Path]:
    """One frame per corner mark first, then any, so each row shows the variety the class has."""
    by_mark: dict[str, list[Path]] = {}
    for path in files[:60]:
        by_mark.setdefault(_mark(path), []).append(path)
    chosen = [paths[0] for paths in by_mark.values()]
    chosen += [p for p in files if p not in chosen]
    return chosen[:count]


def sheet(twin: Path, shared: Path) -> Image.Image:
    real = shared / "real-sample" / "labeled-lower-gi"
    out = Image.new("RGB", (TILE * 6 + 8, len(ROWS) * (TILE + 16) + 16), "white")
    draw = ImageDraw.Draw(out)
    draw.text((4, 2), "twin", fill="black")
    draw.text((TILE * 3 + 12, 2), "real release", fill="black")
    for r, folder in enumerate(ROWS):
        y = 16 + r * (TILE + 16)
        draw.text((4, y), folder, fill="black")
        for c, path in enumerate(_pick(sorted(twin.glob(f"labeled-images/**/{folder}/*.jpg")))
                                 + _pick(sorted(real.glob(f"**/{folder}/*.jpg")))):
            tile = Image.open(path).convert("RGB").resize((TILE, TILE))
            out.paste(tile, (c * TILE + (8 if c >= 3 else 0), y + 12))
    return out


if __name__ == "__main__":
    sheet(Path(sys.argv[1]), Path(sys.argv[2])).save(sys.argv[3], quality=80)
