"""Any frame model on videos — a video checkpoint or a classifier — sharded over ranks and resumable per video:
per-frame findings, a smoothed per-second timeline and a strip image per video.

``OUT/frames.parquet`` holds one row per scored frame (every ``every``-th): video, frame index, time, the label and
one probability column per class of the checkpoint (the video classes, or the 23 labeled classes of a classifier).
``OUT/timeline.csv`` gives, per video and second, the finding decided after averaging the frames of that second and
smoothing over :data:`SMOOTHING_SECONDS`; ``OUT/<video>-strip.png`` draws that timeline as coloured blocks with a
legend. Video files are named by their path below the input folder they were found in (``site1/case.avi``), the
videos of ``--part videos`` by their path below the release root (their strips by the path below
``labeled-videos/``: ``OUT/lower-gi-tract/…/<uuid>-strip.png``).
Frames go through ``video/decode.py``, the decode of the training frames.

Each finished video is kept in ``<OUT>.work/`` beside OUT (its rows, timeline and strip, then a done marker naming
the file's size and modification time), so a killed run continues where it stopped; a work folder of another
checkpoint, ``--every`` or input size is refused rather than mixed. Under torchrun or ``srun`` the videos still to
score are shared over the ranks by file size (longest first, to the least loaded rank); once every rank is done,
rank 0 merges the videos into OUT, staged and renamed whole, and removes the work folder (kept while a video
failed, so a rerun retries only those).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from hyperkvasir.data.inputs import output_names, resolve_videos
from hyperkvasir.data.layout import escaped
from hyperkvasir.engine.runs import barrier, distributed, leave_together
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.outputs import atomic_write, refuse_replacing, remove_folder, staged_folder
from hyperkvasir.video.decode import VideoDecodeError, decode_frames, model_input

SMOOTHING_SECONDS = 3  # a centred moving average over this many seconds steadies the timeline
COMMAND = "predict"


def _argmax(probabilities: np.ndarray) -> np.ndarray:
    return probabilities.argmax(1)


@dataclass(frozen=True)
class FrameModel:
    """What the scorer needs of any checkpoint that classifies single frames."""

    probabilities: Callable[[torch.Tensor], torch.Tensor]  # uint8 (N, 3, S, S) on ``device`` → (N, classes)
    classes: tuple[str, ...]
    size: int
    device: torch.device
    identity: dict  # what makes its results differ (checkpoint hash, flips): a work folder of another is refused
    mask_corners: bool = False
    decide: Callable[[np.ndarray], np.ndarray] = _argmax  # class index per row of probabilities


@dataclass(frozen=True)
class _Video:
    path: Path
    row: str  # the ``video`` column: escaped path below the release root, or name with suffix
    name: str  # what its strip is named after (no suffix)

    @property
    def key(self) -> str:
        return hashlib.sha1(self.row.encode()).hexdigest()[:20]

    def stamp(self) -> dict:
        stat = self.path.stat()
        return {"video": self.row, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@dataclass
class _Work:
    """A rank's view of ``<OUT>.work``: which videos are finished, and their files."""

    folder: Path

    def done(self, video: _Video) -> dict | None:
        marker = self.folder / f"{video.key}.done.json"
        try:
            record = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        same_file = video.path.is_file() and {k: record.get(k) for k in ("video", "bytes", "mtime_ns")} == video.stamp()
        return record if same_file else None


def _timeline(
    times: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], decide: Callable[[np.ndarray], np.ndarray]
) -> list[tuple[int, str, float]]:
    """(second, finding, its probability) per second: the frames of each second averaged, then a centred moving
    average over :data:`SMOOTHING_SECONDS` of the seconds that hold scored frames (the ends and the gaps of a
    large ``--every`` are averaged over the seconds present, never over zeros); a second with no scored frame
    in its window has no row."""
    seconds = np.floor(times).astype(int)
    sums, counts = np.zeros((seconds.max() + 1, probs.shape[1])), np.zeros(seconds.max() + 1)
    np.add.at(sums, seconds, probs)
    np.add.at(counts, seconds, 1)
    present = (counts > 0).astype(float)
    kernel = np.ones(SMOOTHING_SECONDS)
    weight = np.convolve(present, kernel, mode="same")
    smooth = (
        np.stack(
            [np.convolve(sums[:, c] / np.maximum(counts, 1), kernel, mode="same") for c in range(probs.shape[1])], 1
        )
        / np.maximum(weight, 1)[:, None]
    )
    return [
        (int(s), classes[int(c)], float(smooth[s, c]))
        for s, c in zip(np.flatnonzero(weight), decide(smooth[weight > 0]))
    ]


