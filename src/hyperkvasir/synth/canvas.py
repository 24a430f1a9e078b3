"""The drawing surface of a synthetic frame: a float RGB canvas at quarter resolution with the primitives that
the scene and the class cues draw with (smooth noise, paint, shade, PIL layers, irregular blobs). It lies below
both :mod:`hyperkvasir.synth.render` and :mod:`hyperkvasir.synth.cues`, so the cues never import the renderer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Polygon = list[tuple[float, float]]


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
