"""A video checkpoint on video files: per-frame findings, a smoothed per-second timeline and a strip image.

``OUT/frames.parquet`` holds one row per scored frame (every ``every``-th): video, frame index, time, the top
finding and one probability column per video class. ``OUT/timeline.csv`` gives, per video and second, the
finding with the highest probability after averaging the frames of that second and smoothing over
:data:`SMOOTHING_SECONDS`; ``OUT/<video>-strip.png`` draws that timeline as coloured blocks with a legend. A video
is named by its path below the input folder it was found in (``site1/case.avi``), so two folders' ``case.avi`` keep
their own rows and strips; OUT is staged and appears whole, or not at all.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from hyperkvasir.data.imaging import atomic_write, centre_square
from hyperkvasir.data.inputs import output_names, video_inputs
from hyperkvasir.data.layout import escaped
from hyperkvasir.data.taxonomy import VIDEO_CLASS_NAMES
from hyperkvasir.engine.runs import pick_device
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.outputs import staged_folder
from hyperkvasir.video.module import load_video_checkpoint

SMOOTHING_SECONDS = 3  # a centred moving average over this many seconds steadies the timeline
_BATCH = 32


def _frames(path: Path, every: int, size: int):
    """(frame index, time in s, uint8 CHW tensor) of every ``every``-th decodable frame."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        for index, frame in enumerate(container.decode(stream)):
            if index % every == 0:
                square = centre_square(frame.to_ndarray(format="rgb24"), size)
                yield index, index / rate, torch.from_numpy(square).permute(2, 0, 1)


def _timeline(times: np.ndarray, probs: np.ndarray) -> list[tuple[int, str, float]]:
    seconds = np.floor(times).astype(int)
    per_second = np.stack([probs[seconds == s].mean(0) if (seconds == s).any() else np.zeros(probs.shape[1])
                           for s in range(seconds.max() + 1)])
    kernel = np.ones(SMOOTHING_SECONDS) / SMOOTHING_SECONDS
    smooth = np.stack([np.convolve(per_second[:, c], kernel, mode="same") for c in range(probs.shape[1])], 1)
    return [(s, VIDEO_CLASS_NAMES[int(row.argmax())], float(row.max())) for s, row in enumerate(smooth)]


def _strip(video: str, timeline: list[tuple[int, str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    findings = sorted({f for _, f, _ in timeline})
    colours = {f: plt.get_cmap("tab20")(i % 20) for i, f in enumerate(findings)}
    figure, axis = plt.subplots(figsize=(min(14, 2 + len(timeline) * 0.08), 1.6))
    for second, finding, _ in timeline:
        axis.axvspan(second, second + 1, color=colours[finding])
    axis.set(xlim=(0, len(timeline)), yticks=[], xlabel="seconds", title=video)
    axis.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colours[f]) for f in findings], labels=findings,
                loc="upper center", bbox_to_anchor=(0.5, -0.6), ncol=min(4, len(findings)), fontsize=7, frameon=False)
    figure.tight_layout()
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)


@torch.no_grad()
def predict_videos(checkpoint: str | Path, inputs: list[str | Path], out: str | Path, *, every: int = 5,
                   device: str = "auto", progress=None) -> dict:
    """Score the video files among ``inputs`` (folders searched) and write OUT's frames, timeline and strips."""
    videos = video_inputs(inputs)
    if not videos:
        raise HyperKvasirError(f"no video file (.avi, .mpg, .mp4) in {', '.join(map(str, inputs))}")
    module, _ = load_video_checkpoint(checkpoint, pick_device(device))
    with staged_folder(out, "predict", reads=inputs) as staging:
        summary = _score_videos(module, dict(zip(videos, output_names(videos, inputs))), staging, every, progress)
    return summary | {"out": str(out)}


def _score_videos(module, name_of: dict[Path, str], out: Path, every: int, progress) -> dict:
    """Write every decodable video's rows, timeline and ``<name>-strip.png`` into ``out``; rows and timeline name a
    video ``<name><suffix>`` (``name_of`` gives names without suffix, as for images)."""
    videos = list(name_of)
    rows: dict[str, list] = {"video": [], "frame_index": [], "time_s": [], "label": []}
    probabilities, timelines, failed = [], {}, {}
    for video in progress(videos, len(videos)) if progress else videos:
        indices, times, probs, batch = [], [], [], []
        try:
            for index, time_s, tensor in _frames(video, every, module.config.size):
                indices.append(index)
                times.append(time_s)
                batch.append(tensor)
                if len(batch) == _BATCH:
                    probs.append(torch.softmax(module(torch.stack(batch).to(module.device)).float(), 1).cpu().numpy())
                    batch = []
            if batch:
                probs.append(torch.softmax(module(torch.stack(batch).to(module.device)).float(), 1).cpu().numpy())
        except Exception as error:  # noqa: BLE001 (PyAV raises many types for a damaged file)
            failed[str(video)] = f"{type(error).__name__}: {error}"
            continue
        if not probs:
            failed[str(video)] = "no frame decoded"
            continue
        matrix, name = np.concatenate(probs), escaped(f"{name_of[video]}{video.suffix}")  # Parquet holds UTF-8 only
        rows["video"] += [name] * len(indices)
        rows["frame_index"] += indices
        rows["time_s"] += [round(t, 3) for t in times]
        rows["label"] += [VIDEO_CLASS_NAMES[int(i)] for i in matrix.argmax(1)]
        probabilities.append(matrix)
        timelines[name] = _timeline(np.asarray(times), matrix)
        _strip(name, timelines[name], out / f"{name_of[video]}-strip.png")
    if not probabilities:
        raise DataError(f"none of the {len(videos)} videos decodes (first: {next(iter(failed))}); nothing written")
    matrix = np.concatenate(probabilities)
    table = pa.table(rows | {name: matrix[:, i].astype(np.float32) for i, name in enumerate(VIDEO_CLASS_NAMES)})
    with atomic_write(out / "frames.parquet") as handle:
        pq.write_table(table, handle)
    with atomic_write(out / "timeline.csv", "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["video", "second", "finding", "probability"])
        for video, timeline in timelines.items():
            writer.writerows((video, s, f, f"{p:.4f}") for s, f, p in timeline)
    return {"videos": len(timelines), "frames": table.num_rows, "failed": failed}
