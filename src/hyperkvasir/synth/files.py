"""What a file of the twin is: a name drawn like the release's (a UUID, from the twin's seeded generator), JPEG
bytes at the twin's quality, and the record of one labeled image (class, name, size, corner mark, polyps)."""

from __future__ import annotations

import io
import random
import uuid
from dataclasses import dataclass

from PIL import Image

from hyperkvasir.data.taxonomy import ClassInfo

JPEG_QUALITY = 92


@dataclass(frozen=True)
class LabeledImage:
    cls: ClassInfo
    stem: str
    size: tuple[int, int]
    corner: str  # none | scopeguide | black-box (synth.render.CORNERS)
    polyps: tuple[tuple[tuple[float, float], ...], ...] = ()

    @property
    def relpath(self) -> str:
        return f"labeled-images/{self.cls.path}/{self.stem}.jpg"


def seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def jpeg_bytes(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
