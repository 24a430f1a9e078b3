"""Render endoscopy-like frames with a learnable, overlapping visual cue per HyperKvasir class.

A frame is drawn on a quarter-resolution canvas (mucosa colour by organ, dark lumen, light fall-off, folds,
vessels, specular highlights, the class cue), upscaled to the released resolution and cut to the scope's
rounded field of view. Cues follow the clinical descriptions in the paper (Borgli et al. 2020): polyps are
raised blobs (and their polygons are the masks), dye is blue, colitis grades grow in redness, granularity and
ulcers, BBPS is the amount of brown debris, the z-line is a pale/red boundary, and so on. Parameter ranges
of neighbouring classes overlap on purpose, as the real ones do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Polygon = list[tuple[float, float]]

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
_UC_SEVERITY = {
    "ulcerative-colitis-grade-0-1": 0.15,
    "ulcerative-colitis-grade-1": 0.3,
    "ulcerative-colitis-grade-1-2": 0.45,
    "ulcerative-colitis-grade-2": 0.6,
    "ulcerative-colitis-grade-2-3": 0.75,
    "ulcerative-colitis-grade-3": 0.9,
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


@dataclass
class Canvas:
    """A float RGB canvas in [0, 255] at quarter resolution with normalised coordinates."""

    rgb: np.ndarray
    rng: np.random.Generator
    lumen: tuple[float, float] = (0.5, 0.5)
    polyps: list[Polygon] = field(default_factory=list)  # in canvas pixels

    @property
    def h(self) -> int:
        return self.rgb.shape[0]

    @property
    def w(self) -> int:
        return self.rgb.shape[1]

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) in units of the canvas height, so circles stay round on any aspect ratio."""
        ys, xs = np.mgrid[0 : self.h, 0 : self.w].astype(np.float32)
        return xs / self.h, ys / self.h

    def smooth_noise(self, cells: int) -> np.ndarray:
        """Smooth noise in [0, 1] from a coarse random grid upsampled bicubically."""
        coarse = self.rng.random((cells, max(2, cells * self.w // self.h))).astype(np.float32)
        image = Image.fromarray((coarse * 255).astype(np.uint8)).resize((self.w, self.h), Image.Resampling.BICUBIC)
        return np.asarray(image, dtype=np.float32) / 255.0

    def paint(self, alpha: np.ndarray, color: tuple[float, float, float]) -> None:
        a = np.clip(alpha, 0, 1)[..., None]
        self.rgb = self.rgb * (1 - a) + np.asarray(color, np.float32) * a

    def shade(self, factor: np.ndarray) -> None:
        self.rgb = self.rgb * factor[..., None]

    def layer(self, draw: Callable[[ImageDraw.ImageDraw], None], blur: float = 0.0) -> np.ndarray:
        """Alpha in [0, 1] of shapes drawn with PIL (``fill=255``), optionally blurred."""
        image = Image.new("L", (self.w, self.h), 0)
        draw(ImageDraw.Draw(image))
        if blur:
            image = image.filter(ImageFilter.GaussianBlur(blur))
        return np.asarray(image, dtype=np.float32) / 255.0

    def blob(self, cx: float, cy: float, radius: float, roughness: float = 0.18, points: int = 24) -> Polygon:
        """An irregular closed outline around (cx, cy), in canvas pixels (inputs in units of the height)."""
        angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
        wobble = 1 + roughness * np.convolve(self.rng.normal(size=points + 4), np.ones(5) / 5, "valid")
        rx = radius * self.h * wobble * self.rng.uniform(0.8, 1.2)
        ry = radius * self.h * wobble
        return [(cx * self.h + x, cy * self.h + y) for x, y in zip(rx * np.cos(angles), ry * np.sin(angles))]


# --------------------------------------------------------------------------------------------- scene parts
def _filled(outline: Polygon) -> Callable[[ImageDraw.ImageDraw], None]:
    """What :meth:`Canvas.layer` draws for a filled outline (bound now, so a loop can pass each of its own)."""
    return lambda d: d.polygon(outline, fill=255)


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


def _debris(c: Canvas, coverage: float, color: tuple[int, int, int] = (112, 66, 28)) -> None:
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
class _Recipe:
    tissue: str
    cue: Callable[[Canvas], None]
    debris: tuple[float, float] = (0.0, 0.03)
    vessels: float = 0.35
    lumen_depth: float = 0.85


_RECIPES: dict[str, _Recipe] = {
    "polyps": _Recipe("colon", _cue_polyps),
    "dyed-lifted-polyps": _Recipe("colon", _cue_dyed_lifted),
    "dyed-resection-margins": _Recipe("colon", _cue_dyed_margins),
    "bbps-0-1": _Recipe("colon", lambda c: None, debris=(0.3, 0.6)),
    "bbps-2-3": _Recipe("colon", lambda c: None, debris=(0.0, 0.12), vessels=0.5),
    "impacted-stool": _Recipe("colon", lambda c: _debris(c, c.rng.uniform(0.65, 0.9), (150, 110, 40)), vessels=0.1),
    "cecum": _Recipe("colon", _cue_cecum, lumen_depth=0.5),
    "ileum": _Recipe("colon", _cue_ileum, vessels=0.1),
    "retroflex-rectum": _Recipe("colon", _cue_retroflex_rectum, lumen_depth=0.3),
    "hemorrhoids": _Recipe("colon", _cue_hemorrhoids, lumen_depth=0.3),
    "retroflex-stomach": _Recipe("stomach", _cue_retroflex_stomach, vessels=0.1, lumen_depth=0.4),
    "pylorus": _Recipe("stomach", _cue_pylorus, vessels=0.1, lumen_depth=0.2),
    "z-line": _Recipe("esophagus", _cue_zline, vessels=0.25),
    "esophagitis-a": _Recipe("esophagus", _cue_esophagitis((1, 3), 0.05, False), vessels=0.25),
    "esophagitis-b-d": _Recipe("esophagus", _cue_esophagitis((3, 7), 0.15, True), vessels=0.25),
    "barretts": _Recipe("esophagus", _cue_barretts((2, 5), (0.14, 0.3)), vessels=0.2),
    "barretts-short-segment": _Recipe("esophagus", _cue_barretts((1, 4), (0.06, 0.16)), vessels=0.2),
    **{
        folder: _Recipe("colon", _cue_uc(severity), vessels=0.35 * (1 - severity))
        for folder, severity in _UC_SEVERITY.items()
    },
}


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
    recipe = _RECIPES[folder]
    w, h = size
    cw, ch = int(w * overscan) // _CANVAS_SCALE, int(h * overscan) // _CANVAS_SCALE
    canvas = Canvas(np.zeros((ch, cw, 3), np.float32), rng)
    canvas.lumen = (rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65))
    _mucosa(canvas, recipe.tissue)
    _vessels(canvas, recipe.vessels)
    _debris(canvas, rng.uniform(*recipe.debris))
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
