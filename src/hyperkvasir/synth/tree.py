"""Write a synthetic twin of the HyperKvasir release in exactly the released layout.

``make_synthetic_release(root, seed=…, scale=…)`` returns a :class:`SynthInfo` holding the expected answers
(per-class counts, folds, segmented stems, planted faults) so that tests, the demo and the benchmarks check
the toolkit against known truth. Same seed → byte-identical tree: every file is rendered from its own seeded
generator and written in a fixed order. The tree is written into a staging folder beside ``root`` and renamed into
place whole, so an error or Ctrl-C midway leaves no half-written twin.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter

from hyperkvasir.data.layout import SPLIT_FILES
from hyperkvasir.data.splits import official_chunk_folds
from hyperkvasir.data.tables import IMAGE_LABELS_HEADER, SPLIT_HEADER
from hyperkvasir.data.taxonomy import (
    CLASSES,
    RELEASED_SEGMENTED,
    RELEASED_UNLABELED,
    RELEASED_VIDEOS,
    TRACT_TO_ORGAN,
    lookup,
)
from hyperkvasir.outputs import atomic_write, staged_folder
from hyperkvasir.parallel import process_pool
from hyperkvasir.synth.faults import plant_labeled_faults, plant_segmented_faults
from hyperkvasir.synth.files import LabeledImage, jpeg_bytes, seeded_uuid
from hyperkvasir.synth.render import (
    finish_frame,
    pick_corner,
    pick_resolution,
    polygon_mask,
    render_frame,
)
from hyperkvasir.synth.video import VIDEO_CLASSES, write_video

Scale = Literal["tiny", "small", "medium", "full"]
SCALES: tuple[str, ...] = ("tiny", "small", "medium", "full")
_PART_SEED = {"labeled": 1, "segmented": 2, "unlabeled": 3, "videos": 4, "faults": 5}


@dataclass(frozen=True)
class ScaleSpec:
    per_class: dict[str, int]
    segmented: int
    unlabeled: int
    videos: int
    video_frames: int
    shrink: int = 1  # images drawn at 1/shrink of the released resolutions: the full count in small files
    runs: tuple[int, int] | None = None  # unlabeled frames come in runs of this many slowly changing frames


def scale_spec(scale: str) -> ScaleSpec:
    """How much each part holds at a scale: ``tiny`` for unit tests, ``small`` for the demo, ``medium`` (a
    tenth of the released counts, same imbalance) for benchmarks, ``full`` (every released count, images at a
    quarter of the released sides, unlabeled frames in runs as captured during procedures) to rehearse scale."""
    if scale == "tiny":
        counts = {c.folder: 3 for c in CLASSES} | {"polyps": 8, "hemorrhoids": 1}
        return ScaleSpec(counts, segmented=6, unlabeled=8, videos=3, video_frames=20)
    if scale == "small":
        counts = {c.folder: min(25, c.released_count) for c in CLASSES} | {"polyps": 30}
        return ScaleSpec(counts, segmented=24, unlabeled=40, videos=6, video_frames=40)
    if scale == "medium":
        counts = {c.folder: max(1, round(c.released_count / 10)) for c in CLASSES}
        return ScaleSpec(counts, segmented=100, unlabeled=1000, videos=12, video_frames=60)
    if scale == "full":
        counts = {c.folder: c.released_count for c in CLASSES}
        return ScaleSpec(
            counts,
            segmented=RELEASED_SEGMENTED,
            unlabeled=RELEASED_UNLABELED,
            videos=RELEASED_VIDEOS,
            video_frames=8,
            shrink=4,
            runs=(20, 180),
        )
    raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")


@dataclass
class SynthInfo:
    """The expected answers for a synthetic tree."""

    root: Path
    seed: int
    scale: str
    per_class: dict[str, int]  # folder name -> images on disk
    folds2: dict[str, int]  # file name -> fold
    folds5: dict[str, int]
    segmented: tuple[str, ...]  # stems, all also in labeled polyps/
    boxes_per_image: dict[str, int]
    unlabeled: int
    videos: tuple[str, ...]  # stems
    scopeguide: dict[str, int]  # folder name -> images with the ScopeGuide box
    black_box: dict[str, int]  # folder name -> images with the black corner box
    faults: list[dict] = field(default_factory=list)


def _render_job(job: tuple[str, str, tuple[int, ...], int]) -> tuple[tuple[int, int], str, list]:
    """Render one image to ``path`` (runs in a worker process); returns size, corner mark, polyps."""
    path, folder, seed, shrink = job
    rng = np.random.default_rng(seed)
    size = _shrunk(pick_resolution(rng), shrink)
    corner = pick_corner(folder, rng)
    frame = render_frame(folder, rng, size)
    Path(path).write_bytes(jpeg_bytes(finish_frame(frame, rng, corner)))
    return size, corner, frame.polyps


def _shrunk(size: tuple[int, int], shrink: int) -> tuple[int, int]:
    """A released resolution divided by ``shrink``; shrunk sides are kept even (video encoders need them)."""
    return size if shrink == 1 else ((size[0] // shrink) & ~1, (size[1] // shrink) & ~1)


def _render_all(jobs: list[tuple[str, str, tuple[int, ...], int]], workers: int) -> list:
    with process_pool(workers, len(jobs), minimum=64) as pool:
        return list(pool.map(_render_job, jobs, chunksize=16))


def _render_run(job: tuple[list[str], str, tuple[int, ...], int]) -> None:
    """Write one run of unlabeled frames: the camera wanders slowly over one scene (a reflected random walk of
    about 6 px per frame at the released size) with sensor noise and light flicker, so neighbours are
    near-identical but never byte-identical, and frames far apart in the run differ (the chaining the audit
    must not follow)."""
    paths, folder, seed, shrink = job
    rng = np.random.default_rng(seed)
    w, h = _shrunk(pick_resolution(rng), shrink)
    scene = render_frame(folder, rng, (w, h), overscan=1.6)
    corner = pick_corner(folder, rng)
    finish_seed = int(rng.integers(1 << 31))  # one field of view and one on-screen text for the whole run
    slack = np.asarray((scene.image.width - w, scene.image.height - h), float)
    position = rng.uniform(0, 1, 2) * slack
    step = 6 / shrink / np.sqrt(2)  # per axis
    for path in paths:
        position = np.abs(position + rng.normal(0, step, 2))  # reflect at 0 …
        position = slack - np.abs(slack - position)  # … and at the far edge
        x, y = position.astype(int)
        pixels = np.asarray(scene.image.crop((x, y, x + w, y + h)), np.float32) * rng.uniform(0.97, 1.03)
        crop = Image.fromarray(np.clip(pixels + rng.normal(0, 2, pixels.shape), 0, 255).astype(np.uint8))
        image = finish_frame(type(scene)(crop, []), np.random.default_rng(finish_seed), corner)
        Path(path).write_bytes(jpeg_bytes(image))


def _write_csv(path: Path, header: tuple[str, ...], rows: list[tuple], delimiter: str) -> None:
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def make_synthetic_release(
    root: str | Path,
    *,
    seed: int = 0,
    scale: str = "tiny",
    faults: bool = False,
    workers: int = 1,
    parts: tuple[str, ...] = ("labeled", "segmented", "unlabeled", "videos"),
    videos: int | None = None,
) -> SynthInfo:
    """Write a twin of the release under ``root`` (which must not exist or be empty), whole or not at all."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: folder exists and is not empty; choose a new folder")
    spec = scale_spec(scale)
    if videos is not None:  # more clips than the scale has, e.g. for video-level splits
        spec = dataclasses.replace(spec, videos=videos)
    with staged_folder(root, "synth", option="OUT", overwrite=False) as staging:
        info = _write_tree(staging, seed, scale, spec, faults, workers, parts)
    info.root = root
    return info


