"""What a ``predict`` call reads: a release part, image files and folders, or video files."""

from __future__ import annotations

from pathlib import Path

from hyperkvasir.data.layout import VIDEO_SUFFIXES, Release
from hyperkvasir.errors import HyperKvasirError

# Images predict accepts from files and folders (the release itself is JPEG only).
PREDICT_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
PARTS = ("unlabeled", "labeled", "segmented")
VIDEO_PART = "videos"


def resolve_inputs(inputs: list[str | Path], part: str | None) -> tuple[list[Path], Path | None]:
    """(image files, release root or None) from a release part or from files and folders (videos left out)."""
    if part:
        if part not in PARTS:
            raise HyperKvasirError(f"unknown part {part!r}; choose {', '.join(PARTS)}")
        if len(inputs) != 1:
            raise HyperKvasirError("--part takes exactly one release root")
        release = Release(inputs[0])
        release.require(part)
        files = {
            "unlabeled": release.unlabeled_files,
            "labeled": release.labeled_files,
            "segmented": lambda: release.segmented_pairs()[0],
        }[part]
        return files(), release.root
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir() and _holds_parts(item, PARTS):
            # a whole release mixes parts (and masks): which images are meant must be said
            raise HyperKvasirError(f"{item} is a release root; add --part {' | '.join(PARTS)} to say which images")
        if item.is_dir():
            paths += sorted(p for p in item.rglob("*") if p.suffix.lower() in PREDICT_IMAGE_SUFFIXES)
        elif item.is_file():
            if item.suffix.lower() not in VIDEO_SUFFIXES:
                paths.append(item)
        else:
            raise HyperKvasirError(f"{item}: no such file or folder")
    return list({path.absolute(): path for path in paths}.values()), None  # a file named twice is scored once


def output_names(paths: list[Path], inputs: list[str | Path], root: Path | None = None) -> list[str]:
    """What each image's outputs are named after: its path without suffix below the release root or the input folder
    it was found in (a file given by itself: its stem), so two sites' ``img001.jpg`` never overwrite each other's
    outputs. Two images that would share a name (``x.jpg`` and ``x.png``) are refused before any work."""
    folders = [root.absolute()] if root else [Path(i).absolute() for i in inputs if Path(i).is_dir()]
    names = [_name_below(path.absolute(), folders) for path in paths]
    seen: dict[str, Path] = {}
    for name, path in zip(names, paths):
        if name in seen:
            raise HyperKvasirError(
                f"{seen[name]} and {path} share the name {name!r} (outputs and maps are named by "
                f"path without suffix); rename one"
            )
        seen[name] = path
    return names


def _name_below(path: Path, folders: list[Path]) -> str:
    """``path`` without suffix below the deepest of ``folders`` holding it, else its stem."""
    holding = [folder for folder in folders if path.is_relative_to(folder)]
    base = max(holding, key=lambda folder: len(folder.parts)) if holding else path.parent
    return path.relative_to(base).with_suffix("").as_posix()


def video_inputs(inputs: list[str | Path]) -> list[Path]:
    """Video files (.avi, .mpg, .mp4) among the inputs, folders searched."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        elif item.suffix.lower() in VIDEO_SUFFIXES:
            found.append(item)
    return found


def wants_videos(inputs: list[str | Path], part: str | None) -> bool:
    """Whether a call asks for videos: ``--part videos``, or video files (or folders of them, a release root
    excepted: it needs ``--part``) among the inputs."""
    if part is not None:
        return part == VIDEO_PART
    plain = [item for item in inputs if not (Path(item).is_dir() and _holds_parts(Path(item), (*PARTS, VIDEO_PART)))]
    return bool(video_inputs(plain))


def resolve_videos(inputs: list[str | Path], part: str | None) -> tuple[list[Path], Path | None]:
    """(video files, release root or None) from ``--part videos`` (one release root) or files and folders. One
    call scores videos or images: images among the inputs, a release root without ``--part videos`` or an image
    part are refused."""
    if part is not None:
        if part != VIDEO_PART:
            raise HyperKvasirError(
                f"--part {part} holds images; videos are scored with --part {VIDEO_PART} or as video files"
            )
        if len(inputs) != 1:
            raise HyperKvasirError(f"--part {VIDEO_PART} takes exactly one release root")
        release = Release(inputs[0])
        release.require(VIDEO_PART)
        return release.video_files(), release.root
    for item in map(Path, inputs):
        if not item.exists():
            raise HyperKvasirError(f"{item}: no such file or folder")
        if item.is_dir() and _holds_parts(item, (*PARTS, VIDEO_PART)):
            raise HyperKvasirError(f"{item} is a release root; add --part {VIDEO_PART} to score its videos")
    images = resolve_inputs(inputs, None)[0]
    if images:
        raise HyperKvasirError(
            f"{images[0]} is an image among video inputs; one call scores videos (a folder of "
            f"findings) or images (a Parquet file): pass them in two calls"
        )
    return list({path.absolute(): path for path in video_inputs(inputs)}.values()), None


def _holds_parts(folder: Path, parts: tuple[str, ...]) -> bool:
    """Whether ``folder`` is a release root holding one of ``parts``."""
    try:
        release = Release(folder)
    except HyperKvasirError:
        return False
    return any(release.part(part) for part in parts)
