"""Train the polyp segmentation baseline on the seeded, duplicate-aware segmentation split.

The run folder mirrors the classification one: ``config.json``, ``metrics.csv``/``metrics.json``, ``last.pt``,
``best.pt`` (best validation Dice; the test part is never looked at before the end), ``predictions/`` (test
probability maps as 8-bit PNGs at the ground-truth size) and ``metrics-test.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from hyperkvasir.data.imaging import atomic_write, header_size
from hyperkvasir.data.layout import Release
from hyperkvasir.data.splits import segmentation_scheme_split
from hyperkvasir.segment.data import SegmentedPolyps, collate_segmentation
from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.errors import HyperKvasirError
from hyperkvasir.metrics.segmentation import PROBABILITY_THRESHOLD
from hyperkvasir.segment.loss import segmentation_loss
from hyperkvasir.segment.model import create_unet
from hyperkvasir.train.runs import (
    pick_device,
    restore_training_state,
    save_checkpoint,
    seed_everything,
    training_state,
    write_history,
)

log = logging.getLogger(__name__)


@dataclass
class SegmentConfig:
    root: str
    model: str = "tf_efficientnet_lite0"  # the encoder
    out: str = "runs/segment"
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-4
    size: int = 352
    loss: str = "structure"  # structure | dice
    pretrained: bool = True
    weights: str | None = None
    weights_partial: bool = False
    seed: int = 0
    workers: int = 2
    amp: bool = True
    device: str = "auto"
    max_steps_per_epoch: int = 0
    scheme: str = "segmentation"  # segmentation (duplicate-aware 80/10/10) | kvasir-seg-official (880/120)


def _mean_std(model) -> tuple[tuple[float, ...], tuple[float, ...]]:
    config = getattr(model.encoder, "pretrained_cfg", {}) or {}
    return tuple(config.get("mean", (0.5,) * 3)), tuple(config.get("std", (0.5,) * 3))


@torch.no_grad()
def predict_probabilities(model, dataset: SegmentedPolyps, device: torch.device, amp: bool, batch_size: int = 8):
    """Yield (file name, probability map at the original image size, float32 in [0, 1])."""
    model.eval()
    mean, std = _mean_std(model)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_segmentation)  # in dataset order
    index = 0
    for batch in loader:
        images = normalise(batch["image"].to(device), mean, std)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            probs = torch.sigmoid(model(images).float())[:, 0].cpu().numpy()
        for name, prob in zip(batch["name"], probs):
            width, height = header_size(dataset.images[index])
            index += 1
            yield name, cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)


def _validation_dice(model, dataset: SegmentedPolyps, device: torch.device, amp: bool) -> float:
    """Mean per-image Dice at the metrics' probability threshold, at the network's resolution (cheap; the full metrics run on the test part)."""
    model.eval()
    mean, std = _mean_std(model)
    scores = []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=8, collate_fn=collate_segmentation):
            with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
                logits = model(normalise(batch["image"].to(device), mean, std)).float()
            pred = (torch.sigmoid(logits[:, 0]) > PROBABILITY_THRESHOLD).float().cpu()
            truth = batch["mask"]
            inter = (pred * truth).sum((1, 2))
            total = pred.sum((1, 2)) + truth.sum((1, 2))
            scores += torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.zeros_like(total)).tolist()
    return float(np.mean(scores)) if scores else 0.0


def train_segmenter(config: SegmentConfig, *, resume: bool = False) -> dict:
    """Train, select on the validation part, predict the test part; return the test metrics."""
    from hyperkvasir.segment.evaluate import evaluate_segmentation

    run = Path(config.out)
    if resume:
        saved = json.loads((run / "config.json").read_text())
        config = SegmentConfig(**{**saved, "root": config.root, "out": config.out})
    else:
        if (run / "last.pt").exists():
            raise HyperKvasirError(f"{run}: a run is already there; pass --resume to continue it or choose --out")
        run.mkdir(parents=True, exist_ok=True)
        with atomic_write(run / "config.json", "w") as handle:
            json.dump(dataclasses.asdict(config), handle, indent=2)
    device = pick_device(config.device)
    split = segmentation_scheme_split(config.root, config.scheme, seed=config.seed)
    if not split.train or not split.val or not split.test:
        raise HyperKvasirError(f"{config.root}: the {config.scheme} split has {len(split.train)}/{len(split.val)}/"
                               f"{len(split.test)} train/val/test images; at least one each is needed")
    train_set = SegmentedPolyps(config.root, list(split.train), size=config.size, train=True, seed=config.seed)
    val_set = SegmentedPolyps(config.root, list(split.val), size=config.size)
    test_set = SegmentedPolyps(config.root, list(split.test), size=config.size)

    seed_everything(config.seed)
    model, weights_from = create_unet(config.model, pretrained=config.pretrained, weights=config.weights,
                                       weights_partial=config.weights_partial)
    model.to(device)
    mean, std = _mean_std(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs))
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and device.type == "cuda")
    loss_fn = segmentation_loss(config.loss)
    history, best, start = [], -1.0, 0
    if resume and (run / "last.pt").exists():
        state = restore_training_state(run / "last.pt", model, optimizer, scheduler, scaler, device)
        history, best, start = state["history"], state["best"], state["epoch"] + 1
    for epoch in range(start, config.epochs):
        seed_everything(config.seed * 1000 + epoch)
        train_set.set_epoch(epoch)
        sampler = RandomSampler(train_set, generator=torch.Generator().manual_seed(config.seed * 1000 + epoch))
        loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers,
                            collate_fn=collate_segmentation, drop_last=len(train_set) > config.batch_size)
        model.train()
        started, seen, loss_sum = time.perf_counter(), 0, 0.0
        for step, batch in enumerate(loader):
            if config.max_steps_per_epoch and step >= config.max_steps_per_epoch:
                break
            images = normalise(batch["image"].to(device, non_blocking=True), mean, std)
            masks = batch["mask"].to(device, non_blocking=True)[:, None]
            with torch.autocast(device.type, enabled=config.amp and device.type == "cuda"):
                loss = loss_fn(model(images).float(), masks)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            seen += len(images)
            loss_sum += float(loss.detach()) * len(images)
        seconds = time.perf_counter() - started
        scheduler.step()
        val_dice = _validation_dice(model, val_set, device, config.amp)
        row = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "train_images": seen,
               "images_per_s": seen / seconds if seconds else 0.0, "val_dice": val_dice}
        history.append(row)
        improved = val_dice > best
        best = max(best, val_dice)
        state = {**training_state(model, optimizer, scheduler, scaler), "epoch": epoch, "history": history, "best": best,
                 "config": dataclasses.asdict(config), "weights_from": weights_from}
        if improved:
            save_checkpoint(state, run / "best.pt")
        save_checkpoint(state, run / "last.pt")
        write_history(run, history)
        log.info("epoch %d: loss %.4f, val Dice %.4f, %.1f img/s", epoch, row["train_loss"], val_dice,
                 row["images_per_s"])
    model.load_state_dict(torch.load(run / "best.pt", map_location=device, weights_only=False)["model"])
    predictions = run / "predictions"
    predictions.mkdir(exist_ok=True)
    for name, prob in predict_probabilities(model, test_set, device, config.amp):
        ok, encoded = cv2.imencode(".png", np.round(prob * 255).astype(np.uint8))
        with atomic_write(predictions / f"{Path(name).stem}.png") as handle:
            handle.write(encoded.tobytes())
    release = Release(config.root)
    metrics = evaluate_segmentation(predictions, release.segmented_dir / "masks",
                                    boxes_json=release.bounding_boxes_json, subset=True)
    metrics |= {"encoder": config.model, "weights_from": weights_from, "best_epoch": max(
        range(len(history)), key=lambda i: history[i]["val_dice"]), "train_images_per_s": float(
        np.mean([h["images_per_s"] for h in history]))}
    with atomic_write(run / "metrics-test.json", "w") as handle:
        json.dump(metrics, handle, indent=2)
    return metrics
