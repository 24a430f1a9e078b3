"""Video-level evaluation: frame predictions aggregated per video, scored with the official metrics."""

from __future__ import annotations

from collections import Counter, defaultdict

import lightning as L
import numpy as np
import torch

from hyperkvasir.data.taxonomy import VIDEO_CLASS_NAMES
from hyperkvasir.metrics.classification import classification_metrics


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
