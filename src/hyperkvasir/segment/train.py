"""``train segment``: polyp segmentation trained through the engine on the seeded, duplicate-aware split (or
Kvasir-SEG's official one).

The run folder is the engine's: ``config.json``, ``metrics.csv``/``metrics.json``, ``last.ckpt``, ``best.ckpt``
(best validation Dice; the test part is never looked at before the end), TensorBoard logs, ``curves.png``, then
``predictions/`` (test probability maps as 8-bit PNGs at the ground-truth size) and ``metrics-test.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from hyperkvasir.data.layout import Release
from hyperkvasir.engine import EngineOptions, RunFolder, fit
from hyperkvasir.outputs import atomic_write
from hyperkvasir.segment.config import SegmentConfig, check_segment_config
from hyperkvasir.segment.data import SegmentData
from hyperkvasir.segment.evaluate import evaluate_segmentation
from hyperkvasir.segment.module import SegmentModule
from hyperkvasir.segment.predict import mask_probabilities


def train_segment(config: SegmentConfig, *, resume: bool = False, progress: bool = False) -> dict:
    """Train through the engine, select on the validation part, predict the test part; the test metrics
    (rank 0) or {} (other processes)."""
    folder = RunFolder(config.out)
    config = folder.config_for(config, resume)
    check_segment_config(config)
    trainer, module, data = fit(
        lambda: (SegmentModule(config), SegmentData(config)),
        folder,
        EngineOptions.of_run(
            config, monitor="val_dice", progress=progress, precision="auto" if config.amp else "32-true"
        ),
        config=config,
        resume=resume,
    )
    if not trainer.is_global_zero:
        return {}
    best, checkpoint = SegmentModule.from_checkpoint(folder.best, module.device)
    predictions = folder.path / "predictions"
    predictions.mkdir(exist_ok=True)
    for name, prob in mask_probabilities(best, cast(SegmentData, data).test_set):
        ok, encoded = cv2.imencode(".png", np.round(prob * 255).astype(np.uint8))
        with atomic_write(predictions / f"{Path(name).stem}.png") as handle:
            handle.write(encoded.tobytes())
    release = Release(config.root)
    masks = release.root / "segmented-images" / "masks"  # Release.segmented_dir, which training needed
    metrics = evaluate_segmentation(predictions, masks, boxes_json=release.bounding_boxes_json, subset=True)
    history = json.loads((folder.path / "metrics.json").read_text())
    metrics |= {
        "encoder": config.model,
        "scheme": config.scheme,
        "weights_from": checkpoint.get("weights_from"),
        "best_epoch": checkpoint["epoch"],
        "world_size": trainer.world_size,
        "train_images_per_s": float(np.mean([h["train_images_per_s"] for h in history])),
    }
    with atomic_write(folder.path / "metrics-test.json", "w") as handle:
        json.dump(metrics, handle, indent=2)
    return metrics
