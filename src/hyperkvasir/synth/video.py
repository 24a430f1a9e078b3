"""Short synthetic endoscopy clips (AVI, MPEG-4 Part 2) written with PyAV, as in ``labeled-videos/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from hyperkvasir.synth.render import finish_frame, pick_corner, render_frame


@dataclass(frozen=True)
class VideoClass:
    """A video finding of the twin: how it is filed, labelled and rendered."""

    render_as: str  # labeled-image class whose look the frames take
    tract: str
    category_dir: str
    class_dir: str
    classification: str  # video-labels.csv spelling: Title-case with spaces (dataset.md §7)
    finding: str
    secondary: tuple[str, str] | None = None


# Folder names follow the video tree as seen in the wild, including its inconsistencies (singular "view",
# upper-case BBPS; dataset.md §1.6).
VIDEO_CLASSES: tuple[VideoClass, ...] = (
    VideoClass("polyps", "lower-gi-tract", "pathological-findings", "polyps", "Pathological findings", "Polyp"),
    VideoClass(
        "bbps-2-3",
        "lower-gi-tract",
        "quality-of-mucosal-view",
        "BBPS-2-3",
        "Quality of mucosal views",
        "BBPS 2-3",
        ("Anatomical landmarks", "Cecum"),
    ),
    VideoClass("z-line", "upper-gi-tract", "anatomical-landmarks", "z-line", "Anatomical landmarks", "Z-line"),
    VideoClass(
        "ulcerative-colitis-grade-2",
        "lower-gi-tract",
        "pathological-findings",
        "ulcerative-colitis",
        "Pathological findings",
        "Ulcerative colitis",
    ),
    VideoClass(
        "dyed-lifted-polyps",
        "lower-gi-tract",
        "therapeutic-interventions",
        "dyed-lifted-polyps",
        "Therapeutic interventions",
        "Dyed lifted polyp",
        ("Pathological findings", "Polyp"),
    ),
    VideoClass("pylorus", "upper-gi-tract", "anatomical-landmarks", "pylorus", "Anatomical landmarks", "Pylorus"),
)


def write_video(
    path: Path, folder: str, rng: np.random.Generator, *, size: tuple[int, int], frames: int, fps: int = 25
) -> None:
    """A clip of ``frames`` frames: the camera pans across one rendered scene, light flickering."""
    path.parent.mkdir(parents=True, exist_ok=True)
    overscan = 1.3
    scene = render_frame(folder, rng, size, overscan=overscan)
    corner = pick_corner(folder, rng)
    w, h = size
    slack_x, slack_y = scene.image.width - w, scene.image.height - h
    start, end = rng.uniform(0, 1, 2), rng.uniform(0, 1, 2)
    tmp = path.with_name(f".{path.name}.tmp")
    with av.open(str(tmp), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1  # deterministic bytes
        stream.codec_context.bit_rate = 1_500_000
        for index in range(frames):
            t = index / max(1, frames - 1)
            x, y = (start + (end - start) * t) * (slack_x, slack_y)
            crop = scene.image.crop((int(x), int(y), int(x) + w, int(y) + h))
            frame_rng = np.random.default_rng(int(rng.integers(1 << 31)))
            image = finish_frame(type(scene)(crop, []), frame_rng, corner)
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
