"""``export-model``: a checkpoint as a deployable ONNX or TorchScript file plus a model card.

The exported graph takes what a camera gives, float32 RGB pixel values 0–255 in NCHW at the stated input size,
and does the normalisation itself, so no deployment can forget it; it returns class probabilities (softmax) or,
for segmentation, polyp probabilities (sigmoid). What the graph cannot do is stated in the card: the centre-square
framing, the corner masking when the model was trained with it, and the decision rule's offsets.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hyperkvasir.data.imaging import CORNER_MASK
from hyperkvasir.errors import HyperKvasirError
from hyperkvasir.outputs import staged_folder

FORMATS = ("onnx", "torchscript")
PARITY_TOLERANCE = 1e-4  # max |Δ probability| between the export and PyTorch on the same inputs


class Deployable(nn.Module):
    """Normalisation, the network and its output activation in one graph."""

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, network: nn.Module, mean, std, activation: str) -> None:
        super().__init__()
        self.network, self.activation = network.eval(), activation
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        logits = self.network((pixels - self.mean) / self.std)
        return torch.softmax(logits, 1) if self.activation == "softmax" else torch.sigmoid(logits)


def _load(checkpoint: Path):
    """(Deployable, task, training config, card facts) from any task's checkpoint."""
    from hyperkvasir.api import load_model

    loaded = load_model(checkpoint)
    facts = {
        "classes": loaded.classes,
        "decision_rule": loaded.rule,
        "mask_corners": loaded.mask_corners,
        "input_size": loaded.size,
    }
    deployable = Deployable(
        loaded.module.model, loaded.mean, loaded.std, "sigmoid" if loaded.task == "segment" else "softmax"
    )
    return deployable, loaded.task, loaded.module.config, facts


