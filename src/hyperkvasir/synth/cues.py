"""The class cues of the twin: what each HyperKvasir class draws on the shared scene, and the recipe per
released folder (tissue, cue, debris, vessels, lumen depth) that :func:`hyperkvasir.synth.render.render_frame`
follows.

Cues follow the clinical descriptions in the paper (Borgli et al. 2020): polyps are raised blobs (and their
polygons are the masks), dye is blue, colitis grades grow in redness, granularity and ulcers, BBPS is the amount
of brown debris, the z-line is a pale/red boundary, and so on. Parameter ranges of neighbouring classes overlap
on purpose, as the real ones do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from hyperkvasir.synth.canvas import Canvas, Polygon

_UC_SEVERITY = {
    "ulcerative-colitis-grade-0-1": 0.15,
    "ulcerative-colitis-grade-1": 0.3,
    "ulcerative-colitis-grade-1-2": 0.45,
    "ulcerative-colitis-grade-2": 0.6,
    "ulcerative-colitis-grade-2-3": 0.75,
    "ulcerative-colitis-grade-3": 0.9,
}


def _filled(outline: Polygon) -> Callable[[ImageDraw.ImageDraw], None]:
    """What :meth:`Canvas.layer` draws for a filled outline (bound now, so a loop can pass each of its own)."""
    return lambda d: d.polygon(outline, fill=255)


def debris(c: Canvas, coverage: float, color: tuple[int, int, int] = (112, 66, 28)) -> None:
    """Brown debris over ``coverage`` of the frame: every frame's bowel preparation, the BBPS and stool cues."""
    if coverage <= 0:
        return
    field_ = c.smooth_noise(8) * 0.7 + c.smooth_noise(20) * 0.3
    threshold = np.quantile(field_, 1 - coverage)
    alpha = np.clip((field_ - threshold) * 25, 0, 0.95)
    c.paint(alpha, tuple(np.asarray(color) + c.rng.integers(-15, 15, 3)))
    c.shade(1 - 0.25 * alpha * c.smooth_noise(24))


def _polyp(c: Canvas, cx: float, cy: float, radius: float, color: tuple[int, int, int]) -> Polygon:
    outline = c.blob(cx, cy, radius)
    inside = c.layer(_filled(outline))
    xs, ys = c.grid()
    dome = np.clip(1 - np.hypot(xs - cx, ys - cy) / (radius * 1.3), 0, 1)
    c.paint(inside * 0.85, color)
    c.shade(1 + inside * (0.35 * dome - 0.1))
    # a rim shadow makes it look raised
    rim = np.clip(c.layer(lambda d: d.polygon(outline, outline=255, width=2), blur=1.2) - inside * 0.6, 0, 1)
    c.shade(1 - 0.35 * rim)
    return outline


def _place_polyps(c: Canvas, count: int, color: tuple[int, int, int], radius: tuple[float, float]) -> None:
    aspect = c.w / c.h
    centres: list[tuple[float, float, float]] = []
    for _ in range(count):
        for _try in range(30):
            r = c.rng.uniform(*radius)
            x, y = c.rng.uniform(0.3, aspect - 0.25), c.rng.uniform(0.28, 0.72)
            if all(np.hypot(x - a, y - b) > (r + rb) * 1.45 for a, b, rb in centres):
                centres.append((x, y, r))
                break
    for x, y, r in centres:
        c.polyps.append(_polyp(c, x, y, r, color))


def _dye(c: Canvas, coverage: float) -> np.ndarray:
    field_ = c.smooth_noise(5)
    alpha = np.clip((field_ - np.quantile(field_, 1 - coverage)) * 8, 0, 0.75)
    c.paint(alpha, (55, 85, 170))
    return alpha


