"""The fast subset run at both ends of the supported torch range (``pytest -m compat``; .ci/run runs it on the
pinned set and on the newest torch and torchvision, unless HYPERKVASIR_NEWEST=0): each task trains, predicts and
exports through the real CLI, which touches the torch, torchvision, timm and Lightning APIs the toolkit uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperkvasir.cli import main

pytestmark = pytest.mark.compat
FAST = ["--epochs", "1", "--workers", "0", "--no-pretrained", "--batch-size", "4"]


def test_the_installed_torch_is_inside_the_declared_range() -> None:
    import importlib.metadata

    import torch
    import torchvision
    from packaging.requirements import Requirement

    declared = {r.name: r for r in map(Requirement, importlib.metadata.requires("hyperkvasir") or [])}
    for module in (torch, torchvision):
        assert declared[module.__name__].specifier.contains(module.__version__.split("+")[0]), module.__version__


def test_a_classifier_trains_predicts_and_exports(tiny_twin, tmp_path: Path) -> None:
    assert (
        main(
            [
                "train",
                "classify",
                str(tiny_twin.root),
                "--model",
                "test_efficientnet",
                "--input-size",
                "32",
                *FAST,
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "run" / "metrics-test.json").read_text())
    assert (
        main(
            [
                "predict",
                str(tmp_path / "run" / "best.ckpt"),
                str(tiny_twin.root),
                "--part",
                "unlabeled",
                "--workers",
                "0",
                "--out",
                str(tmp_path / "p.parquet"),
            ]
        )
        == 0
    )
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[export]')")
    assert (
        main(["export-model", str(tmp_path / "run" / "best.ckpt"), "--format", "onnx", "--out", str(tmp_path / "onnx")])
        == 0
    )


def test_a_segmenter_trains_and_predicts_masks(tiny_twin, tmp_path: Path) -> None:
    assert main(["train", "segment", str(tiny_twin.root), "--size", "32", *FAST, "--out", str(tmp_path / "seg")]) == 0
    images = tiny_twin.root / "segmented-images" / "images"
    assert (
        main(
            [
                "predict",
                str(tmp_path / "seg" / "best.ckpt"),
                str(images),
                "--workers",
                "0",
                "--out",
                str(tmp_path / "masks"),
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "masks").rglob("*.png"))) >= len(list(images.iterdir()))
