"""``train video``: a frame classifier over the video classes, trained through the engine.

Frames come from ``hyperkvasir video frames`` (extracted into ``OUT/frames`` when no ``frames`` folder is given;
the extraction resumes). The checkpoint is chosen on the validation videos by the video-level accuracy of the
mean frame probability; the test videos are scored once at the end, per video.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import cast

from hyperkvasir.engine import EngineOptions, RunFolder, fit
from hyperkvasir.errors import DataError
from hyperkvasir.outputs import atomic_write
from hyperkvasir.video.config import VideoConfig, check_video_config
from hyperkvasir.video.data import VideoData, video_split
from hyperkvasir.video.evaluate import frame_probabilities, video_level_metrics
from hyperkvasir.video.module import VideoModule


def train_video(config: VideoConfig, *, resume: bool = False, progress: bool = False) -> dict:
    """Check the config and protocol, extract frames (resumable), train through the engine, select on the
    validation videos, score the test videos; returns the results (rank 0) or {} (other processes)."""
    folder = RunFolder(config.out)
    config = folder.config_for(config, resume)
    check_video_config(config)
    split = video_split(config.root, seed=config.seed)
    if not split["val"] and not config.select_on_train:
        raise DataError(
            f"{config.root}: the video split has no validation video ({len(split['train'])} train, "
            f"{len(split['test'])} test), so the checkpoint would be chosen on training videos; add videos or "
            f"pass --select-on-train to accept that protocol (it is printed in results.md)"
        )
    extract = None if config.frames else dict(every=config.every, size=config.size)
    trainer, module, datamodule = fit(
        lambda: (
            VideoModule(config),
            VideoData(
                Path(config.frames) if config.frames else folder.path / "frames",
                config.root,
                split,
                size=config.size,
                batch_size=config.batch_size,
                workers=config.workers,
                seed=config.seed,
                extract=extract,
            ),
        ),
        folder,
        EngineOptions.of_run(config, monitor="val_video_accuracy", progress=progress),
        config=config,
        resume=resume,
    )
    if not trainer.is_global_zero:
        return {}
    data = cast(VideoData, datamodule)
    best, checkpoint = VideoModule.from_checkpoint(folder.best, module.device)
    results = {
        "config": dataclasses.asdict(config),
        "weights_from": checkpoint.get("weights_from"),
        "best_epoch": checkpoint["epoch"],
        "frames": data.extracted.frames if data.extracted else None,
        "failed_videos": data.extracted.failed if data.extracted else {},
        "split": {k: len(v) for k, v in split.items()},
        "validation_from": "val videos" if split["val"] else "train videos (no val video in this tree)",
        "test": video_level_metrics(frame_probabilities(best, data.evaluation_loader(data.test_set)), data.labels),
    }
    with atomic_write(folder.path / "metrics-test.json", "w") as handle:
        json.dump(results, handle, indent=2)
    return results
