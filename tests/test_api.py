"""The notebook API on a tiny twin: datasets like torchvision's, plots, and any checkpoint's predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import hyperkvasir
from hyperkvasir import HyperKvasirClassification, HyperKvasirSegmentation, load_model


def test_classification_dataset_and_model(tiny_twin, tmp_path: Path) -> None:
    test = HyperKvasirClassification(tiny_twin.root, fold=0, split="test", input_size=32)
    image, label = test[0]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32) and -1.0 <= image.min() <= image.max() <= 1.0
    assert test.classes[label] == Path(test.paths[0]).parent.name and len(test.classes) == 23
    assert len(test) == sum(1 for f in tiny_twin.folds2.values() if f == 0)
    figure = test.plot(0)
    assert figure.axes[0].get_title().startswith(test.classes[label])

    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.classify.train import train_classify

    train_classify(
        ClassifyConfig(
            root=str(tiny_twin.root),
            out=str(tmp_path / "run"),
            model="test_efficientnet",
            epochs=1,
            input_size=32,
            workers=0,
            pretrained=False,
        )
    )
    model = load_model(tmp_path / "run" / "best.ckpt")
    probabilities = model.predict(test.paths[:4])
    assert probabilities.shape == (4, 23) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert len(model.decide(probabilities)) == 4 and set(model.decide(probabilities)) <= set(model.classes)
    from hyperkvasir.classify.predict import predict_images

    predict_images(tmp_path / "run" / "best.ckpt", test.paths[:4], tmp_path / "p.parquet", workers=0)
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "p.parquet").to_pylist()
    same = np.asarray([[r[c] for c in model.classes] for r in rows])
    assert np.allclose(same, probabilities, atol=1e-5)  # the notebook and the CLI agree


def test_segmentation_dataset(tiny_twin) -> None:
    polyps = HyperKvasirSegmentation(tiny_twin.root, split="train", size=64)
    image, mask = polyps[0]
    assert image.shape == (3, 64, 64) and mask.shape == (64, 64) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert polyps.plot(0).axes[0].get_title().endswith(".jpg")
    assert "HyperKvasirVideoFrames" in hyperkvasir.__all__


def test_external_validation_on_a_folder_in_another_naming(tiny_twin, tmp_path: Path, capsys) -> None:
    import json
    import shutil

    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.classify.train import train_classify
    from hyperkvasir.cli import main

    train_classify(
        ClassifyConfig(
            root=str(tiny_twin.root),
            out=str(tmp_path / "run"),
            model="test_efficientnet",
            epochs=1,
            input_size=32,
            workers=0,
            pretrained=False,
        )
    )
    hospital = tmp_path / "hospital"
    for folder, name in (("polyps", "polyp"), ("cecum", "normal-cecum"), ("hemorrhoids", "hemorroids")):
        source = next(tiny_twin.root.glob(f"labeled-images/**/{folder}"))
        shutil.copytree(source, hospital / name)  # split-CSV naming, as a hospital might use
    assert (
        main(
            [
                "evaluate",
                "classify",
                "--checkpoint",
                str(tmp_path / "run" / "best.ckpt"),
                "--imagefolder",
                str(hospital),
                "--out",
                str(tmp_path / "ext"),
                "--json",
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == sum(1 for _ in hospital.rglob("*.jpg"))
    assert 0.0 <= metrics["calibration"]["ece"] <= 1.0
    assert sum(b["count"] for b in metrics["calibration"]["bins"]) == metrics["n"]
    assert (tmp_path / "ext" / "reliability.png").is_file() and (tmp_path / "ext" / "confusion.png").is_file()
