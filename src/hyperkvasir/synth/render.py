"""Render endoscopy-like frames with a learnable, overlapping visual cue per HyperKvasir class.

A frame is drawn on a quarter-resolution canvas (mucosa colour by organ, dark lumen, light fall-off, folds,
vessels, specular highlights, the class cue of :mod:`hyperkvasir.synth.cues`), upscaled to the released
resolution and cut to the scope's rounded field of view; the processor's screen text and the lower-left corner
(ScopeGuide box, black box) are drawn here too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hyperkvasir.synth.canvas import Canvas, Polygon
from hyperkvasir.synth.cues import RECIPES, debris

# Released resolutions (W, H) and how often they are drawn: mostly 720×576, the cropped ~622×529 and ~626×547
# frames of the polyp images, and a few large ones (dataset.md §1.2; the real Kvasir-SEG sample).
RESOLUTIONS: tuple[tuple[tuple[int, int], float], ...] = (
    ((720, 576), 0.5),
    ((622, 529), 0.15),
    ((626, 547), 0.1),
    ((1280, 1024), 0.15),
    ((1920, 1072), 0.05),
    ((1348, 1070), 0.05),
)
_CANVAS_SCALE = 4
_TISSUE = {  # base RGB of the mucosa
    "colon": (200, 108, 88),
    "stomach": (212, 122, 112),
    "esophagus": (222, 176, 166),
}
# Share of images with the Olympus ScopeGuide box, per lower-GI class (a shortcut the audit must find); the
# polyp and colitis shares follow the real sample (docs/calibration.md), the others are guesses.
SCOPEGUIDE_SHARE = {
    "polyps": 0.05,
    "dyed-lifted-polyps": 0.5,
    "dyed-resection-margins": 0.5,
    "cecum": 0.6,
    "ileum": 0.5,
    "bbps-0-1": 0.3,
    "bbps-2-3": 0.35,
    "impacted-stool": 0.3,
    "retroflex-rectum": 0.1,
    "hemorrhoids": 0.1,
}


# Share of images whose lower-left corner is covered by a black box (Kvasir-SEG's anonymisation; about half of
# the real polyp images, none elsewhere).
BLACK_BOX_SHARE = {"polyps": 0.55}
CORNERS = ("none", "scopeguide", "black-box")


def scopeguide_share(folder: str) -> float:
    if folder.startswith("ulcerative-colitis"):
        return 0.35
    return SCOPEGUIDE_SHARE.get(folder, 0.0)


def pick_corner(folder: str, rng: np.random.Generator) -> str:
    """What covers the lower-left corner of one frame of class ``folder``."""
    draw = rng.random()
    if draw < scopeguide_share(folder):
        return "scopeguide"
    if draw < scopeguide_share(folder) + BLACK_BOX_SHARE.get(folder, 0.0):
        return "black-box"
    return "none"


# --------------------------------------------------------------------------------------------- scene parts
def _mucosa(c: Canvas, tissue: str, folds: float = 0.12) -> None:
    xs, ys = c.grid()
    base = np.asarray(_TISSUE[tissue], np.float32) + c.rng.normal(0, 8, 3).astype(np.float32)
    c.rgb[:] = base
    lx, ly = c.lumen
    d = np.hypot(xs - lx * c.w / c.h, ys - ly)
    angle = np.arctan2(ys - ly, xs - lx * c.w / c.h)
    phase = 2 * np.pi * c.smooth_noise(4)
    c.shade(1 + folds * np.sin(d * c.rng.uniform(14, 22) + phase + 0.5 * np.sin(3 * angle)))
    c.shade(0.85 + 0.3 * c.smooth_noise(6))  # uneven mucosa


def _lumen_and_light(c: Canvas, depth: float = 0.85) -> None:
    xs, ys = c.grid()
    lx, ly = c.lumen
    d = np.hypot(xs - lx * c.w / c.h, ys - ly)
    c.shade(1 - depth * np.exp(-((d / c.rng.uniform(0.14, 0.22)) ** 2)))
    cx, cy = 0.5 * c.w / c.h, 0.5
    c.shade(np.clip(1.15 - 0.55 * ((xs - cx) ** 2 + (ys - cy) ** 2), 0.3, 1.2))


def _vessels(c: Canvas, strength: float = 0.35, count: int = 7) -> None:
    def draw(d: ImageDraw.ImageDraw) -> None:
        for _ in range(count):
            x, y = c.rng.uniform(0, c.w), c.rng.uniform(0, c.h)
            heading = c.rng.uniform(0, 2 * np.pi)
            points = [(x, y)]
            for _ in range(12):
                heading += c.rng.normal(0, 0.5)
                x, y = x + 6 * np.cos(heading), y + 6 * np.sin(heading)
                points.append((x, y))
            d.line(points, fill=255, width=1)

    c.paint(strength * c.layer(draw, blur=0.6), (120, 30, 40))


def _highlights(c: Canvas, count: int) -> None:
    def draw(d: ImageDraw.ImageDraw) -> None:
        for _ in range(count):
            x, y = c.rng.uniform(0.1, 0.9) * c.w, c.rng.uniform(0.1, 0.9) * c.h
            rx, ry = c.rng.uniform(1, 4), c.rng.uniform(0.5, 2)
            d.ellipse((x - rx, y - ry, x + rx, y + ry), fill=255)

    c.paint(c.layer(draw, blur=0.8), (255, 255, 250))


@dataclass(frozen=True)
class Frame:
    """A rendered frame at full resolution with its polyp outlines (full-resolution pixels)."""

    image: Image.Image
    polyps: list[Polygon]


def _field_of_view(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """The scope's octagonal field of view: the frame with its four corners cut off (black outside)."""
    w, h = size
    cut = int(min(w, h) * rng.uniform(0.12, 0.2))
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).polygon(
        [(cut, 0), (w - cut, 0), (w, cut), (w, h - cut), (w - cut, h), (cut, h), (0, h - cut), (0, cut)], fill=255
    )
    return mask


