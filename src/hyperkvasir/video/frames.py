"""Extract JPEG frames from the labeled videos with PyAV: parallel over videos, resumable, never half-written.

Frames are ``OUT/<video stem>/<video stem>_<frame index:06d>.jpg`` (index of the decoded frame, from 0). A
video's frames are written into ``OUT/.<video stem>.partial/`` and renamed into place whole, so a folder holds the
frames of one ``every``/``fps``/``size`` only (a rerun with others replaces it). A video is finished when its
``.done.json`` marker exists, so a killed run continues where it stopped (finished videos are skipped, frames
already in the partial folder are not rewritten).
Frames are decoded, scaled (short side ``size``) and encoded by ``video/decode.py``, the decode ``predict`` repeats
(the pixels training reads back equal those predict scores). ``OUT/frames.parquet`` lists every frame (video,
frame index, time, path). A video that does not decode is reported by name and the others go on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hyperkvasir.data.layout import Release
from hyperkvasir.errors import HyperKvasirError
from hyperkvasir.outputs import atomic_write, exclusive, mark, promote, remove_folder
from hyperkvasir.parallel import process_pool
from hyperkvasir.video.decode import VideoDecodeError, decode_frames, frame_jpeg

MARKER = ".done.json"
COMMAND = "video frames"


@dataclass
class FramesReport:
    videos: int = 0
    frames: int = 0
    skipped_finished: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # video path -> reason
    manifest: str = ""


def _finished(folder: Path, params: dict) -> list | None:
    """The frames of a video already extracted into ``folder`` with ``params``, else None."""
    marker = folder / MARKER
    if not marker.is_file():
        return None
    done = json.loads(marker.read_text())
    return [tuple(f) for f in done["frames"]] if done["params"] == params else None


def _partial(out: Path, stem: str, params: dict) -> Path:
    """The staging folder of one video's frames, kept across a killed run with the same ``params`` (its frames
    are not rewritten) and cleared when they differ."""
    partial = out / f".{stem}.partial"
    recorded = partial / ".params.json"
    if partial.is_dir() and (not recorded.is_file() or json.loads(recorded.read_text()) != params):
        remove_folder(partial, COMMAND, "OUT")
    partial.mkdir(parents=True, exist_ok=True)
    mark(partial, COMMAND)
    recorded.write_text(json.dumps(params))
    return partial


def _extract_one(job: tuple[str, str, int | None, float | None, int | None]) -> tuple[str, list, str | None, bool]:
    """(video, [(frame index, time s, relative path)], error, was already finished)."""
    video, out, every, fps, size = job
    stem = Path(video).stem
    params = {"every": every, "fps": fps, "size": size}
    done = _finished(Path(out) / stem, params)
    if done is not None:
        return video, done, None, True
    partial = _partial(Path(out), stem, params)
    frames, error = _decode(video, partial, stem, every, fps, size)
    if not frames:
        remove_folder(partial, COMMAND, "OUT")
        return video, frames, error, False
    if error is None:
        with atomic_write(partial / MARKER, "w") as handle:
            json.dump({"params": params, "frames": frames}, handle)
    (partial / ".params.json").unlink()
    promote(partial, Path(out) / stem, COMMAND, "OUT")  # the frames of one size and step, never a mixture
    return video, frames, error, False


def _decode(
    video: str, folder: Path, stem: str, every: int | None, fps: float | None, size: int | None
) -> tuple[list, str | None]:
    """Write the selected frames of ``video`` into ``folder`` (those already there are kept); (frames, error)."""
    frames: list = []
    try:
        for index, time_s, rgb in decode_frames(video, every=every, fps=fps, size=size):
            name = f"{stem}_{index:06d}.jpg"
            if not (folder / name).exists():
                with atomic_write(folder / name) as handle:
                    handle.write(frame_jpeg(rgb))
            frames.append((index, round(time_s, 4), f"{stem}/{name}"))
    except VideoDecodeError as error:
        return frames, str(error)
    return frames, None


def extract_frames(
    root: str | Path,
    out: str | Path,
    *,
    every: int | None = None,
    fps: float | None = None,
    size: int | None = None,
    workers: int | None = None,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> FramesReport:
    """Frames of every labeled video under ``root`` into ``out``; see the module docstring."""
    if every is not None and fps is not None:
        raise HyperKvasirError("give --every N or --fps F, not both")
    if (every is not None and every < 1) or (fps is not None and fps <= 0):
        raise HyperKvasirError("--every must be ≥ 1 and --fps > 0")
    release = Release(root)
    release.require("videos")
    out = Path(out)
    with exclusive(out, COMMAND, "OUT"):
        return _extract_all(release, out, every, fps, size, workers, progress)


def _extract_all(
    release: Release, out: Path, every: int | None, fps: float | None, size: int | None, workers: int | None, progress
) -> FramesReport:
    videos = release.video_files()
    jobs = [(str(v), str(out), every, fps, size) for v in videos]
    workers = workers or os.cpu_count() or 1
    report = FramesReport(videos=len(videos))
    rows: dict[str, list] = {"video": [], "frame_index": [], "time_s": [], "path": []}
    with process_pool(workers, len(jobs)) as pool:
        results = pool.map(_extract_one, jobs)
        for video, frames, error, finished in progress(results, len(jobs)) if progress else results:
            relative = str(Path(video).relative_to(release.root))
            if error:
                report.failed[relative] = error
            report.skipped_finished += finished
            for index, time_s, path in frames:
                rows["video"].append(relative)
                rows["frame_index"].append(index)
                rows["time_s"].append(time_s)
                rows["path"].append(path)
    for entry in release.skipped():  # a video behind a link that leaves the tree or points nowhere is not read
        if entry.path.startswith("labeled-videos/"):
            report.failed[entry.path] = f"{entry.code} ({entry.target or 'not a file'}); not read"
    report.frames = len(rows["path"])
    report.manifest = str(out / "frames.parquet")
    with atomic_write(out / "frames.parquet") as handle:
        pq.write_table(pa.table(rows), handle)
    return report
