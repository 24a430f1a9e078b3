"""The one image path of the toolkit: header sizes, DCT-scaled JPEG decoding, mask binarisation, atomic writes.

Everything that reads pixels goes through here so that there is a single decoder with a single behaviour
(colour mode, draft scaling, truncation handling) across indexing, validation, training and reports.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageFile

# Released masks are JPEG: white (>= 128 after greyscale) is polyp, black background (dataset.md §1.4, §6.7).
MASK_THRESHOLD = 128
# Mask components smaller than this many pixels are JPEG or thresholding specks, not polyps.
MIN_POLYP_COMPONENT = 25
_JPEG_MAGIC = b"\xff\xd8\xff"


class ImageDecodeError(ValueError):
    """A file that is not a decodable image (truncated, not a JPEG, unreadable)."""


def header_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header alone; no pixel is decoded."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"{path}: cannot read image header ({error})") from error


def is_jpeg_bytes(head: bytes) -> bool:
    """Whether the first bytes are a JPEG start-of-image marker (a `.jpg` name proves nothing)."""
    return head.startswith(_JPEG_MAGIC)


def _read(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ImageDecodeError(f"{path}: cannot read ({error.strerror or error})") from error


def decode_rgb(path: str | Path, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an image to an RGB uint8 array of shape (H, W, 3).

    JPEGs go through libjpeg-turbo (simplejpeg) with DCT scaling: with ``min_size=(w, h)`` the image is
    decoded at the smallest power-of-two reduction that still covers ``min_size``, so a 1280×1024 frame
    feeding a 224 input is never decoded at full size. Decoding is strict: a truncated JPEG raises
    :class:`ImageDecodeError` instead of returning grey rows. Other formats fall back to Pillow.
    """
    data = _read(path)
    if is_jpeg_bytes(data):
        width, height = min_size or (0, 0)
        try:
            return simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=width, min_height=height)
        except ValueError as error:
            raise ImageDecodeError(f"{path}: cannot decode JPEG ({error})") from error
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"{path}: cannot decode image ({error})") from error


def decode_gray(path: str | Path) -> np.ndarray:
    """Decode an image to a greyscale uint8 array (H, W); masks are stored as 3-channel JPEGs."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"))
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"{path}: cannot decode image ({error})") from error


def binarise_mask(gray: np.ndarray, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    """JPEG mask (grey edges) → bool array; ``>= threshold`` is polyp."""
    return gray >= threshold


def mask_problem(gray: np.ndarray, max_grey_share: float = 0.05) -> str | None:
    """Why a greyscale image is not a polyp mask, or None. A JPEG mask has mid-grey only along its edges and is
    never white all over."""
    grey_share = float(((gray > 30) & (gray < 225)).mean())
    if grey_share > max_grey_share:
        return f"{grey_share:.0%} of pixels are mid-grey"
    if binarise_mask(gray).all():
        return "all white"
    return None


def verify_decodes(path: str | Path) -> str | None:
    """None when the image decodes completely, else the reason (catches truncated JPEGs)."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as image:
            image.load()
        return None
    except (OSError, SyntaxError, ValueError) as error:
        return str(error) or type(error).__name__
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Write to a temp file beside ``path`` and rename it into place, so a reader never sees half a file. The
    file gets the permissions any tool would give it under the umask (temp files start private)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError) and not error.filename:  # a failed write names no file: name the target
            error.filename = str(target)
        raise


# The lower-left region (x0, y0, x1, y1 as fractions of the frame) where the ScopeGuide box and Kvasir-SEG's black
# box sit on real frames (docs/calibration.md); ``mask_corners`` blanks it in every image, at decode time.
CORNER_MASK = (0.0, 0.6, 0.38, 1.0)


def corner_region(height: int, width: int) -> tuple[slice, slice]:
    """(rows, columns) of :data:`CORNER_MASK` in a ``height`` × ``width`` image."""
    x0, y0, x1, y1 = CORNER_MASK
    return (slice(int(height * y0), int(np.ceil(height * y1))), slice(int(width * x0), int(np.ceil(width * x1))))


def blank_corner(rgb: np.ndarray) -> np.ndarray:
    """The frame with :data:`CORNER_MASK` set to black (a copy)."""
    out = rgb.copy()
    out[corner_region(*rgb.shape[:2])] = 0
    return out


def load_square(path: str | Path, size: int, *, mask_corners: bool = False) -> np.ndarray:
    """The paper's framing at ``size``: the centre square of the frame, scaled to ``size`` × ``size``
    (area interpolation).

    ``Resize(256) → CenterCrop(256) → Resize(224)`` of the paper's PyTorch scripts frames exactly this square;
    here it is cut first and resized once. The JPEG is decoded DCT-scaled to just above ``size``, so a
    1280×1024 frame is never decoded in full for a 224 input. The pre-resized cache and direct loading both
    call this, so they give the same pixels.
    """
    rgb = decode_rgb(path, min_size=(size, size))
    return centre_square(blank_corner(rgb) if mask_corners else rgb, size)


def centre_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """The centre square of a frame scaled to ``size`` × ``size`` (area interpolation): the paper's framing."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    left, top = (w - side) // 2, (h - side) // 2
    return cv2.resize(rgb[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