def _font(height: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, height))


def _screen_text(image: Image.Image, rng: np.random.Generator) -> None:
    """The processor's white on-screen text in the upper left: date, time, ID fields, a comment line."""
    w, h = image.size
    size = max(8, int(h * 0.028))
    day, month, year = int(rng.integers(1, 29)), int(rng.integers(1, 13)), int(rng.integers(2008, 2017))
    lines = [
        f"{day:02d}/{month:02d}/{year}",
        f"{int(rng.integers(8, 17)):02d}:{int(rng.integers(0, 60)):02d}:{int(rng.integers(0, 60)):02d}",
        "CVP:1",
        "Fr:A1 Cm:1",
        "",
        "Comment:",
    ]
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text(
            (int(w * 0.01), int(h * 0.04) + number * int(size * 1.3)), line, fill=(235, 235, 235), font=_font(size)
        )


def _scopeguide(image: Image.Image, rng: np.random.Generator) -> None:
    """The Olympus ScopeGuide picture-in-picture as released: a teal box framed in black in the lower-left
    corner, with a dark curve (the scope's shape) and white text (dataset.md §6.5)."""
    w, h = image.size
    box_w, box_h = int(w * rng.uniform(0.26, 0.3)), int(h * rng.uniform(0.26, 0.3))
    x0, y0 = 0, h - box_h
    frame = max(2, box_w // 30)
    teal = tuple(int(v) for v in np.asarray((20, 160, 135)) + rng.integers(-6, 7, 3))
    draw = ImageDraw.Draw(image)
    draw.rectangle((x0, y0, x0 + box_w, h), fill=(0, 0, 0))
    draw.rectangle((x0 + frame, y0 + frame, x0 + box_w - frame, h - frame), fill=teal)
    draw.text((x0 + 3 * frame, y0 + 2 * frame), "Fr:A1 Cm:1", fill=(240, 240, 240), font=_font(box_h // 10))
    t = np.linspace(0, 1, 24)
    wiggle = rng.uniform(0.05, 0.15)
    path = [
        (x0 + box_w * (0.45 + 0.25 * np.sin(5 * u)), y0 + box_h * (0.9 - 0.6 * u + wiggle * np.cos(7 * u))) for u in t
    ]
    draw.line(path, fill=(25, 35, 40), width=max(2, box_w // 40))


def _black_box(image: Image.Image, rng: np.random.Generator) -> None:
    """Kvasir-SEG's solid black box over the lower-left corner."""
    w, h = image.size
    ImageDraw.Draw(image).rectangle(
        (0, h - int(h * rng.uniform(0.25, 0.32)), int(w * rng.uniform(0.25, 0.32)), h), fill=(0, 0, 0)
    )


def render_frame(folder: str, rng: np.random.Generator, size: tuple[int, int], *, overscan: float = 1.0) -> Frame:
    """One frame of class ``folder`` (released folder name) at ``size`` = (W, H)."""
    recipe = RECIPES[folder]
    w, h = size
    cw, ch = int(w * overscan) // _CANVAS_SCALE, int(h * overscan) // _CANVAS_SCALE
    canvas = Canvas(np.zeros((ch, cw, 3), np.float32), rng)
    canvas.lumen = (rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65))
    _mucosa(canvas, recipe.tissue)
    _vessels(canvas, recipe.vessels)
    debris(canvas, rng.uniform(*recipe.debris))
    recipe.cue(canvas)
    _lumen_and_light(canvas, recipe.lumen_depth)
    _highlights(canvas, int(rng.integers(3, 9)))
    pixels = np.clip(canvas.rgb, 0, 255).astype(np.uint8)
    full = (int(w * overscan), int(h * overscan))
    image = Image.fromarray(pixels).resize(full, Image.Resampling.BICUBIC)
    scale = full[0] / cw
    polyps = [[(x * scale, y * scale) for x, y in outline] for outline in canvas.polyps]
    return Frame(image, polyps)


def finish_frame(frame: Frame, rng: np.random.Generator, corner: str) -> Image.Image:
    """Cut to the field of view, write the on-screen text and cover the corner as ``corner`` says (done after
    any camera crop)."""
    image = frame.image.copy()
    black = Image.new("RGB", image.size, (0, 0, 0))
    image = Image.composite(image, black, _field_of_view(image.size, rng))
    _screen_text(image, rng)
    if corner == "scopeguide":
        _scopeguide(image, rng)
    elif corner == "black-box":
        _black_box(image, rng)
    return image


def pick_resolution(rng: np.random.Generator) -> tuple[int, int]:
    sizes, weights = zip(*RESOLUTIONS)
    return sizes[int(rng.choice(len(sizes), p=np.asarray(weights) / sum(weights)))]


def polygon_mask(polyps: list[Polygon], size: tuple[int, int]) -> Image.Image:
    """Binary mask image ('L', 0/255) of the polyp outlines at ``size``."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for outline in polyps:
        draw.polygon(outline, fill=255)
    return mask
