"""export-model: ONNX and TorchScript files that match PyTorch within 1e-4, with a model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperkvasir.cli import main


@pytest.fixture(scope="module")
def classifier(tiny_twin, tmp_path_factory) -> Path:
    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.classify.train import train_classify

    run = tmp_path_factory.mktemp("export") / "run"
    train_classify(
        ClassifyConfig(
            root=str(tiny_twin.root),
            out=str(run),
            model="test_efficientnet",
            epochs=1,
            input_size=32,
            workers=0,
            pretrained=False,
            decision_rule=True,
        )
    )
    return run / "best.ckpt"


def _reference(checkpoint: Path, pixels: np.ndarray) -> np.ndarray:
    from hyperkvasir.classify.module import ClassifyModule

    module, _ = ClassifyModule.from_checkpoint(checkpoint)
    with torch.no_grad():
        return torch.softmax(module(torch.from_numpy(pixels).to(torch.uint8)).float(), 1).numpy()


def test_onnx_export_matches_pytorch_and_carries_a_card(classifier: Path, tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[export]')")
    assert main(["export-model", str(classifier), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    pixels = np.random.default_rng(0).integers(0, 256, (4, 3, 32, 32)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    produced = session.run(None, {"pixels": pixels})[0]
    assert np.abs(produced - _reference(classifier, pixels)).max() <= 1e-4
    card = json.loads((tmp_path / "onnx" / "model-card.json").read_text())
    assert card["input"]["size"] == [32, 32] and card["input"]["normalisation"] == "inside the graph"
    assert card["decision_rule"]["fitted_on"].startswith("validation") and len(card["output"]["classes"]) == 23
    assert card["metrics"]["macro_f1"] >= 0 and card["audit_of_the_training_tree"]["label_conflicts"] == 0
    text = (tmp_path / "onnx" / "model-card.md").read_text()
    assert "## Limitations" in text and "## Metrics (test fold)" in text and "decision rule" in text


def test_torchscript_export_matches_pytorch(classifier: Path, tmp_path: Path, capsys) -> None:
    assert main(["export-model", str(classifier), "--format", "torchscript", "--out", str(tmp_path / "ts")]) == 0
    scripted = torch.jit.load(str(tmp_path / "ts" / "model.pt"))
    pixels = np.random.default_rng(1).integers(0, 256, (3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        produced = scripted(torch.from_numpy(pixels)).numpy()
    assert np.abs(produced - _reference(classifier, pixels)).max() <= 1e-4
    assert main(["export-model", str(classifier), "--format", "tflite"]) == 2
    assert "unknown format" in capsys.readouterr().err
