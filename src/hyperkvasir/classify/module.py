"""Classification as a LightningModule, and one fold trained through the engine.

Model selection uses the validation carve-out only, never the test fold. The run folder (the engine's) holds
``config.json``, ``metrics.csv``/``metrics.json`` (one row per epoch), ``last.ckpt``, ``best.ckpt`` (best
validation macro-F1), TensorBoard logs, ``curves.png``, and after the test ``predictions-test.csv``,
``metrics-test.json`` (with intervals and provenance) and ``confusion-test.png``; under the dev protocol the
scored part is the validation carve-out and the files are ``*-dev.*`` (no test image is opened). Under
``torchrun`` (or SLURM) the engine runs DDP.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from hyperkvasir.classify.data import ClassifyData
from hyperkvasir.classify.decision import decide, fit_offsets
from hyperkvasir.classify.losses import uc_distance_penalty
from hyperkvasir.data.splits import DEFAULT_VALIDATION_FRACTION, PROTOCOLS
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.datasets.transforms import RECIPES, normalise
from hyperkvasir.engine import EngineOptions, RunFolder, fit, zero_loss
from hyperkvasir.engine.runs import check_device, checkpoint_config, load_checkpoint
from hyperkvasir.errors import HyperKvasirError, require_choice, require_compatible, require_ranges
from hyperkvasir.metrics.classification import classification_metrics, plot_confusion_matrix, scored_metrics
from hyperkvasir.models import MODELS, NUM_CLASSES, create_model
from hyperkvasir.outputs import atomic_write
from hyperkvasir.provenance import provenance

if TYPE_CHECKING:
    from hyperkvasir.data.audit import AuditReport

log = logging.getLogger(__name__)
LOSSES = ("ce", "logit-adjusted", "uc-ordinal")


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
    loss: str = "ce"  # ce | logit-adjusted (Menon et al. 2021: CE of logits + tau·log prior; tau 1 = balanced softmax)
    # | uc-ordinal (CE plus the class-distance-weighted term over the UC grades, classify/losses.py)
    logit_tau: float = 1.0
    rare_below: int = 0  # classes with fewer training images get the strong label-safe augmentation (0 = off)
    decision_rule: bool = False  # per-class logit offsets fitted on the validation carve-out, applied at test/predict
    tta: bool = False  # test-time flips (identity, horizontal, vertical, both) averaged at test
    mask_corners: bool = False  # blank the ScopeGuide corner (imaging.CORNER_MASK) in every image, predict included
    pretrained: bool = True
    weights: str | None = None
    weights_partial: bool = False  # load only the matching tensors of --weights (counts go to weights_from)
    val_fraction: float = DEFAULT_VALIDATION_FRACTION
    seed: int = 0
    workers: int | None = None  # data-loading processes per rank; None = engine.runs.loader_workers()
    cache: bool = True
    amp: bool = True  # used on GPU only
    sync_batchnorm: bool = False  # under DDP: batch-norm statistics over the global batch (no effect on one process)
    freeze_batchnorm: bool = False  # batch norm on its running statistics while training (fine-tuning, CPU DDP)
    device: str = "auto"
    max_steps_per_epoch: int = 0  # 0 = whole epoch; tests use a few steps
    pseudo_labels: str | None = None  # CSV path,label (from `hyperkvasir predict` + pseudo-labels) added to training
    exclude_conflicts: bool = False  # leave out images whose duplicates carry another class (audit label conflicts)
    reviews: str | None = None  # reviews.csv of `hyperkvasir review`: applied to training and validation labels
    reviews_on_test: bool = False  # apply the reviews to the test labels too (the metrics then say so)
    reviews_sha256: str | None = None  # the reviews file's content when the run began: a changed file is refused
    protocol: str = "test"  # test | dev (score the validation carve-out; select on a second carve-out)
    extra: dict = field(default_factory=dict)


OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "plateau")  # the paper's ReduceLROnPlateau is "plateau"


def _optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The configured optimizer (its name was checked against ``OPTIMIZERS`` before the run started)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs))
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=10)


class ClassifierModule(L.LightningModule):
    """A registry model on uint8 batches normalised on the device; validation macro-F1 over the whole
    validation set chooses the checkpoint."""

    def __init__(self, config: TrainConfig, *, pretrained_weights: bool = True) -> None:
        super().__init__()
        self.config = config
        self.save_hyperparameters({"task": "classify", "config": dataclasses.asdict(config)})
        self.spec = MODELS[config.model]
        self.model, self.weights_from = create_model(
            config.model,
            pretrained=config.pretrained and pretrained_weights,
            weights=config.weights,
            weights_partial=config.weights_partial,
        )
        require_choice("loss", config.loss, LOSSES)
        self.loss = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        # log of the training class prior, for the logit-adjusted loss; set when fitting starts, kept in checkpoints
        self.register_buffer("log_prior", torch.zeros(NUM_CLASSES))
        self.outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.seen = self.skipped = 0
        self.loss_sum = 0.0
        self.val_metrics: dict = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = normalise(images, self.spec.mean, self.spec.std)
        if images.is_cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def on_fit_start(self) -> None:
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        counts = self.trainer.datamodule.train_set.class_counts()
        prior = torch.tensor([max(counts.get(i, 0), 1) for i in range(NUM_CLASSES)], dtype=torch.float32)
        self.log_prior.copy_((prior / prior.sum()).log())

    def on_train_epoch_start(self) -> None:
        self.seen = self.skipped = 0
        self.loss_sum = 0.0

    def training_step(self, batch, index: int):
        if batch is None:  # every sample of the batch failed to load
            return zero_loss(self)
        images, targets, _, skipped = batch
        logits = self(images)
        if self.config.loss == "logit-adjusted":  # train on adjusted logits; predict with the raw ones
            logits = logits + self.config.logit_tau * self.log_prior
        loss = self.loss(logits, targets)
        if self.config.loss == "uc-ordinal":
            loss = loss + uc_distance_penalty(logits, targets)
        self.seen += len(targets)
        self.skipped += skipped
        self.loss_sum += float(loss.detach()) * len(targets)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.outputs = []

    def validation_step(self, batch, index: int) -> None:
        if batch is not None:
            images, targets, _, _ = batch
            self.outputs.append((torch.softmax(self(images).float(), 1).cpu(), targets.cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self.outputs:
            return
        probs = torch.cat([p for p, _ in self.outputs]).numpy()
        labels = torch.cat([t for _, t in self.outputs]).tolist()
        metrics = classification_metrics(labels, probs.argmax(1))
        self.val_metrics = {
            "val_macro_f1": metrics["macro_f1"],
            "val_accuracy": metrics["accuracy"],
            "val_mcc": metrics["mcc"],
            "val_images": len(labels),
        }
        for key, value in self.val_metrics.items():  # the same on every process: no reduction needed
            self.log(key, float(value), prog_bar=key == "val_macro_f1")

    def epoch_row(self) -> dict:
        totals = self.trainer.strategy.reduce(
            torch.tensor([self.seen, self.loss_sum, self.skipped], dtype=torch.float64, device=self.device),
            reduce_op="sum",
        )
        seen, loss_sum, skipped = (float(v) for v in totals)
        if self.current_epoch == 0:  # files the manifest already knows as undecodable count once
            skipped += self.trainer.datamodule.skipped
        return {
            "train_loss": loss_sum / max(seen, 1),
            "train_images": int(seen),
            "skipped_images": int(skipped),
            **self.val_metrics,
        }

    def configure_optimizers(self):
        optimizer = _optimizer(self.config, self.model)
        scheduler = _scheduler(self.config, optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val_macro_f1", "interval": "epoch"},
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["weights_from"] = self.weights_from


def check_train_config(config: TrainConfig) -> None:
    """Every numeric option in range before any file is written."""
    require_ranges(
        ("--epochs", config.epochs, 1, None),
        ("--batch-size", config.batch_size, 1, None),
        ("--input-size", config.input_size, 16, 2048),
        ("--lr", config.lr, 0, None),
        ("--fold", config.fold, 0, None),
        ("--patience", config.patience, 0, None),
        ("--workers", config.workers, 0, None),
        ("--logit-tau", config.logit_tau, 0, None),
        ("--rare-below", config.rare_below, 0, None),
        ("val_fraction", config.val_fraction, 0.01, 0.9),
        ("label_smoothing", config.label_smoothing, 0, 0.99),
    )
    check_device(config.device)
    require_compatible(config.weights, config.pretrained)
    require_choice("recipe", config.recipe, RECIPES)
    require_choice("optimizer", config.optimizer, OPTIMIZERS)
    require_choice("schedule", config.schedule, SCHEDULES)
    require_choice("protocol", config.protocol, PROTOCOLS)
    if config.reviews_on_test and not config.reviews:
        raise HyperKvasirError(
            "--reviews-on-test applies the --reviews file to the test labels; give --reviews FILE or drop it"
        )
    if config.reviews:
        from hyperkvasir.data.reviews import read_reviews

        read_reviews(config.reviews)  # a missing or malformed file stops the run before any folder is made


def load_classifier_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[ClassifierModule, dict]:
    """(module in eval mode, the checkpoint dict) of a ``best.ckpt``/``last.ckpt`` of ``train classify``."""
    checkpoint = load_checkpoint(path, "classify", device)
    module = ClassifierModule(checkpoint_config(checkpoint, path, TrainConfig, MODELS), pretrained_weights=False)
    module.load_state_dict(checkpoint["state_dict"])
    return module.to(device).eval(), checkpoint


def flip_averaged(forward, images: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities averaged over the image and its horizontal, vertical and double flips (TTA)."""
    views = (images, images.flip(-1), images.flip(-2), images.flip(-1, -2))
    return torch.stack([torch.softmax(forward(view).float(), 1) for view in views]).mean(0)