def _scope_tube(c: Canvas) -> None:
    """The endoscope seen in retroflexion: a black tube with a grey sheen entering from an edge."""
    side = c.rng.choice(["bottom", "right", "top"])
    r = c.rng.uniform(0.1, 0.24) * c.h
    along = c.rng.uniform(0.25, 0.75)  # where along that edge it enters: real frames vary, so must the twin's
    x, y = {"bottom": (c.w * along, c.h * 1.0), "right": (c.w * 1.0, c.h * along), "top": (c.w * along, 0.0)}[side]
    dx, dy = {"bottom": (0, -1), "right": (-1, 0), "top": (0, 1)}[side]
    length = c.rng.uniform(0.35, 0.55) * c.h

    def tube(d: ImageDraw.ImageDraw) -> None:
        d.line([(x, y), (x + dx * length, y + dy * length)], fill=255, width=int(2 * r))
        d.ellipse((x + dx * length - r, y + dy * length - r, x + dx * length + r, y + dy * length + r), fill=255)

    alpha = c.layer(tube, blur=1.0)
    c.paint(alpha, (18, 18, 22))
    sheen = c.layer(
        lambda d: d.line(
            [
                (x - dy * r * 0.4, y - dx * r * 0.4),
                (x + dx * length * 0.9 - dy * r * 0.4, y + dy * length * 0.9 - dx * r * 0.4),
            ],
            fill=255,
            width=max(1, int(r * 0.15)),
        ),
        blur=1.5,
    )
    c.paint(0.6 * sheen * alpha, (150, 150, 160))


def _zline(c: Canvas, reach: float, tongue_count: int, tongue_len: float) -> np.ndarray:
    """Pale oesophagus outside, red gastric mucosa inside a jagged ring around the lumen; returns the ring."""
    xs, ys = c.grid()
    lx, ly = c.lumen[0] * c.w / c.h, c.lumen[1]
    d = np.hypot(xs - lx, ys - ly)
    angle = np.arctan2(ys - ly, xs - lx)
    edge = reach * (1 + 0.15 * np.sin(5 * angle + c.rng.uniform(0, 6)) + 0.1 * np.sin(11 * angle))
    for _ in range(tongue_count):  # salmon-coloured tongues: Barrett's
        centre = c.rng.uniform(-np.pi, np.pi)
        width = c.rng.uniform(0.2, 0.45)
        edge = edge + tongue_len * np.exp(-((np.angle(np.exp(1j * (angle - centre))) / width) ** 2))
    red = np.clip((edge - d) * 40, 0, 1)
    c.paint(0.9 * red, (205, 85, 70))
    return np.clip(1 - np.abs(edge - d) * 30, 0, 1)


def _erosions(c: Canvas, ring: np.ndarray, count: int, size: float, fibrin: bool) -> None:
    xs, ys = c.grid()
    lx, ly = c.lumen[0] * c.w / c.h, c.lumen[1]
    angle = np.arctan2(ys - ly, xs - lx)
    d = np.hypot(xs - lx, ys - ly)
    streaks = np.zeros_like(d)
    for _ in range(count):
        centre = c.rng.uniform(-np.pi, np.pi)
        spread = np.exp(-((np.angle(np.exp(1j * (angle - centre))) / (0.08 + size * 0.15)) ** 2))
        streaks = np.maximum(streaks, spread * np.clip(1 - (d - 0.25) / (0.12 + size), 0, 1))
    streaks *= np.clip(ring * 2 + (d > 0.2), 0, 1)
    c.paint(0.85 * streaks, (175, 25, 30))
    if fibrin:
        c.paint(0.6 * (streaks > 0.7) * c.smooth_noise(20), (235, 230, 200))


# --------------------------------------------------------------------------------------------- class cues
def _cue_polyps(c: Canvas) -> None:
    count = int(c.rng.choice([1, 1, 1, 1, 1, 1, 2, 2, 3]))
    _place_polyps(c, count, (236, 150, 120), (0.1, 0.2))


def _cue_dyed_lifted(c: Canvas) -> None:
    _dye(c, c.rng.uniform(0.35, 0.6))
    _place_polyps(c, 1, (120, 140, 200), (0.14, 0.24))


