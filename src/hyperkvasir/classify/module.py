"""Train one classification fold: model selection on the validation carve-out only, never on the test fold.

A run folder holds ``config.json``, ``metrics.csv``/``metrics.json`` (one row per epoch), ``last.pt`` (every
epoch, for ``resume``), ``best.pt`` (best validation macro-F1), ``predictions-test.csv`` and
``metrics-test.json``. Each epoch is seeded from (seed, epoch), so a resumed run reaches the same result as an
uninterrupted one. Under ``torchrun`` the same code runs DistributedDataParallel (NCCL on GPU, gloo on CPU).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from hyperkvasir.data.imaging import atomic_write
from hyperkvasir.data.index import build_index
from hyperkvasir.data.splits import assignment
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.classify.data import balanced_sampler, open_labeled
from hyperkvasir.datasets.batches import collate_skipping
from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.errors import HyperKvasirError
from hyperkvasir.metrics.classification import (
    classification_metrics,
    plot_confusion_matrix,
)
from hyperkvasir.models import MODELS, ModelSpec, create_model
from hyperkvasir.classify.predict import usable_pseudo_labels
from hyperkvasir.train.runs import (
    distributed,
    pick_device,
    restore_training_state,
    save_checkpoint,
    seed_everything,
    training_state,
    write_history,
)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that determines a run; saved as ``config.json`` and read back by ``--resume``."""

    root: str
    model: str = "tf_efficientnet_lite0"
    fold: int = 0  # the test fold
    scheme: str = "official-2fold"
    out: str = "runs/classify"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "sgd"  # sgd (the paper: momentum 0.9) | adamw
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | plateau (the paper's ReduceLROnPlateau, factor 0.1, patience 10)
    patience: int = 0  # early stopping after this many epochs without a better validation macro-F1 (0 = off)
    input_size: int = 224
    recipe: str = "paper"  # paper | modern
    balanced: bool = False  # class-balanced sampling for the rare classes
    label_smoothing: float = 0.0
    pretrained: bool = True
    weights: str | None = None
    weights_partial: bool = False  # load only the matching tensors of --weights (counts go to weights_from)
    val_fraction: float = 0.1
    seed: int = 0
    workers: int = 2
    cache: bool = True
    amp: bool = True  # used on GPU only
    device: str = "auto"
    max_steps_per_epoch: int = 0  # 0 = whole epoch; tests use a few steps
    pseudo_labels: str | None = None  # CSV path,label (from `hyperkvasir predict` + pseudo-labels) added to training
    exclude_conflicts: bool = False  # leave out images whose duplicates carry another class (audit label conflicts)
    extra: dict = field(default_factory=dict)


def _optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    raise HyperKvasirError(f"unknown optimizer {config.optimizer!r}; choose sgd or adamw")


def _scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs))
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=10)
    raise HyperKvasirError(f"unknown schedule {config.schedule!r}; choose cosine or plateau")


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device, amp: bool,
            spec: ModelSpec) -> tuple[list, np.ndarray, list]:
    """(file names, softmax probabilities (N, 23), true labels) over a loader of uint8 batches."""
    model.eval()
    names, probs, labels = [], [], []
    for batch in loader:
        if batch is None:
            continue
        images, targets, batch_names, _ = batch
        images = normalise(images.to(device, non_blocking=True), spec.mean, spec.std)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            logits = model(images)
        probs.append(torch.softmax(logits.float(), 1).cpu().numpy())
        names += batch_names
        labels += targets.tolist()
    return names, np.concatenate(probs) if probs else np.zeros((0, len(CLASSES))), labels


def write_predictions(path: Path, names: list[str], probs: np.ndarray) -> None:
    """The documented predictions CSV: ``file-name,label,<one probability column per class folder name>``."""
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file-name", "label", *(c.folder for c in CLASSES)])
        for name, row in zip(names, probs):
            writer.writerow([name, CLASSES[int(row.argmax())].folder, *(f"{p:.6f}" for p in row)])


