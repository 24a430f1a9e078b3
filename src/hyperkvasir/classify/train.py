"""One fold trained through the engine, the checkpoint chosen on validation, the scored part scored once.

Model selection uses the validation carve-out only, never the test fold. The run folder (the engine's) holds
``config.json``, ``metrics.csv``/``metrics.json`` (one row per epoch), ``last.ckpt``, ``best.ckpt`` (best
validation macro-F1), TensorBoard logs, ``curves.png``, and after the test ``predictions-test.csv``,
``metrics-test.json`` (with intervals and provenance) and ``confusion-test.png``; under the dev protocol the
scored part is the validation carve-out and the files are ``*-dev.*`` (no test image is opened). Under
``torchrun`` (or SLURM) the engine runs DDP.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import cast

import numpy as np
import torch

from hyperkvasir.classify.config import ClassifyConfig, check_classify_config, scored_part
from hyperkvasir.classify.data import ClassifyData
from hyperkvasir.classify.decision import decide, decision_rule
from hyperkvasir.classify.evaluate import write_predictions
from hyperkvasir.classify.module import ClassifyModule
from hyperkvasir.classify.predict import predict_probabilities
from hyperkvasir.data.audit import AuditReport
from hyperkvasir.engine import EngineOptions, RunFolder, fit
from hyperkvasir.errors import require_choice
from hyperkvasir.metrics.classification import plot_confusion_matrix, scored_metrics
from hyperkvasir.models import MODELS
from hyperkvasir.outputs import atomic_write
from hyperkvasir.provenance import provenance


def train_classify(
    config: ClassifyConfig, *, resume: bool = False, progress=None, report: AuditReport | None = None
) -> dict:
    """Train through the engine, select on validation, test once; the test metrics (rank 0) or {} (others).
    ``report``: the tree's audit when the caller has it (else the datamodule obtains it)."""
    folder = RunFolder(config.out)
    config = folder.config_for(config, resume)
    require_choice("model", config.model, MODELS)
    check_classify_config(config)
    trainer, module, built = fit(
        lambda: (ClassifyModule(config), ClassifyData(config, progress=progress, report=report)),
        folder,
        EngineOptions.of_run(
            config,
            monitor="val_macro_f1",
            progress=progress is not None,
            patience=config.patience,
            precision="auto" if config.amp else "32-true",
        ),
        config=config,
        resume=resume,
    )
    data = cast(ClassifyData, built)  # what the build above made
    if not trainer.is_global_zero:
        return {}
    best, checkpoint = ClassifyModule.from_checkpoint(folder.best, module.device)
    rule = _fit_decision_rule(best, data, checkpoint, folder.best) if config.decision_rule else None
    names, probs, labels = predict_probabilities(best, data.evaluation_loader(data.test_set), tta=config.tta)
    decided = decide(probs, np.asarray(rule["offsets"]) if rule else None)
    scored = scored_part(config)
    write_predictions(folder.path / f"predictions-{scored}.csv", names, probs, decided)
    history = json.loads((folder.path / "metrics.json").read_text())
    metrics = scored_metrics(labels, list(decided), seed=config.seed) | {
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


def _fit_decision_rule(module: ClassifyModule, data: ClassifyData, checkpoint: dict, checkpoint_path: Path) -> dict:
    """Fit per-class offsets on the validation carve-out and store them in the loaded ``checkpoint``, written back
    to ``checkpoint_path``."""
    _, probs, labels = predict_probabilities(module, data.evaluation_loader(data.val_set), tta=module.config.tta)
    rule = decision_rule(probs, labels)
    checkpoint["decision_rule"] = rule
    with atomic_write(checkpoint_path) as handle:
        torch.save(checkpoint, handle)
    return rule


__all__ = ["train_classify"]