def _cue_dyed_margins(c: Canvas) -> None:
    _dye(c, c.rng.uniform(0.4, 0.7))
    x, y, r = c.rng.uniform(0.4, c.w / c.h - 0.4), c.rng.uniform(0.35, 0.65), c.rng.uniform(0.12, 0.22)
    outline = c.blob(x, y, r, roughness=0.3)
    crater = c.layer(_filled(outline), blur=1.5)
    c.paint(0.8 * crater, (235, 205, 190))
    c.paint(0.5 * crater * c.smooth_noise(16), (170, 40, 45))


def _cue_uc(severity: float) -> Callable[[Canvas], None]:
    def cue(c: Canvas) -> None:
        s = float(np.clip(severity + c.rng.normal(0, 0.06), 0, 1))
        c.paint(np.full((c.h, c.w), 0.55 * s), (195, 45, 45))
        grain = c.rng.random((c.h, c.w)).astype(np.float32)
        c.shade(1 + 0.45 * s * (grain - 0.5))
        ulcers = int(round(14 * s**2 + c.rng.normal(0, 1)))

        def draw(d: ImageDraw.ImageDraw) -> None:
            for _ in range(max(0, ulcers)):
                x, y, r = c.rng.uniform(0, c.w), c.rng.uniform(0, c.h), c.rng.uniform(1.5, 2 + 5 * s)
                d.ellipse((x - r, y - r * 0.7, x + r, y + r * 0.7), fill=255)

        c.paint(0.9 * c.layer(draw, blur=0.7), (238, 232, 200))
        if s > 0.6:
            c.paint(0.7 * (c.smooth_noise(18) > 1.05 - 0.3 * s), (130, 10, 15))

    return cue


def _cue_cecum(c: Canvas) -> None:
    cx, cy = c.lumen[0] * c.w, c.lumen[1] * c.h
    start = c.rng.uniform(0, 2 * np.pi / 3)

    def draw(d: ImageDraw.ImageDraw) -> None:
        for k in range(3):  # tri-radiate fold
            a = start + k * 2 * np.pi / 3
            d.line([(cx, cy), (cx + np.cos(a) * c.h * 0.45, cy + np.sin(a) * c.h * 0.45)], fill=255, width=3)
        d.arc((cx - 8, cy - 5, cx + 8, cy + 5), 20, 200, fill=255, width=2)  # appendiceal orifice

    c.shade(1 - 0.45 * c.layer(draw, blur=1.5))


def _cue_ileum(c: Canvas) -> None:
    villi = c.rng.random((c.h, c.w)).astype(np.float32)
    villi = np.asarray(Image.fromarray((villi * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.7)))
    c.paint(np.full((c.h, c.w), 0.35), (230, 170, 130))
    c.shade(0.75 + 0.5 * villi / 255.0)


def _cue_retroflex_rectum(c: Canvas) -> None:
    _scope_tube(c)


def _cue_hemorrhoids(c: Canvas) -> None:
    _scope_tube(c)
    for _ in range(int(c.rng.integers(1, 4))):
        x, y, r = c.rng.uniform(0.2, c.w / c.h - 0.2), c.rng.uniform(0.2, 0.8), c.rng.uniform(0.07, 0.13)
        outline = c.blob(x, y, r)
        c.paint(0.75 * c.layer(_filled(outline), blur=1.5), (120, 60, 120))


def _cue_retroflex_stomach(c: Canvas) -> None:
    def rugae(d: ImageDraw.ImageDraw) -> None:
        for _ in range(6):
            y = c.rng.uniform(0, c.h)
            points = [(x, y + 4 * np.sin(x / 7 + c.rng.uniform(0, 6))) for x in np.linspace(0, c.w, 24)]
            d.line(points, fill=255, width=2)

    c.shade(1 - 0.25 * c.layer(rugae, blur=1.2))
    _scope_tube(c)


