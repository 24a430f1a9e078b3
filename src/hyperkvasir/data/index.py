"""Index a release tree into a Parquet manifest: one row per file of every part present.

The index reads each file once (content hash, header size, JPEG structure) and never decodes pixels of
labeled or unlabeled images, so it runs at disk speed; pixel features (perceptual hash, ScopeGuide) belong to
the audit, which caches them by content hash. A second run reuses every row whose size and mtime are
unchanged, so it reads no image. The manifest lives in ``ROOT/.hyperkvasir/manifest.parquet`` and is
written atomically: an interrupted run leaves the previous one intact.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import filelock
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from hyperkvasir.data.imaging import binarise_mask, decode_mask, is_jpeg_bytes, jpeg_header_size, upright_size
from hyperkvasir.data.layout import Release, Skipped, within
from hyperkvasir.data.tables import read_bounding_boxes, read_split_csv, read_video_labels
from hyperkvasir.data.taxonomy import normalise_video_finding
from hyperkvasir.errors import HyperKvasirError, ReleaseFormatError
from hyperkvasir.outputs import CACHE_DIR, HOME_VARIABLE, WORK_DIR_VARIABLE, atomic_write, work_dir
from hyperkvasir.parallel import process_pool

MANIFEST_NAME = "manifest.parquet"

SCHEMA = pa.schema(
    [
        ("path", pa.string()),  # relative to the release root
        ("part", pa.string()),  # labeled | segmented | unlabeled | videos
        ("kind", pa.string()),  # image | mask | video
        ("tract", pa.string()),
        ("category", pa.string()),
        ("class", pa.string()),  # folder name as found on disk
        ("fold2", pa.int8()),
        ("fold5", pa.int8()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("sha256", pa.string()),
        ("format", pa.string()),
        ("decodes", pa.bool_()),  # header readable and, for JPEG, structure complete (SOI … EOI)
        ("error", pa.string()),
        ("mask_path", pa.string()),
        ("mask_area", pa.float32()),  # polyp share of the mask's pixels (segmented images)
        ("box_count", pa.int16()),
        ("frames", pa.int32()),
        ("fps", pa.float32()),
        ("duration_s", pa.float32()),
        ("codec", pa.string()),
        ("finding", pa.string()),  # videos: main finding as written in video-labels.csv
        ("finding_class", pa.string()),  # videos: the main finding in the paper's 30-class vocabulary (or null)
        ("secondary_findings", pa.string()),  # videos: further findings, raw, "; "-separated
    ]
)
# Columns a worker computes from the file's bytes; the rest come from the path and the release's CSVs.
_CONTENT = (
    "width",
    "height",
    "bytes",
    "mtime_ns",
    "sha256",
    "format",
    "decodes",
    "error",
    "mask_area",
    "frames",
    "fps",
    "duration_s",
    "codec",
)


def require_work_dir(root: str | Path) -> Path:
    """The work dir of ``root``, created and probed for writing before any file is read: a read-only release
    fails at once with the way out, not after hashing every file."""
    place = work_dir(root)
    real, tree = os.path.realpath(place), os.path.realpath(root)
    if within(real, tree) and not within(real, os.path.join(tree, CACHE_DIR)):
        raise HyperKvasirError(
            f"{place}: the work dir lies inside the release tree {root}, where its files would be "
            "taken for the release's; choose a folder outside it (or leave the default)"
        )
    try:
        place.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=place):
            pass
    except OSError as error:
        where = (
            "the --work-dir folder"
            if os.environ.get(WORK_DIR_VARIABLE)
            else f"the folder {HOME_VARIABLE} names"
            if os.environ.get(HOME_VARIABLE)
            else "the release tree (read-only?)"
        )
        raise HyperKvasirError(
            f"{place}: cannot write the work dir in {where} ({error.strerror or error}); use "
            f"--work-dir DIR or set {HOME_VARIABLE} to a writable folder"
        ) from None
    return place


def manifest_path(root: str | Path) -> Path:
    return work_dir(root) / MANIFEST_NAME


def _jpeg_structure_error(data: bytes) -> str | None:
    """Why a JPEG's byte stream is incomplete, or None: a truncated file lacks its end-of-image marker."""
    if not is_jpeg_bytes(data):
        return "not a JPEG (no start-of-image marker)"
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "truncated JPEG (no end-of-image marker)"
    if b"\xff\xda" not in data:
        return "JPEG without image data (no start-of-scan marker)"
    return None


