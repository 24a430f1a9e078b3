"""The one image path of the toolkit: header sizes, DCT-scaled JPEG decoding, mask binarisation.

Everything that reads pixels goes through here so that there is a single decoder with a single behaviour
(colour mode, draft scaling, truncation handling) across indexing, validation, training and reports.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import cv2
import numpy as np
import simplejpeg
from PIL import ExifTags, Image, ImageFile

from hyperkvasir.errors import DataError

# Released masks are JPEG: white (>= 128 after greyscale) is polyp, black background (dataset.md §1.4, §6.7).
MASK_THRESHOLD = 128
# Mask components smaller than this many pixels are JPEG or thresholding specks, not polyps.
MIN_POLYP_COMPONENT = 25
_JPEG_MAGIC = b"\xff\xd8\xff"


class ImageDecodeError(ValueError):
    """A file that is not a decodable image (truncated, not a JPEG, unreadable, over Pillow's pixel limit)."""


class MaskError(ImageDecodeError, DataError):
    """A file that decodes but is no polyp mask (mid-grey, all white, inverted): training, scoring or exporting it
    would give a wrong result without any error, so it is a data error (exit 1) wherever it surfaces."""


# 1 → 255 for masks stored as class indices (0 background, 1 polyp); JPEG noise lifts the edges of such a mask to 2
_LABEL_MAP_MAX = 2
# Share of the frame's border pixels that are white above which a mask is inverted (a white background rings the
# frame): at most 0.33 on 425 real Kvasir-SEG masks, ~1 on an inverted one.
_INVERTED_BORDER_SHARE = 0.75


def _pixel_limit() -> int:
    """Pillow's decompression-bomb limit (twice MAX_IMAGE_PIXELS), applied to every decode path alike."""
    return 2 * (Image.MAX_IMAGE_PIXELS or 0)


@contextlib.contextmanager
def open_image(path: str | Path, source: str | Path | IO[bytes] | None = None) -> Iterator[Image.Image]:
    """Pillow's image of ``source`` (default ``path``), every failure (the decompression-bomb limit included) turned
    into one :class:`ImageDecodeError` naming ``path``: the only place the toolkit opens an image with Pillow."""
    try:
        with Image.open(path if source is None else source) as image:
            yield image
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(f"{path}: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, ImageDecodeError):
            raise
        raise ImageDecodeError(f"{path}: cannot decode image ({error})") from None


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright); viewers apply it, so the toolkit does too."""
    return int(image.getexif().get(ExifTags.Base.Orientation, 1) or 1)


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Decoded pixels turned as the EXIF ``orientation`` says (what ImageOps.exif_transpose does to an image)."""
    if orientation not in _TRANSPOSE:
        return pixels
    return np.asarray(Image.fromarray(pixels).transpose(_TRANSPOSE[orientation]))


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of an opened image as the decoder returns it: EXIF orientations 5–8 turn it a quarter."""
    return _turned(image.size, _orientation(image))


def _turned(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def jpeg_header_size(path: str | Path, data: bytes) -> tuple[int, int] | None:
    """(width, height) of JPEG bytes as :func:`decode_rgb` returns them (EXIF orientation applied), from the header
    alone (a few µs, no pixels), or None when libjpeg-turbo cannot read the header (Pillow then decides)."""
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        return _turned((width, height), _jpeg_orientation(path, data))
    except (ValueError, ImageDecodeError):  # an unusual but valid stream (e.g. odd subsampling) or a broken one
        return None


def header_size(path: str | Path) -> tuple[int, int]:
    """(width, height) as decoded (EXIF orientation applied) from the file header alone; no pixel is decoded."""
    try:
        with open_image(path) as image:
            return upright_size(image)
    except ImageDecodeError as error:
        raise ImageDecodeError(f"{path}: cannot read image header ({str(error).removeprefix(f'{path}: ')})") from None


def is_jpeg_bytes(head: bytes) -> bool:
    """Whether the first bytes are a JPEG start-of-image marker (a `.jpg` name proves nothing)."""
    return head.startswith(_JPEG_MAGIC)


def _read(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ImageDecodeError(f"{path}: cannot read ({error.strerror or error})") from error


def _scaled_to_8bit(path: str | Path, image: Image.Image) -> Image.Image:
    """The image with 8-bit channels, scaled by its bit depth (Pillow's own conversion clips 16-bit grey at 255,
    so a 16-bit PNG would turn white), alpha composited over black (the background of an endoscopy frame)."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        full_scale = _full_scale(path, image, values)
        return Image.fromarray(np.clip(np.rint(values * (255 / full_scale)), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
        return Image.fromarray((rgba[..., :3] * rgba[..., 3:] // 255).astype(np.uint8), "RGB")
    return image


def _full_scale(path: str | Path, image: Image.Image, values: np.ndarray) -> float:
    """The value that means white: 65535 for 16-bit pixels, 1.0 for float pixels in 0–1; any other depth is
    ambiguous (a 32-bit file may hold 8-bit values), so it is refused rather than guessed."""
    if not np.isfinite(values).all() or values.min() < 0:
        raise ImageDecodeError(f"{path}: pixels are negative or not finite; save the image as 8- or 16-bit")
    if image.mode.startswith("I;16") or (image.mode == "I" and image.format == "PNG"):  # older Pillow: 16-bit PNG is I
        return 65535.0
    if image.mode == "F" and values.max() <= 1.0:
        return 1.0
    kind = "float pixels beyond 0–1" if image.mode == "F" else "32-bit integer pixels"
    raise ImageDecodeError(f"{path}: {kind} have no known white level; save the image as 8- or 16-bit")


def _decode_pillow(path: str | Path, data: bytes, mode: str) -> np.ndarray:
    """Pillow's decode of ``data`` in ``mode`` (RGB or L): bit depth scaled, alpha over black, EXIF orientation
    applied."""
    with open_image(path, io.BytesIO(data)) as image:
        return _upright(np.asarray(_scaled_to_8bit(path, image).convert(mode)), _orientation(image))


def _jpeg_orientation(path: str | Path, data: bytes) -> int:
    """EXIF orientation of JPEG bytes; only files with an Exif segment are parsed (the release has none)."""
    if b"Exif\x00\x00" not in data[:65536]:
        return 1
    with open_image(path, io.BytesIO(data)) as image:
        return _orientation(image)


def _check_jpeg_size(path: str | Path, data: bytes) -> None:
    """Refuse a JPEG over Pillow's decompression-bomb limit before libjpeg-turbo allocates it."""
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as error:
        raise ImageDecodeError(f"{path}: cannot decode JPEG ({error})") from None
    if width * height > _pixel_limit():
        raise ImageDecodeError(
            f"{path}: {width}x{height} pixels exceed the decompression-bomb limit of "
            f"{_pixel_limit():,} pixels (PIL.Image.MAX_IMAGE_PIXELS × 2)"
        )


def decode_rgb(path: str | Path, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an image to an RGB uint8 array of shape (H, W, 3), upright as viewers show it.

    JPEGs go through libjpeg-turbo (simplejpeg) with DCT scaling: with ``min_size=(w, h)`` the image is
    decoded at the smallest power-of-two reduction that still covers ``min_size``, so a 1280×1024 frame
    feeding a 224 input is never decoded at full size. Decoding is strict: a truncated JPEG raises
    :class:`ImageDecodeError` instead of returning grey rows. Other formats fall back to Pillow, scaled by their bit
    depth (16-bit, float) and with transparency over black.
    """
    data = _read(path)
    if not is_jpeg_bytes(data):
        return _decode_pillow(path, data, "RGB")
    _check_jpeg_size(path, data)
    width, height = min_size or (0, 0)
    try:
        rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=width, min_height=height)
    except ValueError as error:
        raise ImageDecodeError(f"{path}: cannot decode JPEG ({error})") from error
    return _upright(rgb, _jpeg_orientation(path, data))


def decode_gray(path: str | Path) -> np.ndarray:
    """Decode an image to a greyscale uint8 array (H, W), scaled by bit depth and upright (probability maps)."""
    return _decode_pillow(path, _read(path), "L")


def decode_mask(path: str | Path) -> np.ndarray:
    """A mask as greyscale uint8 on the 0–255 scale. Masks stored as class indices (0 background, 1 polyp, the
    export of many annotation tools) are scaled up, so they are not read as empty; 16-bit ones too."""
    with open_image(path, io.BytesIO(_read(path))) as image:
        # class indices show before scaling (a 16-bit 0/1 map) or after it (an RGB 0/1 map); a palette's are its own
        indices = np.asarray(image) if image.mode in ("L", "P", "I") or image.mode.startswith("I;16") else None
        gray = np.asarray(_scaled_to_8bit(path, image).convert("L"))
        for values in (indices, gray):
            if values is not None and 1 <= values.max(initial=0) <= _LABEL_MAP_MAX:
                gray = (np.minimum(values, 1) * 255).astype(np.uint8)
                break
        return _upright(gray, _orientation(image))


def binarise_mask(gray: np.ndarray, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    """JPEG mask (grey edges) → bool array; ``>= threshold`` is polyp."""
    return gray >= threshold


def mask_problem(gray: np.ndarray, max_grey_share: float = 0.05) -> str | None:
    """Why a greyscale image (0–255, from :func:`decode_mask`) is not a polyp mask, or None. A JPEG mask has
    mid-grey only along its edges, is never white all over, and its polyp never rings the whole frame."""
    grey_share = float(((gray > 30) & (gray < 225)).mean())
    if grey_share > max_grey_share:
        return f"{grey_share:.0%} of pixels are mid-grey"
    white = binarise_mask(gray)
    if white.all():
        return "all white"
    border = np.concatenate([white[0], white[-1], white[:, 0], white[:, -1]])
    if border.mean() > _INVERTED_BORDER_SHARE:
        return f"inverted: white covers {border.mean():.0%} of the frame's edge, so black would be the polyp"
    return None


def load_mask(path: str | Path) -> np.ndarray:
    """A polyp mask as a bool array (white = polyp), refusing with :class:`MaskError` a file that is no mask."""
    gray = decode_mask(path)
    problem = mask_problem(gray)
    if problem:
        raise MaskError(f"{path}: not a mask ({problem}); masks are white polyp on black")
    return binarise_mask(gray)


def verify_decodes(path: str | Path) -> str | None:
    """None when the image decodes completely, else the reason (catches truncated JPEGs)."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as image:
            image.load()
        return None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
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