def _write_tree(
    root: Path, seed: int, scale: str, spec: ScaleSpec, faults: bool, workers: int, parts: tuple[str, ...]
) -> SynthInfo:
    """Every part of the twin written under ``root`` (a staging folder), with the expected answers."""
    names = random.Random(seed)
    info = SynthInfo(root, seed, scale, {}, {}, {}, (), {}, 0, (), {}, {})

    # ---- labeled images
    images: list[LabeledImage] = []
    jobs: list[tuple[str, str, tuple[int, ...], int]] = []
    for cls in CLASSES:
        for _ in range(spec.per_class[cls.folder]):
            stem = seeded_uuid(names)
            images.append(LabeledImage(cls, stem, (0, 0), "none"))
    for number, image in enumerate(images):
        (root / image.relpath).parent.mkdir(parents=True, exist_ok=True)
        jobs.append((str(root / image.relpath), image.cls.folder, (seed, _PART_SEED["labeled"], number), spec.shrink))
    results = _render_all(jobs, workers)
    images = [
        LabeledImage(im.cls, im.stem, size, corner, tuple(tuple(p) for p in polys))
        for im, (size, corner, polys) in zip(images, results)
    ]

    unlabelled_rows: set[str] = set()
    if faults:
        images, unlabelled_rows, info.faults = plant_labeled_faults(root, images, names, seed)

    # ---- official splits and image-labels.csv
    by_class: dict[str, list[str]] = {c.folder: [] for c in CLASSES}
    for image in images:
        by_class[image.cls.folder].append(f"{image.stem}.jpg")
    for k, target in ((2, info.folds2), (5, info.folds5)):
        rows = []
        for cls in CLASSES:
            files = sorted(by_class[cls.folder])  # the official script's listing order
            for file_name, fold in zip(files, official_chunk_folds(files, k)):
                target[file_name] = fold
                rows.append((file_name, cls.split_name, fold))
        _write_csv(root / "official_splits" / SPLIT_FILES[k], SPLIT_HEADER, rows, ";")
    _write_csv(
        root / "labeled-images" / "image-labels.csv",
        IMAGE_LABELS_HEADER,
        [
            (im.stem, TRACT_TO_ORGAN[im.cls.tract], im.cls.folder, im.cls.category)
            for im in sorted(images, key=lambda im: im.stem)
            if im.stem not in unlabelled_rows
        ],
        ",",
    )
    info.per_class = {c.folder: len(by_class[c.folder]) for c in CLASSES}
    info.scopeguide = {c.folder: sum(im.corner == "scopeguide" for im in images if im.cls is c) for c in CLASSES}
    info.black_box = {c.folder: sum(im.corner == "black-box" for im in images if im.cls is c) for c in CLASSES}

    if "segmented" in parts:
        _write_segmented(root, info, images, spec, faults)
    if "unlabeled" in parts:
        _write_unlabeled(root, info, spec, names, workers)
    if "videos" in parts:
        _write_videos(root, info, spec, names)
    if faults:
        with atomic_write(root / "FAULTS.json", "w") as handle:
            json.dump({"seed": seed, "scale": scale, "faults": info.faults}, handle, indent=2)
            handle.write("\n")
    return info