def _cue_pylorus(c: Canvas) -> None:
    cx, cy, r = c.lumen[0] * c.w, c.lumen[1] * c.h, c.rng.uniform(0.05, 0.09) * c.h

    def draw(d: ImageDraw.ImageDraw) -> None:
        for k in range(8):
            a = k * np.pi / 4 + c.rng.normal(0, 0.1)
            d.line(
                [(cx + np.cos(a) * r, cy + np.sin(a) * r), (cx + np.cos(a) * r * 3, cy + np.sin(a) * r * 3)],
                fill=255,
                width=2,
            )

    c.shade(1 - 0.3 * c.layer(draw, blur=1.2))
    c.paint(c.layer(lambda d: d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255), blur=1.5), (25, 10, 10))


def _cue_zline(c: Canvas) -> None:
    _zline(c, c.rng.uniform(0.22, 0.3), 0, 0.0)


def _cue_esophagitis(count: tuple[int, int], size: float, fibrin: bool) -> Callable[[Canvas], None]:
    def cue(c: Canvas) -> None:
        ring = _zline(c, c.rng.uniform(0.22, 0.3), 0, 0.0)
        _erosions(c, ring, int(c.rng.integers(*count)), size, fibrin)

    return cue


def _cue_barretts(tongues: tuple[int, int], length: tuple[float, float]) -> Callable[[Canvas], None]:
    def cue(c: Canvas) -> None:
        _zline(c, c.rng.uniform(0.2, 0.27), int(c.rng.integers(*tongues)), c.rng.uniform(*length))

    return cue


@dataclass(frozen=True)
class Recipe:
    tissue: str
    cue: Callable[[Canvas], None]
    debris: tuple[float, float] = (0.0, 0.03)
    vessels: float = 0.35
    lumen_depth: float = 0.85


RECIPES: dict[str, Recipe] = {
    "polyps": Recipe("colon", _cue_polyps),
    "dyed-lifted-polyps": Recipe("colon", _cue_dyed_lifted),
    "dyed-resection-margins": Recipe("colon", _cue_dyed_margins),
    "bbps-0-1": Recipe("colon", lambda c: None, debris=(0.3, 0.6)),
    "bbps-2-3": Recipe("colon", lambda c: None, debris=(0.0, 0.12), vessels=0.5),
    "impacted-stool": Recipe("colon", lambda c: debris(c, c.rng.uniform(0.65, 0.9), (150, 110, 40)), vessels=0.1),
    "cecum": Recipe("colon", _cue_cecum, lumen_depth=0.5),
    "ileum": Recipe("colon", _cue_ileum, vessels=0.1),
    "retroflex-rectum": Recipe("colon", _cue_retroflex_rectum, lumen_depth=0.3),
    "hemorrhoids": Recipe("colon", _cue_hemorrhoids, lumen_depth=0.3),
    "retroflex-stomach": Recipe("stomach", _cue_retroflex_stomach, vessels=0.1, lumen_depth=0.4),
    "pylorus": Recipe("stomach", _cue_pylorus, vessels=0.1, lumen_depth=0.2),
    "z-line": Recipe("esophagus", _cue_zline, vessels=0.25),
    "esophagitis-a": Recipe("esophagus", _cue_esophagitis((1, 3), 0.05, False), vessels=0.25),
    "esophagitis-b-d": Recipe("esophagus", _cue_esophagitis((3, 7), 0.15, True), vessels=0.25),
    "barretts": Recipe("esophagus", _cue_barretts((2, 5), (0.14, 0.3)), vessels=0.2),
    "barretts-short-segment": Recipe("esophagus", _cue_barretts((1, 4), (0.06, 0.16)), vessels=0.2),
    **{
        folder: Recipe("colon", _cue_uc(severity), vessels=0.35 * (1 - severity))
        for folder, severity in _UC_SEVERITY.items()
    },
}
