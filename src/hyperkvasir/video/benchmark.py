"""``benchmark --task video``: frames → a frame classifier on the video classes → per-video evaluation.

Frames are extracted once (``OUT/frames``), a timm classifier is trained on the frames of the training videos,
the checkpoint is chosen on the validation videos (video-level accuracy of the mean probability), and the test
videos are scored per video by mean probability and by majority vote.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from hyperkvasir.data.imaging import atomic_write
from hyperkvasir.data.taxonomy import VIDEO_CLASS_NAMES
from hyperkvasir.datasets.batches import collate_skipping
from hyperkvasir.datasets.transforms import classification_transform, normalise
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.models import MODELS, create_model
from hyperkvasir.train.runs import (
    pick_device,
    save_checkpoint,
    seed_everything,
    write_history,
)
from hyperkvasir.video.frames import extract_frames
from hyperkvasir.video.data import (
    VideoFrames,
    video_labels,
    video_level_metrics,
    video_split,
)


@dataclass
class VideoBenchmarkConfig:
    root: str
    out: str = "benchmark-video"
    model: str = "tf_efficientnet_lite0"
    every: int = 5
    size: int = 96
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    workers: int = 0
    pretrained: bool = True
    device: str = "auto"
    select_on_train: bool = False  # allow choosing the checkpoint on training videos when no validation video exists


@torch.no_grad()
def _frame_probabilities(model, dataset: VideoFrames, device, spec, batch_size: int) -> dict[str, list[np.ndarray]]:
    model.eval()
    per_video: dict[str, list[np.ndarray]] = defaultdict(list)
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate_skipping):
        if batch is None:
            continue
        images, _, videos, _ = batch
        probs = torch.softmax(model(normalise(images.to(device), spec.mean, spec.std)).float(), 1).cpu().numpy()
        for video, prob in zip(videos, probs):
            per_video[video].append(prob)
    return per_video


def run_video_benchmark(config: VideoBenchmarkConfig) -> dict:
    """Check the model and the protocol, then extract frames, train, select on validation videos and test."""
    if config.model not in MODELS:
        raise HyperKvasirError(f"unknown model {config.model!r}; choose one of {', '.join(MODELS)}")
    split = video_split(config.root, seed=config.seed)
    if not split["val"] and not config.select_on_train:
        raise DataError(
            f"{config.root}: the video split has no validation video ({len(split['train'])} train, "
            f"{len(split['test'])} test), so the checkpoint would be chosen on training videos; add videos or "
            f"pass --select-on-train to accept that protocol (it is printed in results.md)")
    out = Path(config.out)
    device = pick_device(config.device)
    frames = extract_frames(config.root, out / "frames", every=config.every, size=config.size)
    labels = video_labels(config.root)
    spec = MODELS[config.model]
    train = VideoFrames(out / "frames", labels, split["train"], size=config.size,
                        transform=classification_transform("paper", config.size, True))
    val = VideoFrames(out / "frames", labels, split["val"] or split["train"], size=config.size)
    test = VideoFrames(out / "frames", labels, split["test"], size=config.size)
    seed_everything(config.seed)
    model, weights_from = create_model(config.model, pretrained=config.pretrained, num_classes=len(VIDEO_CLASS_NAMES))
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    history, best = [], -1.0
    for epoch in range(config.epochs):
        seed_everything(config.seed * 1000 + epoch)
        model.train()
        loader = DataLoader(train, batch_size=config.batch_size, shuffle=True, num_workers=config.workers,
                            collate_fn=collate_skipping, generator=torch.Generator().manual_seed(config.seed + epoch))
        seen = 0
        for batch in loader:
            if batch is None:
                continue
            images, targets, _, _ = batch
            loss = nn.functional.cross_entropy(model(normalise(images.to(device), spec.mean, spec.std)),
                                               targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(targets)
        val_metrics = video_level_metrics(_frame_probabilities(model, val, device, spec, config.batch_size), labels)
        accuracy = val_metrics["mean_probability"]["accuracy"]
        history.append({"epoch": epoch, "train_frames": seen, "val_video_accuracy": accuracy})
        if accuracy > best:
            best = accuracy
            save_checkpoint({"model": model.state_dict(), "epoch": epoch, "config": dataclasses.asdict(config),
                             "classes": list(VIDEO_CLASS_NAMES)}, out / "best.pt")
        write_history(out, history)
    model.load_state_dict(torch.load(out / "best.pt", map_location=device, weights_only=False)["model"])
    results = {"config": dataclasses.asdict(config), "weights_from": weights_from, "frames": frames.frames,
               "failed_videos": frames.failed, "split": {k: len(v) for k, v in split.items()},
               "validation_from": "val videos" if split["val"] else "train videos (no val video in this tree)",
               "test": video_level_metrics(_frame_probabilities(model, test, device, spec, config.batch_size), labels)}
    with atomic_write(out / "results.json", "w") as handle:
        json.dump(results, handle, indent=2)
    test_metrics = results["test"]
    lines = ["# Video benchmark (per-video evaluation of a frame classifier)", "",
             f"Videos train/val/test: {results['split']}; {frames.frames} frames (every {config.every}th, "
             f"{config.size} px); model {config.model}.", "",
             f"Protocol: video-level split (seeded, duplicate videos kept together); checkpoint chosen on "
             f"{results['validation_from']}; test videos never seen in training or selection.", "",
             "| aggregation | accuracy | macro F1 | MCC |",
             "|---|---|---|---|"]
    for key in ("mean_probability", "majority_vote"):
        m = test_metrics[key]
        lines.append(f"| {key.replace('_', ' ')} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['mcc']:.3f} |")
    with atomic_write(out / "results.md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return results