@torch.no_grad()
def predict_probabilities(
    module: ClassifierModule, loader: DataLoader, *, tta: bool = False
) -> tuple[list, np.ndarray, list]:
    """(file names, softmax probabilities (N, 23), true labels) over a loader of uint8 batches."""
    module.eval()
    names, probs, labels = [], [], []
    for batch in loader:
        if batch is None:
            continue
        images, targets, batch_names, _ = batch
        images = images.to(module.device, non_blocking=True)
        with torch.autocast(module.device.type, enabled=module.device.type == "cuda"):
            batch_probs = flip_averaged(module, images) if tta else torch.softmax(module(images).float(), 1)
        probs.append(batch_probs.float().cpu().numpy())
        names += batch_names
        labels += targets.tolist()
    return names, np.concatenate(probs) if probs else np.zeros((0, len(CLASSES))), labels


def write_predictions(path: Path, names: list[str], probs: np.ndarray, decided: np.ndarray) -> None:
    """The documented predictions CSV: ``file-name,label,<one probability column per class folder name>``; the
    label is the decision (with the decision rule's offsets when the run fitted them)."""
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file-name", "label", *(c.folder for c in CLASSES)])
        for name, label, row in zip(names, decided, probs):
            writer.writerow([name, CLASSES[int(label)].folder, *(f"{p:.6f}" for p in row)])