def _read_image(path: str, kind: str) -> dict:
    """Content columns of one image or mask; a mask is decoded to measure its polyp area."""
    row: dict = {"error": None, "decodes": False}
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        return row | {"error": f"unreadable: {error.strerror or error}"}
    row |= {"sha256": hashlib.sha256(data).hexdigest()}
    if not data:
        return row | {"error": "empty file (0 bytes)"}
    header = jpeg_header_size(path, data) if kind == "image" and is_jpeg_bytes(data) else None
    if header is not None:  # the common case, at disk speed
        row |= {"width": header[0], "height": header[1], "format": "JPEG"}
        problem = _jpeg_structure_error(data)
    else:
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = upright_size(image)  # as the decoder turns it, so sizes agree with the pixels
                row |= {"width": width, "height": height, "format": image.format}
                problem = _jpeg_structure_error(data) if image.format == "JPEG" else None
                if problem is None and kind == "mask":
                    row["mask_area"] = float(binarise_mask(decode_mask(path)).mean())
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            problem = (
                "not an image Pillow can identify"
                if "cannot identify image file" in str(error)
                else f"not a readable image ({error})"
            )
    if problem is None and os.path.splitext(path)[1].lower() in (".jpg", ".jpeg") and row.get("format") != "JPEG":
        problem = f"named .jpg but is {row.get('format') or 'not an image'}"
    return row | {"decodes": problem is None, "error": problem}


def _read_video(path: Path) -> dict:
    """Content columns of a video: stream facts from the container, no frame decoded."""
    import av

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    row: dict = {"sha256": digest.hexdigest(), "decodes": False, "error": None}
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            frames = stream.frames or (int(float(stream.duration * stream.time_base) * rate) if stream.duration else 0)
            row |= {
                "width": stream.width,
                "height": stream.height,
                "format": container.format.name,
                "codec": stream.codec_context.name,
                "fps": rate,
                "frames": frames,
                "duration_s": frames / rate if rate else None,
                "decodes": True,
            }
    except (av.error.FFmpegError, IndexError, OSError) as error:
        row["error"] = f"not a readable video ({error})"
    return row


