"""Video-level evaluation: frame predictions aggregated per video, scored with the official metrics — of a
checkpoint's frames while it trains (:func:`frame_probabilities`), or of the per-frame output of ``hyperkvasir
predict CKPT ROOT --part videos`` against the release's video labels (:func:`evaluate_video_predictions`)."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath

import lightning as L
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from hyperkvasir.data.layout import Release
from hyperkvasir.data.tables import read_video_labels
from hyperkvasir.data.taxonomy import CLASSES, VIDEO_CLASS_NAMES, normalise_video_finding
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.metrics.classification import classification_metrics
from hyperkvasir.metrics.intervals import intervals, resampled

AGGREGATIONS = ("mean_probability", "majority_vote")
_PREDICT = "`hyperkvasir predict CKPT ROOT --part videos --out DIR`"


def video_level_metrics(frame_probs: dict[str, list[np.ndarray]], labels: dict[str, int]) -> dict:
    """Per-video predictions from frame probabilities, by mean probability and by majority vote, with the
    official metrics over videos for each."""
    videos = sorted(frame_probs)
    truth = [labels[v] for v in videos]
    mean = [int(np.mean(frame_probs[v], axis=0).argmax()) for v in videos]
    majority = [Counter(int(p.argmax()) for p in frame_probs[v]).most_common(1)[0][0] for v in videos]
    return {
        "videos": len(videos),
        "mean_probability": classification_metrics(truth, mean, VIDEO_CLASS_NAMES),
        "majority_vote": classification_metrics(truth, majority, VIDEO_CLASS_NAMES),
        "predictions": {
            v: {"truth": VIDEO_CLASS_NAMES[t], "mean": VIDEO_CLASS_NAMES[m], "majority": VIDEO_CLASS_NAMES[j]}
            for v, t, m, j in zip(videos, truth, mean, majority)
        },
    }


@torch.no_grad()
def frame_probabilities(module: L.LightningModule, loader) -> dict[str, list[np.ndarray]]:
    """Video → the softmax of each of its frames, for the ``(images, labels, videos, skipped)`` batches of
    ``loader``."""
    module.eval()
    per_video: dict[str, list[np.ndarray]] = defaultdict(list)
    for batch in loader:
        if batch is None:
            continue
        images, _, videos, _ = batch
        for video, prob in zip(videos, torch.softmax(module(images.to(module.device)).float(), 1).cpu().numpy()):
            per_video[video].append(prob)
    return per_video


def read_frame_predictions(folder: str | Path) -> dict[str, list[np.ndarray]]:
    """Video → per-frame probabilities over the video classes from the ``frames.parquet`` of a predict output
    folder; a folder predict did not write, or the 23 image classes of a classifier, are refused by name."""
    path = Path(folder) / "frames.parquet"
    if not path.is_file():
        raise HyperKvasirError(f"--pred {folder}: no frames.parquet there; give the OUT folder of {_PREDICT}")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error}); run {_PREDICT} again") from None
    columns = table.column_names
    found = [c for c in columns if c not in ("video", "frame_index", "time_s", "label")]
    if "video" not in columns or not found:
        raise HyperKvasirError(f"{path}: not the per-frame output of predict on videos; give the OUT of {_PREDICT}")
    if found == [c.folder for c in CLASSES]:
        raise HyperKvasirError(
            f"{path}: probabilities over the {len(CLASSES)} image classes of a classifier, which the video labels "
            f"do not use; score the videos with a video checkpoint (`hyperkvasir train video`) and evaluate that"
        )
    if found != list(VIDEO_CLASS_NAMES):
        raise HyperKvasirError(
            f"{path}: its class columns ({', '.join(found[:3])}, …) are not the {len(VIDEO_CLASS_NAMES)} video "
            f"classes; give the output of {_PREDICT} with a video checkpoint"
        )
    videos = table.column("video").to_pylist()
    matrix = np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in found], 1)
    per_video: dict[str, list[np.ndarray]] = defaultdict(list)
    for video, row in zip(videos, matrix):
        per_video[video].append(row)
    if not per_video:
        raise DataError(f"{path}: holds no scored frame; run {_PREDICT} again")
    return dict(per_video)


def video_truth(root: str | Path) -> dict[str, int | None]:
    """Video file stem → index in VIDEO_CLASS_NAMES of its main finding (None: a finding no class covers), from
    the release's video labels."""
    release = Release(root)
    release.require("videos")
    if release.video_labels_csv is None:
        raise DataError(f"{release.root}: labeled-videos/ holds no video-labels.csv; get the videos part again")
    labels = read_video_labels(release.video_labels_csv)
    classes = {label.stem: normalise_video_finding(label.main_finding) for label in labels}
    return {stem: None if name is None else VIDEO_CLASS_NAMES.index(name) for stem, name in classes.items()}


def evaluate_video_predictions(pred: str | Path, root: str | Path, *, seed: int = 0) -> dict:
    """:func:`video_level_metrics` of the labeled videos of a predict output folder, with a 95 % stratified
    bootstrap interval (``<key>_ci``) beside each headline metric of both aggregations; predicted videos the
    labels do not name (``unlabeled``), name with a finding no video class covers (``unmapped``), and labeled
    videos the folder lacks (``not_predicted``) are counted beside."""
    frames = read_frame_predictions(pred)
    truth = video_truth(root)
    stems: dict[str, str] = {}
    for video in frames:
        stem = PurePosixPath(video).stem
        if stem in stems:
            raise DataError(
                f"{Path(pred) / 'frames.parquet'}: {stems[stem]} and {video} share the file name {stem!r}, which "
                f"names one labeled video; predict them in separate folders"
            )
        stems[stem] = video
    labeled = {video: label for stem, video in stems.items() if (label := truth.get(stem)) is not None}
    if not labeled:
        raise DataError(
            f"{Path(pred) / 'frames.parquet'}: none of its {len(frames)} videos is a labeled video of {root} "
            f"(first: {next(iter(frames))}); give the release whose videos were predicted"
        )
    metrics = video_level_metrics({v: frames[v] for v in labeled}, labeled)
    index = {name: i for i, name in enumerate(VIDEO_CLASS_NAMES)}
    truth_of = [labeled[v] for v in sorted(labeled)]
    for key, short in zip(AGGREGATIONS, ("mean", "majority")):
        decided = [index[metrics["predictions"][v][short]] for v in sorted(labeled)]
        metrics[key] |= intervals(resampled(truth_of, decided, classes=len(VIDEO_CLASS_NAMES), seed=seed))
    return metrics | {
        "unlabeled": sorted(video for stem, video in stems.items() if stem not in truth),
        "unmapped": sorted(video for stem, video in stems.items() if stem in truth and truth[stem] is None),
        "not_predicted": len(set(truth) - set(stems)),
    }