def fit_decision_rule(module: ClassifierModule, data: ClassifyData, checkpoint: dict, checkpoint_path: Path) -> dict:
    """Fit per-class offsets on the validation carve-out and store them in the loaded ``checkpoint``, written back
    to ``checkpoint_path``."""
    names, probs, labels = predict_probabilities(module, data.evaluation_loader(data.val_set), tta=module.config.tta)
    offsets, before, after = fit_offsets(probs, labels)
    rule = {
        "offsets": [float(v) for v in offsets],
        "fitted_on": "validation carve-out of the training folds",
        "val_images": len(labels),
        "val_macro_f1_argmax": before,
        "val_macro_f1_with_offsets": after,
    }
    checkpoint["decision_rule"] = rule
    with atomic_write(checkpoint_path) as handle:
        torch.save(checkpoint, handle)
    return rule


def train_classifier(
    config: TrainConfig, *, resume: bool = False, progress=None, report: AuditReport | None = None
) -> dict:
    """Train through the engine, select on validation, test once; the test metrics (rank 0) or {} (others).
    ``report``: the tree's audit when the caller has it (else the datamodule obtains it)."""
    folder = RunFolder(config.out)
    config = folder.config_for(config, resume)
    require_choice("model", config.model, MODELS)
    check_train_config(config)
    trainer, module, data = fit(
        lambda: (ClassifierModule(config), ClassifyData(config, progress=progress, report=report)),
        folder,
        EngineOptions(
            epochs=config.epochs,
            monitor="val_macro_f1",
            patience=config.patience,
            seed=config.seed,
            device=config.device,
            precision="auto" if config.amp else "32-true",
            max_steps_per_epoch=config.max_steps_per_epoch,
            progress=progress is not None,
            sync_batchnorm=config.sync_batchnorm,
            freeze_batchnorm=config.freeze_batchnorm,
        ),
        config=config,
        resume=resume,
    )
    if not trainer.is_global_zero:
        return {}
    best, checkpoint = load_classifier_checkpoint(folder.best, module.device)
    rule = fit_decision_rule(best, data, checkpoint, folder.best) if config.decision_rule else None
    names, probs, labels = predict_probabilities(best, data.evaluation_loader(data.test_set), tta=config.tta)
    decided = decide(probs, np.asarray(rule["offsets"]) if rule else None)
    scored = scored_part(config)
    write_predictions(folder.path / f"predictions-{scored}.csv", names, probs, decided)
    history = json.loads((folder.path / "metrics.json").read_text())
    metrics = scored_metrics(labels, decided, seed=config.seed) | {
        "protocol": config.protocol,
        "decision_rule": rule,
        "tta": config.tta,
        "best_epoch": checkpoint["epoch"],
        "weights_from": checkpoint.get("weights_from"),
        "skipped_images": sum(r["skipped_images"] for r in history),
        "model": config.model,
        "fold": config.fold,
        "scheme": config.scheme,
        "excluded_label_conflicts": data.excluded,
        "pseudo_labels": data.pseudo_report,
        "test_labels": "reviewed (--reviews-on-test)" if config.reviews and config.reviews_on_test else "as released",
        "world_size": trainer.world_size,
        "provenance": provenance(
            dataclasses.asdict(config),
            root=config.root,
            weights_from=checkpoint.get("weights_from"),
            world_size=trainer.world_size,
            per_device_batch=config.batch_size,
        )
        | {"reviews": data.reviews_report},
    }
    with atomic_write(folder.path / f"metrics-{scored}.json", "w") as handle:
        json.dump(metrics, handle, indent=2)
    plot_confusion_matrix(
        metrics,
        folder.path / f"confusion-{scored}.png",
        f"{config.model}, {scored} of fold {config.fold}: macro F1 {metrics['macro_f1']:.3f}",
    )
    return metrics


def scored_part(config: TrainConfig) -> str:
    """What a run scores, as its file names say it: ``test`` (the test fold) or ``dev`` (the validation
    carve-out of the training folds)."""
    return "dev" if config.protocol == "dev" else "test"


__all__ = [
    "TrainConfig",
    "ClassifierModule",
    "train_classifier",
    "load_classifier_checkpoint",
    "predict_probabilities",
    "write_predictions",
]