def _content_job(job: tuple[str, str, str]) -> dict:
    root, relpath, kind = job
    path = os.path.join(root, relpath)  # plain strings: pathlib costs more than the read for small files
    stat = os.stat(path)
    row = _read_video(Path(path)) if kind == "video" else _read_image(path, kind)
    return row | {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


_LISTINGS = (
    ("labeled", "image", "labeled"),
    ("segmented", "image", "segmented-images"),
    ("segmented", "mask", "segmented-masks"),
    ("unlabeled", "image", "unlabeled"),
    ("videos", "video", "videos"),
)


def _scan_all(release: Release, skipped: list[Skipped]) -> dict[str, tuple[str, str, os.stat_result]]:
    """path → (part, kind, stat) of every file of every part present (one ``scandir`` walk, no reads); what the
    listings leave out (links leaving the tree, names that are no UTF-8, …) goes to ``skipped``."""
    return {
        rel: (part, kind, stat) for part, kind, listing in _LISTINGS for rel, stat in release.scan(listing, skipped)
    }


def _path_rows(files: dict[str, tuple[str, str, os.stat_result]]) -> list[dict]:
    """Rows with the path-derived columns (built only when the manifest has to be rewritten)."""
    rows = []
    for rel, (part, kind, _) in files.items():
        row = {"path": rel, "part": part, "kind": kind}
        if part == "labeled":
            row["tract"], row["category"], row["class"] = rel.split("/")[1:4]
        rows.append(row)
    return rows


def _join_release_files(release: Release, rows: list[dict]) -> list[str]:
    """Folds from the split CSVs (joined on file name) and mask paths, box counts for segmented images."""
    folds: dict[int, dict[str, int]] = {2: {}, 5: {}}
    boxes = {}
    problems = []
    try:  # a malformed release file leaves its columns empty; `validate` reports it with its line
        for k in (2, 5):
            csv_path = release.split_csv(k)
            folds[k] = {r.file_name: r.fold for r in read_split_csv(csv_path)} if csv_path else {}
        boxes = read_bounding_boxes(release.bounding_boxes_json) if release.bounding_boxes_json else {}
    except ReleaseFormatError as error:
        problems.append(str(error))
    try:
        videos = {v.stem: v for v in read_video_labels(release.video_labels_csv)} if release.video_labels_csv else {}
    except ReleaseFormatError as error:
        videos = {}
        problems.append(str(error))
    by_path = {row["path"]: row for row in rows}
    for row in rows:
        name = Path(row["path"]).name
        if row["part"] == "labeled":
            row["fold2"], row["fold5"] = folds[2].get(name), folds[5].get(name)
        elif row["kind"] == "video" and Path(row["path"]).stem in videos:
            label = videos[Path(row["path"]).stem]
            row["finding"], row["finding_class"] = label.main_finding, normalise_video_finding(label.main_finding)
            row["secondary_findings"] = "; ".join(f for _, f in label.findings[1:]) or None
        elif row["part"] == "segmented" and row["kind"] == "image":
            mask = by_path.get(row["path"].replace("segmented-images/images/", "segmented-images/masks/"))
            if mask is None:  # masks may carry another extension than their image
                stem = Path(row["path"]).stem
                mask = next(
                    (r for p, r in by_path.items() if p.startswith("segmented-images/masks/") and Path(p).stem == stem),
                    None,
                )
            if mask is not None:
                row["mask_path"], row["mask_area"] = mask["path"], mask.get("mask_area")
            entry = boxes.get(Path(row["path"]).stem)
            row["box_count"] = len(entry.boxes) if entry else 0
    return problems


def build_index(
    root: str | Path,
    *,
    workers: int | None = None,
    out: str | Path | None = None,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> pa.Table:
    """Build or refresh the manifest of ``root``; rows of unchanged files (size, mtime) are reused unread.

    When no file and no release CSV/JSON changed, the previous manifest is returned as it is.
    ``progress`` wraps the iterator of finished files (the CLI passes a rich progress bar).
    """
    release = Release(root)
    target = Path(out) if out else require_work_dir(release.root) / MANIFEST_NAME
    with preparing(target):  # one process indexes; the others (ranks, nodes, a second shell) then reuse it
        return _build_index(release, target, workers, progress)


def preparing(target: Path) -> filelock.FileLock:
    """A lock beside ``target`` (also across nodes on a shared file system): what the toolkit prepares once per
    tree — manifest, audit, image cache, frames — is computed by one process while the others wait, then read."""
    return filelock.FileLock(target.with_name(f".{target.name}.lock"))


def _build_index(release: Release, target: Path, workers: int | None, progress) -> pa.Table:
    skipped: list[Skipped] = []
    files = _scan_all(release, skipped)
    left_out = "\n".join(f"{entry.path} ({entry.code})" for entry in sorted(set(skipped), key=lambda e: e.path))
    sources = _source_signature(release)
    previous = _previous_table(target)
    if previous is not None and _unchanged(previous, files, sources):
        return previous.replace_schema_metadata(
            previous.schema.metadata
            | {
                b"hyperkvasir.read": b"0",
                b"hyperkvasir.reused": str(previous.num_rows).encode(),
                b"hyperkvasir.skipped": left_out.encode(),
            }
        )
    old_rows = {row["path"]: row for row in previous.to_pylist()} if previous is not None else {}
    rows = _path_rows(files)
    jobs, reused = [], 0
    for row in rows:
        old, stat = old_rows.get(row["path"]), files[row["path"]][2]
        if old and old["bytes"] == stat.st_size and old["mtime_ns"] == stat.st_mtime_ns:
            row.update({key: old[key] for key in _CONTENT})
            reused += 1
        else:
            jobs.append(row)
    if jobs:
        results = _run_jobs([(str(release.root), row["path"], row["kind"]) for row in jobs], workers, progress)
        for row, content in zip(jobs, results):
            row.update(content)
    problems = _join_release_files(release, rows)
    table = pa.Table.from_pylist(rows, schema=SCHEMA).replace_schema_metadata(
        {
            "hyperkvasir.reused": str(reused),
            "hyperkvasir.read": str(len(jobs)),
            "hyperkvasir.problems": "\n".join(problems),
            "hyperkvasir.sources": sources,
            "hyperkvasir.skipped": left_out,
        }
    )
    with atomic_write(target) as handle:
        pq.write_table(table, handle)
    return table


def _source_signature(release: Release) -> str:
    """Size and mtime of the release files the manifest joins (split CSVs, bounding-boxes.json)."""
    paths = [release.split_csv(2), release.split_csv(5), release.bounding_boxes_json]
    return json.dumps([[str(p), p.stat().st_size, p.stat().st_mtime_ns] if p else None for p in paths])


def _unchanged(previous: pa.Table, files: dict[str, tuple[str, str, os.stat_result]], sources: str) -> bool:
    """Same files with the same size and mtime, and the same joined release files, as the previous run."""
    if (previous.schema.metadata or {}).get(b"hyperkvasir.sources", b"").decode() != sources:
        return False
    if previous.num_rows != len(files):
        return False
    paths, sizes, mtimes = (previous.column(c).to_pylist() for c in ("path", "bytes", "mtime_ns"))
    for path, size, mtime in zip(paths, sizes, mtimes):
        entry = files.get(path)
        if entry is None or entry[2].st_size != size or entry[2].st_mtime_ns != mtime:
            return False
    return True


def _run_jobs(jobs: list[tuple[str, str, str]], workers: int | None, progress) -> list[dict]:
    workers = workers or os.cpu_count() or 1
    with process_pool(workers, len(jobs), minimum=32) as pool:
        results = pool.map(_content_job, jobs, chunksize=max(1, min(64, len(jobs) // (workers * 8))))
        return list(progress(results, len(jobs)) if progress else results)


def _previous_table(target: Path) -> pa.Table | None:
    if not target.is_file():
        return None
    try:
        table = pq.read_table(target)
    except (OSError, pa.ArrowException):
        return None  # an unreadable cache is rebuilt, never trusted
    return table if table.schema.names == SCHEMA.names else None
