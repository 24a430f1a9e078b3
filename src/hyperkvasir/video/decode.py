"""The one decode of video frames: what ``video frames`` stores for training and what ``predict`` feeds a model.

:func:`decode_frames` picks frames (every N-th, or F per second), decodes them with PyAV — where the codec can, at
a reduced resolution that still covers ``size`` (FFmpeg's ``lowres``: 1/2, 1/4, 1/8) — and scales each so its
short side is ``size`` (area interpolation). ``video frames`` stores that frame as JPEG at :data:`JPEG_QUALITY`
(:func:`frame_jpeg`), and training reads it back with ``load_square`` (centre square at the model's size).
:func:`model_input` gives ``predict`` exactly those pixels from the same decode: the same JPEG round trip at the
same quality, then ``load_square``'s framing (corner blanking included when the model masks corners). So a video
model scores in ``predict`` the pixels it trained on, for frames extracted at its size (what ``train video``
does unless given a ``--frames`` folder of another size); a classifier sees video frames framed as its images.

Measured on the tiny twin's three videos (60 frames, 720×576 and 1280×1024): before this module, training frames
(lowres, swscale to the short side, JPEG 90, ``load_square``) and predict's frames (full-resolution decode, no
JPEG) differed by a mean absolute 3.76 / 2.03 / 1.49 grey levels at 32 / 96 / 224 px (99th percentile 24 / 15 /
8, maximum 127 / 111 / 98); now they are equal, pixel for pixel (``tests/video/test_frames.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import simplejpeg

from hyperkvasir.data.imaging import blank_corner, centre_square

JPEG_QUALITY = 90
# A video is complete when at least this share of the frames its container declares decodes; fewer means a
# truncated or damaged file, which is reported and never marked done.
MIN_DECODED_SHARE = 0.98


class VideoDecodeError(Exception):
    """A video that stops decoding, decodes no frame, or fewer frames than its header declares."""


def frame_selected(index: int, every: int | None, fps: float | None, video_fps: float) -> bool:
    """Whether decoded frame ``index`` is kept: every ``every``-th, or the first of every 1/``fps`` interval."""
    if every:
        return index % every == 0
    if fps:
        step = video_fps / fps
        return int(index / step) != int((index - 1) / step) if index else True
    return True


def _lowres_level(width: int, height: int, size: int | None) -> int:
    """The largest reduction (0–3: 1, 1/2, 1/4, 1/8) whose short side still covers ``size``."""
    level = 0
    while size and level < 3 and min(width, height) >> (level + 1) >= size:
        level += 1
    return level


def short_side(rgb: np.ndarray, size: int | None) -> np.ndarray:
    """``rgb`` scaled so its short side is ``size`` (area interpolation); unchanged without ``size``."""
    height, width = rgb.shape[:2]
    if not size or min(height, width) == size:
        return rgb
    scale = size / min(height, width)
    target = (size, round(width * scale)) if height <= width else (round(height * scale), size)
    return cv2.resize(rgb, (target[1], target[0]), interpolation=cv2.INTER_AREA)


def decode_frames(
    video: str | Path, *, every: int | None = None, fps: float | None = None, size: int | None = None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame index from 0, time in s, RGB uint8 with short side ``size``) of each selected frame, in order.
    Raises :class:`VideoDecodeError` where decoding stops, after the frames that did decode, and at the end when
    fewer than :data:`MIN_DECODED_SHARE` of the declared frames decoded."""
    import av  # loads FFmpeg's libraries: only once a video is decoded, not when the module is imported

    decoded = declared = 0
    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            declared = int(stream.frames or 0)
            stream.thread_type = "AUTO"
            if size and stream.height:
                stream.codec_context.options = {"lowres": str(_lowres_level(stream.width, stream.height, size))}
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                if frame_selected(index, every, fps, rate):
                    yield index, index / rate, short_side(frame.to_ndarray(format="rgb24"), size)
    except (av.error.FFmpegError, IndexError, OSError) as error:
        raise VideoDecodeError(f"{type(error).__name__}: {error} (after {decoded} frames)") from None
    if not decoded:
        raise VideoDecodeError("no frame decoded (empty or unreadable video)")
    if declared and decoded < MIN_DECODED_SHARE * declared:
        raise VideoDecodeError(
            f"truncated: {decoded} of the {declared} frames its header declares decode; not "
            f"marked done (re-copy the file, then rerun)"
        )


def frame_jpeg(rgb: np.ndarray) -> bytes:
    """The JPEG ``video frames`` stores for a decoded frame."""
    return simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=JPEG_QUALITY)


def model_input(rgb: np.ndarray, size: int, *, mask_corners: bool = False) -> np.ndarray:
    """The ``size`` × ``size`` uint8 square a model scores for a decoded frame: :func:`frame_jpeg` decoded back as
    ``load_square`` decodes a stored frame (libjpeg-turbo, DCT-scaled to cover ``size``), corner blanked when the
    model masks corners, centre square."""
    rgb = simplejpeg.decode_jpeg(frame_jpeg(rgb), colorspace="RGB", min_width=size, min_height=size)
    return centre_square(blank_corner(rgb) if mask_corners else rgb, size)