def train_classifier(config: TrainConfig, *, resume: bool = False, progress=None) -> dict:
    """Train, select on validation, test once; return the test metrics (rank 0) or {} (other ranks)."""
    rank, world = distributed()
    device = pick_device(config.device)
    run = Path(config.out)
    if resume:
        saved = json.loads((run / "config.json").read_text())
        config = TrainConfig(**{**saved, "root": config.root, "out": config.out})
    elif rank == 0:
        if (run / "last.pt").exists():
            raise HyperKvasirError(f"{run}: a run is already there; pass --resume to continue it or choose --out")
        run.mkdir(parents=True, exist_ok=True)
        with atomic_write(run / "config.json", "w") as handle:
            json.dump(dataclasses.asdict(config), handle, indent=2)
    if config.model not in MODELS:
        raise HyperKvasirError(f"unknown model {config.model!r}; choose one of {', '.join(MODELS)}")
    spec = MODELS[config.model]
    root = Path(config.root)
    manifest = build_index(root).to_pylist() if rank == 0 else None
    if world > 1:
        holder = [manifest]
        dist.broadcast_object_list(holder)
        manifest = holder[0]
    subsets = assignment(root, config.scheme, fraction=config.val_fraction, seed=config.seed).subsets(config.fold)
    excluded = drop_label_conflicts(root, subsets) if config.exclude_conflicts else {}
    common = dict(input_size=config.input_size, use_cache=config.cache, manifest=manifest,
                  progress=progress if rank == 0 else None)
    if world > 1 and rank != 0 and config.cache:
        dist.barrier()  # rank 0 builds the cache first
    extra, pseudo_report = (usable_pseudo_labels(config.pseudo_labels, root, scheme=config.scheme, fold=config.fold,
                                                 test_files=subsets["test"]) if config.pseudo_labels else ([], {}))
    train_set = open_labeled(root, subsets["train"], train=True, recipe=config.recipe, seed=config.seed,
                             extra=extra, **common)
    if world > 1 and rank == 0 and config.cache:
        dist.barrier()
    val_set = open_labeled(root, subsets["val"], **common)
    test_set = open_labeled(root, subsets["test"], **common)
    if not len(train_set) or not len(val_set):
        raise HyperKvasirError(f"{root}: fold {config.fold} leaves {len(train_set)} training and {len(val_set)} "
                               "validation images; the tree is too small for this split")

    seed_everything(config.seed)
    model, weights_from = create_model(config.model, pretrained=config.pretrained, weights=config.weights,
                                         weights_partial=config.weights_partial)
    model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                      else None) if world > 1 else model
    optimizer = _optimizer(config, model)
    scheduler = _scheduler(config, optimizer)
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and device.type == "cuda")
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    history: list[dict] = []
    best_f1, stale, start_epoch = -1.0, 0, 0
    if resume and (run / "last.pt").exists():
        state = restore_training_state(run / "last.pt", model, optimizer, scheduler, scaler, device)
        history, best_f1, stale, start_epoch = state["history"], state["best_f1"], state["stale"], state["epoch"] + 1

    eval_loader = dict(batch_size=config.batch_size, num_workers=config.workers, collate_fn=collate_skipping,
                       persistent_workers=False)
    val_loader = DataLoader(val_set, **eval_loader)
    skipped_total = len(train_set.skipped) + len(val_set.skipped) + len(test_set.skipped)
    for epoch in range(start_epoch, config.epochs):
        if config.patience and stale >= config.patience:
            break
        seed_everything(config.seed * 1000 + epoch)
        train_set.set_epoch(epoch)
        if world > 1:
            sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
            sampler.set_epoch(epoch)
        elif config.balanced:
            sampler = balanced_sampler(train_set, config.seed, epoch)
        else:
            sampler = torch.utils.data.RandomSampler(train_set,
                                                     generator=torch.Generator().manual_seed(config.seed * 1000 + epoch))
        loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers,
                            collate_fn=collate_skipping, drop_last=len(train_set) > config.batch_size)
        train_model.train()
        started, seen, loss_sum, skipped = time.perf_counter(), 0, 0.0, 0
        for step, batch in enumerate(loader):
            if config.max_steps_per_epoch and step >= config.max_steps_per_epoch:
                break
            if batch is None:
                continue
            images, targets, _, batch_skipped = batch
            skipped += batch_skipped
            images = normalise(images.to(device, non_blocking=True), spec.mean, spec.std)
            targets = targets.to(device, non_blocking=True)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            try:
                with torch.autocast(device.type, enabled=config.amp and device.type == "cuda"):
                    loss = loss_fn(train_model(images), targets)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            except torch.OutOfMemoryError:
                raise HyperKvasirError(
                    f"out of GPU memory at batch size {config.batch_size}; try --batch-size "
                    f"{max(1, config.batch_size // 2)}") from None
            seen += len(targets)
            loss_sum += float(loss.detach()) * len(targets)
        seconds = time.perf_counter() - started
        row = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "train_images": seen,
               "images_per_s": seen * world / seconds if seconds else 0.0, "lr": optimizer.param_groups[0]["lr"],
               "skipped_images": skipped + (skipped_total if epoch == 0 else 0)}
        improved = False
        if rank == 0:
            names, probs, labels = predict(model, val_loader, device, config.amp, spec)
            val = classification_metrics(labels, probs.argmax(1))
            row |= {"val_macro_f1": val["macro_f1"], "val_accuracy": val["accuracy"], "val_mcc": val["mcc"]}
            improved = val["macro_f1"] > best_f1
        if world > 1:
            holder = [row, improved]
            dist.broadcast_object_list(holder)
            row, improved = holder
        if config.schedule == "plateau":
            scheduler.step(row["val_macro_f1"])
        else:
            scheduler.step()
        history.append(row)
        if improved:
            best_f1, stale = row["val_macro_f1"], 0
        else:
            stale += 1
        if rank == 0:
            state = {**training_state(model, optimizer, scheduler, scaler), "epoch": epoch, "history": history,
                     "best_f1": best_f1, "stale": stale, "config": dataclasses.asdict(config),
                     "weights_from": weights_from}
            if improved:
                save_checkpoint(state, run / "best.pt")
            save_checkpoint(state, run / "last.pt")
            write_history(run, history)
            log.info("epoch %d: %s", epoch, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    if rank != 0:
        dist.barrier()
        return {}
    best = torch.load(run / "best.pt", map_location=device, weights_only=False)
    model.load_state_dict(best["model"])
    names, probs, labels = predict(model, DataLoader(test_set, **eval_loader), device, config.amp, spec)
    write_predictions(run / "predictions-test.csv", names, probs)
    metrics = classification_metrics(labels, probs.argmax(1)) | {
        "best_epoch": best["epoch"], "weights_from": weights_from, "skipped_images": skipped_total,
        "model": config.model, "fold": config.fold, "scheme": config.scheme,
        "excluded_label_conflicts": excluded, "pseudo_labels": pseudo_report}
    with atomic_write(run / "metrics-test.json", "w") as handle:
        json.dump(metrics, handle, indent=2)
    plot_confusion_matrix(metrics, run / "confusion-test.png",
                          f"{config.model}, test fold {config.fold}: macro F1 {metrics['macro_f1']:.3f}")
    if world > 1:
        dist.barrier()
    return metrics


def drop_label_conflicts(root: Path, subsets: dict[str, list[str]]) -> dict[str, int]:
    """Remove the audit's label-conflict images from every subset in place; returns how many left each."""
    from hyperkvasir.data.audit import audit

    conflicting = {Path(f).name for c in audit(root).label_conflicts for f in c["files"]}
    dropped = {}
    for name, files in subsets.items():
        kept = [f for f in files if f not in conflicting]
        dropped[name] = len(files) - len(kept)
        files[:] = kept
    return dropped


__all__ = ["TrainConfig", "train_classifier", "predict", "write_predictions", "drop_label_conflicts"]