def _write_segmented(root: Path, info: SynthInfo, images: list[LabeledImage], spec: ScaleSpec, faults: bool) -> None:
    """Segmented images are byte copies of labeled polyps with JPEG masks and boxes 1 px outside the mask."""
    faulty = {f for fault in info.faults for f in fault["files"]}
    polyps = [im for im in images if im.cls.folder == "polyps" and im.polyps and im.relpath not in faulty]
    chosen = polyps[: spec.segmented]
    boxes: dict[str, dict] = {}
    (root / "segmented-images" / "images").mkdir(parents=True, exist_ok=True)
    (root / "segmented-images" / "masks").mkdir(parents=True, exist_ok=True)
    for image in chosen:
        shutil.copyfile(root / image.relpath, root / "segmented-images" / "images" / f"{image.stem}.jpg")
        # masks were drawn anti-aliased and saved as JPEG: grey values at the edges (dataset.md §1.4)
        # (the blur scales with the image, so a shrunk twin's edges stay as thin a share as the released ones)
        mask = polygon_mask([list(p) for p in image.polyps], image.size).filter(
            ImageFilter.GaussianBlur(1.2 / spec.shrink)
        )
        (root / "segmented-images" / "masks" / f"{image.stem}.jpg").write_bytes(
            jpeg_bytes(mask.convert("RGB"), quality=90)
        )
        w, h = image.size
        entries = []
        for outline in image.polyps:
            xs, ys = [p[0] for p in outline], [p[1] for p in outline]
            entries.append(
                {
                    "label": "polyp",
                    "xmin": max(0, int(min(xs)) - 1),
                    "ymin": max(0, int(min(ys)) - 1),
                    "xmax": min(w - 1, int(max(xs)) + 2),
                    "ymax": min(h - 1, int(max(ys)) + 2),
                }
            )
        boxes[image.stem] = {"height": h, "width": w, "bbox": entries}
    if faults:
        info.faults += plant_segmented_faults(root, chosen, boxes)
    with atomic_write(root / "segmented-images" / "bounding-boxes.json", "w") as handle:
        json.dump(boxes, handle, indent=2)
    info.segmented = tuple(im.stem for im in chosen)
    info.boxes_per_image = {stem: len(entry["bbox"]) for stem, entry in boxes.items()}