def export_model(checkpoint: str | Path, fmt: str, out: str | Path) -> dict:
    """Write ``model.onnx`` or ``model.pt`` (TorchScript), ``model-card.json`` and ``model-card.md`` to ``out``
    (staged, and replacing only an earlier ``export-model``); the export is checked against PyTorch on random and
    constant inputs before anything is kept."""
    if fmt not in FORMATS:
        raise HyperKvasirError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    checkpoint, out = Path(checkpoint), Path(out)
    model, task, config, facts = _load(checkpoint)
    size = facts["input_size"]
    probe = torch.cat([torch.rand(2, 3, size, size) * 255, torch.full((1, 3, size, size), 128.0)])
    with torch.no_grad():
        reference = model(probe).numpy()
    with staged_folder(out, "export-model", reads=[checkpoint.parent]) as staging:  # all of it, or nothing
        name, difference = _write_checked(model, fmt, probe, reference, staging)
        card = model_card(checkpoint, task, config, facts, fmt, name, difference)
        (staging / "model-card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
        (staging / "model-card.md").write_text(card_markdown(card), encoding="utf-8")
    return {"model": str(out / name), "parity_max_abs_difference": difference, "card": str(out / "model-card.md")}


def _write_checked(
    model: Deployable, fmt: str, probe: torch.Tensor, reference: np.ndarray, folder: Path
) -> tuple[str, float]:
    """Write the model file into ``folder`` and check it against PyTorch; (file name, max |Δp|). The model is
    serialised in memory and written by Python: torch's own file writer aborts the process on a full disk."""
    buffer = io.BytesIO()
    if fmt == "torchscript":
        target = folder / "model.pt"
        torch.jit.save(torch.jit.trace(model, probe[:1]), buffer)
        with torch.no_grad():
            produced = torch.jit.load(io.BytesIO(buffer.getvalue()))(probe).numpy()
    else:
        try:
            import onnxruntime
        except ImportError:
            raise HyperKvasirError(
                "ONNX export needs onnx and onnxruntime: pip install 'hyperkvasir[export]'"
            ) from None
        target = folder / "model.onnx"
        # the TorchScript-based exporter (dynamo=False) writes to any file object; torch annotates paths only
        torch.onnx.export(
            model,
            (probe[:1],),
            buffer,  # type: ignore[arg-type]
            dynamo=False,
            input_names=["pixels"],
            output_names=["probabilities"],
            dynamic_axes={"pixels": {0: "batch"}},
            opset_version=17,
        )
        session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
        produced = session.run(None, {"pixels": probe.numpy()})[0]
    target.write_bytes(buffer.getvalue())
    difference = float(np.abs(produced - reference).max())
    if difference > PARITY_TOLERANCE:
        raise HyperKvasirError(
            f"{target.name}: the export differs from PyTorch by {difference:.2e} (> {PARITY_TOLERANCE}); not kept"
        )
    return target.name, difference


def model_card(checkpoint: Path, task: str, config, facts: dict, fmt: str, file_name: str, parity: float) -> dict:
    """What a deployer must know: data, split, protocol, metrics, leakage, decision rule, use and limits."""
    import dataclasses

    run = checkpoint.parent
    metrics = json.loads((run / "metrics-test.json").read_text()) if (run / "metrics-test.json").is_file() else None
    leakage = None
    root = Path(config.root)
    if root.is_dir():
        try:
            from hyperkvasir.data.audit import audit

            report = audit(root)
            leakage = {
                "leakage": report.leakage,
                "label_conflicts": len(report.label_conflicts),
                "scopeguide_share_per_class": {k: v["share"] for k, v in report.scopeguide.items() if v["images"]},
            }
        except HyperKvasirError:
            leakage = None
    summary_keys = ("n", "accuracy", "macro_f1", "micro_f1", "mcc", "dice", "iou", "mdice_256")
    return {
        "task": task,
        "file": file_name,
        "format": fmt,
        "checkpoint": str(checkpoint),
        "input": {
            "layout": "NCHW",
            "dtype": "float32",
            "channels": "RGB",
            "value_range": "0-255",
            "size": [facts["input_size"], facts["input_size"]],
            "framing": "centre square of the frame, area-resized"
            if task != "segment"
            else "the whole frame resized to a square",
            "normalisation": "inside the graph",
            "corner_masked": facts["mask_corners"],
            "corner_region": list(CORNER_MASK) if facts["mask_corners"] else None,
        },
        "output": {
            "kind": "softmax probabilities" if task != "segment" else "per-pixel polyp probability",
            "classes": facts["classes"],
        },
        "decision_rule": facts["decision_rule"],
        "training": {
            k: v
            for k, v in dataclasses.asdict(config).items()
            if k
            in (
                "root",
                "scheme",
                "fold",
                "model",
                "epochs",
                "input_size",
                "size",
                "seed",
                "recipe",
                "loss",
                "balanced",
                "rare_below",
                "tta",
                "mask_corners",
                "val_fraction",
            )
        },
        "protocol": "checkpoint chosen on the validation carve-out of the training folds; the test fold was used "
        "once, for the metrics below",
        "metrics": {k: metrics[k] for k in summary_keys if metrics and k in metrics} if metrics else None,
        "per_class": metrics.get("per_class") if metrics else None,
        "audit_of_the_training_tree": leakage,
        "parity": {"max_abs_difference": parity, "tolerance": PARITY_TOLERANCE},
        "intended_use": "research on HyperKvasir-like endoscopy frames; decision support needs clinical validation "
        "on the deploying site's own labelled data (`hyperkvasir evaluate … --checkpoint`)",
        "limitations": [
            "trained on one hospital's Olympus/Pentax frames (Bærum, 2008–2016); other devices are untested",
            "the ScopeGuide box and Kvasir-SEG's black corner correlate with classes; see `hyperkvasir shortcuts`",
            "near-duplicate frames span the official folds, so test figures are optimistic (see the audit)",
            "rare classes (hemorrhoids, ileum, in-between colitis grades) have a handful of images each",
        ],
    }


def card_markdown(card: dict) -> str:
    lines = [
        f"# Model card: {card['training'].get('model')} ({card['task']})",
        "",
        f"File `{card['file']}` ({card['format']}); export matches PyTorch within "
        f"{card['parity']['max_abs_difference']:.1e}.",
        "",
        "## Input",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in card["input"].items()]
    lines += [
        "",
        "## Output",
        "",
        f"- {card['output']['kind']} over {len(card['output']['classes'])} classes: "
        f"{', '.join(card['output']['classes'])}",
    ]
    if card["decision_rule"]:
        lines += [
            f"- decision rule: add these offsets to log-probabilities before the argmax (fitted on "
            f"{card['decision_rule']['fitted_on']}): {card['decision_rule']['offsets']}"
        ]
    lines += ["", "## Training and protocol", ""] + [f"- {k}: {v}" for k, v in card["training"].items()]
    lines += [f"- {card['protocol']}", "", "## Metrics (test fold)", ""]
    lines += [f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in (card["metrics"] or {}).items()]
    if card["per_class"]:
        lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [
            f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
            for c, v in card["per_class"].items()
        ]
    audit_facts = card["audit_of_the_training_tree"]
    if audit_facts:
        leak = audit_facts["leakage"]["fold2"]
        lines += [
            "",
            "## Leakage and conflicts in the training tree",
            "",
            f"- {leak['groups']} duplicate groups ({leak['images']} images) span both folds of the 2-fold split",
            f"- {audit_facts['label_conflicts']} label conflicts",
        ]
    lines += ["", "## Intended use", "", card["intended_use"], "", "## Limitations", ""]
    lines += [f"- {item}" for item in card["limitations"]]
    return "\n".join(lines) + "\n"
