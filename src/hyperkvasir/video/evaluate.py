"""Video-level evaluation: frame predictions aggregated per video, scored with the official metrics."""

from __future__ import annotations

from collections import Counter

import numpy as np

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