def _strip(video: str, timeline: list[tuple[int, str, float]], path: Path) -> None:
    import matplotlib  # heavy, and only a finished video draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    findings = sorted({f for _, f, _ in timeline})
    colours = {f: plt.get_cmap("tab20")(i % 20) for i, f in enumerate(findings)}
    length = timeline[-1][0] + 1
    figure, axis = plt.subplots(figsize=(min(14, 2 + length * 0.08), 1.6))
    for second, finding, _ in timeline:
        axis.axvspan(second, second + 1, color=colours[finding])
    axis.set(xlim=(0, length), yticks=[], xlabel="seconds", title=video)
    axis.legend(
        handles=[plt.Rectangle((0, 0), 1, 1, color=colours[f]) for f in findings],
        labels=findings,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.6),
        ncol=min(4, len(findings)),
        fontsize=7,
        frameon=False,
    )
    figure.tight_layout()
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)


class _Decoded(IterableDataset):
    """Model inputs of the videos, each loader worker decoding whole videos of its own: ``(position, "frames",
    (frame indices, times, uint8 (N, 3, S, S)))`` in chunks of ``batch`` frames of one video (a video's batches
    never depend on the other videos, so a resumed or sharded run scores it as a whole run does), then
    ``(position, "end", None)`` or ``(position, "failed", reason)``."""

    def __init__(self, videos: list[Path], *, every: int, size: int, mask_corners: bool, batch: int) -> None:
        self.videos, self.every, self.size, self.mask_corners, self.batch = videos, every, size, mask_corners, batch

    def __iter__(self) -> Iterator[tuple]:
        worker = get_worker_info()
        positions = range(len(self.videos))[worker.id :: worker.num_workers] if worker else range(len(self.videos))
        for position in positions:
            indices, times, squares = [], [], []
            try:
                for index, time_s, rgb in decode_frames(self.videos[position], every=self.every, size=self.size):
                    indices.append(index)
                    times.append(time_s)
                    squares.append(model_input(rgb, self.size, mask_corners=self.mask_corners))
                    if len(squares) == self.batch:
                        yield position, "frames", (indices, times, _chw(squares))
                        indices, times, squares = [], [], []
                if squares:
                    yield position, "frames", (indices, times, _chw(squares))
            except VideoDecodeError as error:
                yield position, "failed", str(error)
                continue
            yield position, "end", None


def _chw(squares: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(squares)).permute(0, 3, 1, 2)


def _share(videos: list[_Video], rank: int, world: int) -> list[_Video]:
    """This rank's videos: longest file first to the least loaded rank (the same on every rank)."""
    loads, mine = [0] * world, []
    for video in sorted(videos, key=lambda v: (-v.path.stat().st_size, v.row)):
        least = loads.index(min(loads))
        loads[least] += video.path.stat().st_size or 1
        if least == rank:
            mine.append(video)
    return mine


@torch.no_grad()
def _score(
    model: FrameModel, videos: list[_Video], work: _Work, *, every: int, batch: int, workers: int
) -> Iterator[_Video]:
    """Score ``videos`` into the work folder, yielding each as it finishes (or fails)."""
    dataset = _Decoded(
        [v.path for v in videos], every=every, size=model.size, mask_corners=model.mask_corners, batch=batch
    )
    loader = DataLoader(
        dataset, batch_size=None, num_workers=min(workers, len(videos)), pin_memory=model.device.type == "cuda"
    )
    scored: dict[int, tuple[list, list, list]] = {}
    for position, kind, payload in loader:
        video = videos[position]
        if kind == "frames":
            indices, times, images = payload
            with torch.autocast(model.device.type, enabled=model.device.type == "cuda"):
                probs = model.probabilities(images.to(model.device, non_blocking=True)).float().cpu().numpy()
            rows = scored.setdefault(position, ([], [], []))
            rows[0].extend(indices)
            rows[1].extend(times)
            rows[2].append(probs)
            continue
        rows = scored.pop(position, ([], [], []))
        if kind == "failed":
            with atomic_write(work.folder / f"{video.key}.failed.json", "w") as handle:
                json.dump({"video": video.row, "reason": payload}, handle)
        else:
            _finish(model, video, work, *rows)
        yield video


def _finish(model: FrameModel, video: _Video, work: _Work, indices: list, times: list, probs: list) -> None:
    """A scored video's rows, timeline and strip into the work folder, then its done marker (written last)."""
    matrix = np.concatenate(probs)
    columns = {
        "video": [video.row] * len(indices),
        "frame_index": indices,
        "time_s": [round(float(t), 3) for t in times],
        "label": [model.classes[int(i)] for i in model.decide(matrix)],
    }
    table = pa.table(columns | {name: matrix[:, i].astype(np.float32) for i, name in enumerate(model.classes)})
    with atomic_write(work.folder / f"{video.key}.parquet") as handle:
        pq.write_table(table, handle)
    timeline = _timeline(np.asarray(times, dtype=float), matrix, model.classes, model.decide)
    _strip(video.row, timeline, work.folder / f"{video.key}.png")
    (work.folder / f"{video.key}.failed.json").unlink(missing_ok=True)
    with atomic_write(work.folder / f"{video.key}.done.json", "w") as handle:
        json.dump(video.stamp() | {"timeline": timeline}, handle)


