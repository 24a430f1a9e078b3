"""What a ``predict`` call reads: a release part, image files and folders, or video files."""

from __future__ import annotations

from pathlib import Path

from hyperkvasir.data.layout import VIDEO_SUFFIXES, Release
from hyperkvasir.errors import HyperKvasirError

# Images predict accepts from files and folders (the release itself is JPEG only).
PREDICT_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
PARTS = ("unlabeled", "labeled", "segmented")


def resolve_inputs(inputs: list[str | Path], part: str | None) -> tuple[list[Path], Path | None]:
    """(image files, release root or None) from a release part or from files and folders (videos left out)."""
    if part:
        if part not in PARTS:
            raise HyperKvasirError(f"unknown part {part!r}; choose {', '.join(PARTS)}")
        if len(inputs) != 1:
            raise HyperKvasirError("--part takes exactly one release root")
        release = Release(inputs[0])
        release.require(part)
        files = {"unlabeled": release.unlabeled_files, "labeled": release.labeled_files,
                 "segmented": lambda: release.segmented_pairs()[0]}[part]
        return files(), release.root
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir() and _holds_image_parts(item):
            # a whole release mixes parts (and masks): which images are meant must be said
            raise HyperKvasirError(f"{item} is a release root; add --part {' | '.join(PARTS)} to say which images")
        if item.is_dir():
            paths += sorted(p for p in item.rglob("*") if p.suffix.lower() in PREDICT_IMAGE_SUFFIXES)
        elif item.is_file():
            if item.suffix.lower() not in VIDEO_SUFFIXES:
                paths.append(item)
        else:
            raise HyperKvasirError(f"{item}: no such file or folder")
    return paths, None


def _holds_image_parts(folder: Path) -> bool:
    try:
        release = Release(folder)
    except HyperKvasirError:
        return False
    return any(release.part(part) for part in PARTS)


def video_inputs(inputs: list[str | Path]) -> list[Path]:
    """Video files (.avi, .mpg, .mp4) among the inputs, folders searched."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        elif item.suffix.lower() in VIDEO_SUFFIXES:
            found.append(item)
    return found
