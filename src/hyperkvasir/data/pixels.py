"""Per-image pixel evidence for the audit: a perceptual hash, a thumbnail that confirms it, and frame marks.

Every threshold here was calibrated on real release pixels (``docs/calibration.md``): 675 labeled lower-GI
images and 300 original-size Kvasir-SEG images, labelled by eye, with the twin checked by the same settings.

* **ScopeGuide** — the Olympus picture-in-picture is a teal box (about RGB 20, 160, 135; green ≈ blue + 25,
  red low) with a dark curve and white text in the lower-left corner. Its score is the share of teal pixels in
  the lower-left 40 % × 40 % of the frame: ≥ 0.5 on every real image that shows it, ≤ 0.003 on every other.
* **Black box** — Kvasir-SEG (and many labeled polyp images) cover that corner with a solid black box. The
  octagon cut of the field of view is black too, but it is a triangle: its height falls one pixel per pixel
  to the right, while a box keeps a flat top. The score is the height (share of the frame) of the tallest dark
  run from the bottom edge that stays flat over a band of columns.
* **Near duplicates** — a 64-bit pHash of the centre of the field of view proposes pairs; a 16 × 16 grey
  thumbnail of the same crop confirms them by normalised cross-correlation, because on real frames unrelated
  polyps already sit 4–6 pHash bits apart while consecutive captures of one scene sit 4–8 bits apart.
"""

from __future__ import annotations

import io

import imagehash
import numpy as np
from PIL import Image, ImageFile

from hyperkvasir.data.imaging import open_image

# The hash sees the centre of the field of view only: the black corners, the on-screen text and the
# ScopeGuide corner are shared by unrelated frames and would pull their hashes together.
HASH_CROP = (0.25, 0.15, 0.9, 0.85)  # left, top, right, bottom as fractions of width/height
THUMBNAIL_SIDE = 16
SCOPEGUIDE_MIN_SHARE = 0.1  # teal share of the corner; real positives ≥ 0.5, negatives ≤ 0.003
BLACK_BOX_MIN_HEIGHT = 0.1  # flat dark run from the bottom, share of frame height; thinner strips are missed
_CORNER = 0.4  # the lower-left corner examined, as a share of width and height
_GRID = 128  # the frame is resampled to 128 × 128 for the black-box profile
_FLAT_COLUMNS = 10  # a box top must stay flat over this many grid columns (8 % of the width) ...
_FLAT_TOLERANCE = 3  # ... within this many grid rows; a 45° octagon cut changes by 10 over the band
_DECODE_MIN_SIDE = 256
_DARK = 40  # max(R, G, B) below this is black (JPEG noise lifts pure black to ~20)


def scopeguide_score(rgb: np.ndarray) -> float:
    """Share of teal (ScopeGuide) pixels in the lower-left corner of an RGB frame."""
    h, w, _ = rgb.shape
    corner = rgb[int(h * (1 - _CORNER)) :, : int(w * _CORNER)].astype(np.int16)
    r, g, b = corner[..., 0], corner[..., 1], corner[..., 2]
    teal = (g >= 90) & (g - r >= 50) & (b - r >= 30) & (np.abs(g - b) <= 70)
    return float(teal.mean()) if teal.size else 0.0


def black_box_score(rgb: np.ndarray) -> float:
    """Height (share of the frame) of a flat-topped black region standing on the bottom edge and reaching the left
    edge; 0 if none, or if it is no more than twice the black band that runs along the whole bottom edge of many
    frames."""
    grid = np.asarray(Image.fromarray(rgb).resize((_GRID, _GRID), Image.Resampling.BOX), dtype=np.int16)
    bottom_up = (grid.max(axis=2) < _DARK)[_GRID // 2 :][::-1]
    padded = np.vstack([bottom_up, np.zeros((1, _GRID), bool)])
    runs = np.argmin(padded, axis=0)  # consecutive dark rows from the bottom, per column
    band_under_everything = int(np.median(runs[int(_GRID * 0.4) : int(_GRID * 0.6)]))
    best = 0
    for x in range(_GRID // 2 - _FLAT_COLUMNS + 1):
        band = runs[x : x + _FLAT_COLUMNS]
        standing_on_left_edge = runs[: x + _FLAT_COLUMNS].min() >= band.min() - _FLAT_TOLERANCE
        if (
            band.max() - band.min() <= _FLAT_TOLERANCE
            and band.min() >= 2 * band_under_everything
            and standing_on_left_edge
        ):  # a box reaches the frame's left edge; the scope's tube does not
            best = max(best, int(band.min()))
    return best / _GRID


def hash_crop(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((int(w * HASH_CROP[0]), int(h * HASH_CROP[1]), int(w * HASH_CROP[2]), int(h * HASH_CROP[3])))


def thumbnail(centre: Image.Image) -> bytes:
    """16 × 16 greyscale area-average of the hash crop, the confirming evidence for a near pair."""
    grey = centre.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.uint8).tobytes()


def thumbnail_correlations(thumbnails: list[bytes], pairs: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """Normalised cross-correlation of the thumbnails of each index pair (1 = same picture up to brightness and
    contrast; two flat thumbnails correlate 1 when equal, else 0). Vectorised in chunks: frame runs give
    millions of candidate pairs."""
    grey = np.frombuffer(b"".join(thumbnails), np.uint8).reshape(len(thumbnails), -1).astype(np.float32)
    centred = grey - grey.mean(1, keepdims=True)
    norms = np.sqrt((centred * centred).sum(1))
    unit = np.divide(centred, norms[:, None], out=np.zeros_like(centred), where=norms[:, None] > 0)
    result = np.empty(len(pairs), np.float32)
    for start in range(0, len(pairs), chunk):
        a, b = pairs[start : start + chunk, 0], pairs[start : start + chunk, 1]
        values = np.einsum("ij,ij->i", unit[a], unit[b])
        flat = (norms[a] == 0) & (norms[b] == 0)
        values[flat] = (grey[a[flat]] == grey[b[flat]]).all(1)
        result[start : start + chunk] = values
    return result


def pixel_evidence(data: bytes, name: str = "image") -> dict:
    """pHash, thumbnail, ScopeGuide and black-box scores from a DCT-scaled decode of JPEG bytes (the largest
    reduction that keeps both sides ≥ 256 px, so small copies are hashed as finely as full frames). A file that does
    not decode (over the decompression-bomb limit included) raises ImageDecodeError, a ValueError."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with open_image(name, io.BytesIO(data)) as image:
        image.draft("RGB", (min(image.width, _DECODE_MIN_SIDE), min(image.height, _DECODE_MIN_SIDE)))
        rgb = image.convert("RGB")
    centre = hash_crop(rgb)
    pixels = np.asarray(rgb)
    return {
        "phash": int(str(imagehash.phash(centre)), 16),
        "thumbnail": thumbnail(centre),
        "scopeguide": scopeguide_score(pixels),
        "black_box": black_box_score(pixels),
    }