def _write_unlabeled(root: Path, info: SynthInfo, spec: ScaleSpec, names: random.Random, workers: int) -> None:
    """Unlabeled frames drawn from the labeled class mix, under ``unlabeled-images/images/``: independent frames,
    or runs of slowly changing frames when the scale has ``runs``."""
    folder = root / "unlabeled-images" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    weights = np.asarray([c.released_count for c in CLASSES], float)
    pick = np.random.default_rng((info.seed, _PART_SEED["unlabeled"]))
    lengths = [1] * spec.unlabeled
    if spec.runs:
        lengths = []
        while (left := spec.unlabeled - sum(lengths)) > 0:
            lengths.append(min(left, int(pick.integers(spec.runs[0], spec.runs[1] + 1))))
    classes = pick.choice(len(CLASSES), size=len(lengths), p=weights / weights.sum())
    jobs = []
    for n, (c, length) in enumerate(zip(classes, lengths)):
        paths = [str(folder / f"{seeded_uuid(names)}.jpg") for _ in range(length)]
        jobs.append((paths, CLASSES[c].folder, (info.seed, _PART_SEED["unlabeled"], n), spec.shrink))
    if spec.runs:
        with process_pool(workers, len(jobs), minimum=8) as pool:
            list(pool.map(_render_run, jobs, chunksize=4))
    else:
        _render_all([(paths[0], *rest) for paths, *rest in jobs], workers)
    info.unlabeled = spec.unlabeled


def _write_videos(root: Path, info: SynthInfo, spec: ScaleSpec, names: random.Random) -> None:
    """Short AVI clips in ``labeled-videos/<tract>/<category>/<class>/`` with ``video-labels.csv``."""
    rows = []
    stems = []
    for number in range(spec.videos):
        video = VIDEO_CLASSES[number % len(VIDEO_CLASSES)]
        stem = seeded_uuid(names)
        rng = np.random.default_rng((info.seed, _PART_SEED["videos"], number))
        size = _shrunk((1280, 1024) if number % 4 == 3 else (720, 576), spec.shrink)
        path = root / "labeled-videos" / video.tract / video.category_dir / video.class_dir / f"{stem}.avi"
        write_video(path, video.render_as, rng, size=size, frames=spec.video_frames)
        organ = TRACT_TO_ORGAN[lookup(video.render_as).tract]
        secondary = video.secondary or ("", "")
        rows.append((stem, organ, video.classification, video.finding, *secondary))
        stems.append(stem)
    _write_csv(
        root / "labeled-videos" / "video-labels.csv",
        ("Video file", "Organ", "Classification 1", "Finding 1", "Classification 2", "Finding 2"),
        rows,
        ",",
    )
    info.videos = tuple(stems)