def _open_work(out: Path, params: dict, rank: int, reads: list) -> _Work:
    """``<OUT>.work``, made by rank 0 when new (staged: it appears with its parameters); one of another run's
    parameters, or a folder predict did not make, is refused on every rank alike."""
    folder = out.with_name(f"{out.name}.work")
    if folder.is_dir():
        refuse_replacing(folder, COMMAND, "--out", reads=reads)  # only a work folder predict made is used
        try:
            recorded = json.loads((folder / "params.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = None
        if recorded != params:
            shown = (
                ", ".join(f"{k} {recorded.get(k)!r} → {v!r}" for k, v in params.items() if recorded.get(k) != v)
                if isinstance(recorded, dict)
                else "no params.json"
            )
            raise HyperKvasirError(
                f"--out {out}: {folder} holds the finished videos of another run ({shown}); "
                f"rerun with its checkpoint and options to continue it, or delete {folder} to "
                f"start over"
            )
    elif rank == 0:
        with staged_folder(folder, COMMAND, reads=reads) as staging:
            (staging / "params.json").write_text(json.dumps(params), encoding="utf-8")
    return _Work(folder)


def predict_videos(
    model: FrameModel,
    inputs: list[str | Path],
    out: str | Path,
    *,
    part: str | None = None,
    every: int = 5,
    batch_size: int = 32,
    workers: int = 0,
    progress=None,
) -> dict:
    """Score the videos of ``inputs`` (files, folders searched, or the release root with ``part="videos"``) with
    ``model`` and write OUT; returns the summary on rank 0 (``{"rank": r}`` on the others)."""
    paths, root = resolve_videos(inputs, part)
    if not paths:
        raise HyperKvasirError(f"no video file (.avi, .mpg, .mp4) in {', '.join(map(str, inputs))}")
    out, reads = Path(out), [root] if root else list(inputs)
    names = output_names(paths, inputs, root / "labeled-videos" if root else None)
    videos = [
        _Video(p, escaped(str(p.relative_to(root)) if root else f"{n}{p.suffix}"), n) for p, n in zip(paths, names)
    ]
    rank, world = distributed()
    refuse_replacing(out, COMMAND, "--out", reads=reads)  # before any work: OUT is replaced at the end
    work = _open_work(out, {"every": every, "size": model.size} | model.identity, rank, reads)
    pending = [v for v in videos if work.done(v) is None]
    barrier(world)  # every rank listed the same pending videos before any was scored
    mine = _share(pending, rank, world)
    finished = _score(model, mine, work, every=every, batch=batch_size, workers=workers)
    for _ in progress(finished, len(mine)) if progress else finished:
        pass
    leave_together(world)  # rank 0 merges alone
    if rank != 0:
        return {"rank": rank}
    return _merge(videos, work, out, reads, model.classes) | {
        "kept": len(videos) - len(pending),
        "scored": len(pending),
    }


def _merge(videos: list[_Video], work: _Work, out: Path, reads: list, classes: tuple[str, ...]) -> dict:
    """OUT from the work folder's finished videos, in input order; the work folder is removed unless a video
    failed (a rerun then retries only those)."""
    done = {v: record for v in videos if (record := work.done(v)) is not None}
    failed = {v.row: _failure(work, v) for v in videos if v not in done}
    if not done:
        remove_folder(work.folder, COMMAND, "--out")
        first = next(iter(failed.items()))
        raise DataError(f"none of the {len(videos)} videos decodes (first: {first[0]}: {first[1]}); nothing written")
    with staged_folder(out, COMMAND, reads=reads) as staging:
        table = pa.concat_tables([pq.read_table(work.folder / f"{v.key}.parquet") for v in done])
        with atomic_write(staging / "frames.parquet") as handle:
            pq.write_table(table, handle)
        with atomic_write(staging / "timeline.csv", "w") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["video", "second", "finding", "probability"])
            for video, record in done.items():
                writer.writerows((video.row, s, f, f"{p:.4f}") for s, f, p in record["timeline"])
        for video in done:
            strip = staging / f"{video.name}-strip.png"
            strip.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(work.folder / f"{video.key}.png", strip)
    if not failed:
        remove_folder(work.folder, COMMAND, "--out")
    return {"videos": len(done), "frames": table.num_rows, "classes": len(classes), "failed": failed, "out": str(out)}


def _failure(work: _Work, video: _Video) -> str:
    try:
        return json.loads((work.folder / f"{video.key}.failed.json").read_text(encoding="utf-8"))["reason"]
    except (OSError, ValueError, KeyError):
        return "not scored"
