from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperkvasir.classify.benchmark import run_benchmark
from hyperkvasir.classify.config import ClassifyConfig
from hyperkvasir.classify.train import train_classify
from hyperkvasir.data.imaging import load_square
from hyperkvasir.data.index import build_index
from hyperkvasir.datasets.cache import open_cache

FAST = dict(model="test_efficientnet", epochs=2, input_size=32, batch_size=8, workers=0, pretrained=False)


def test_cache_returns_the_pixels_of_direct_decoding(tiny_twin) -> None:
    rows = [r for r in build_index(tiny_twin.root).to_pylist() if r["part"] == "labeled"]
    cache = open_cache(tiny_twin.root, [(r["path"], r["sha256"]) for r in rows], 48, workers=1)
    for row in rows:
        assert np.array_equal(cache[row["path"]], load_square(tiny_twin.root / row["path"], 48))
    again = open_cache(tiny_twin.root, [(r["path"], r["sha256"]) for r in rows], 48, workers=1)
    assert isinstance(again.array, np.memmap)  # reused, memory-mapped


def test_resume_equals_uninterrupted(tiny_twin, tmp_path: Path, crash_after_first_epoch) -> None:
    full = train_classify(ClassifyConfig(root=str(tiny_twin.root), out=str(tmp_path / "full"), **FAST))
    disarm = crash_after_first_epoch()
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_classify(ClassifyConfig(root=str(tiny_twin.root), out=str(tmp_path / "cut"), **FAST))
    disarm()
    assert len(json.loads((tmp_path / "cut" / "metrics.json").read_text())) == 1
    resumed = train_classify(ClassifyConfig(root=str(tiny_twin.root), out=str(tmp_path / "cut")), resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("train_images_per_s", "epoch_s")} for r in rows]  # noqa: E731
    assert strip(json.loads((tmp_path / "cut" / "metrics.json").read_text())) == strip(
        json.loads((tmp_path / "full" / "metrics.json").read_text())
    )
    assert (tmp_path / "cut" / "predictions-test.csv").read_text() == (
        tmp_path / "full" / "predictions-test.csv"
    ).read_text()
    assert resumed["macro_f1"] == full["macro_f1"]
    a = torch.load(tmp_path / "cut" / "best.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "full" / "best.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_corrupt_image_is_skipped_and_counted(faulty_twin, tmp_path: Path) -> None:
    truncated = next(f["files"][0] for f in faulty_twin.faults if f["kind"] == "truncated-image")
    fold = faulty_twin.folds2[Path(truncated).name]
    metrics = train_classify(
        ClassifyConfig(root=str(faulty_twin.root), out=str(tmp_path / "run"), fold=1 - fold, **FAST | {"epochs": 1})
    )
    assert metrics["skipped_images"] == 1
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert rows[0]["skipped_images"] == 1


def test_two_fold_protocol_on_tiny_twin(tiny_twin, tmp_path: Path) -> None:
    base = ClassifyConfig(root=str(tiny_twin.root), **FAST | {"epochs": 1})
    results = run_benchmark(tiny_twin.root, ["test_efficientnet"], tmp_path / "bench", base=base)
    folds = results["models"]["test_efficientnet"]["folds"]
    assert len(folds) == 2
    for fold in (0, 1):
        predictions = tmp_path / "bench" / "test_efficientnet" / f"test-fold-{fold}" / "predictions-test.csv"
        lines = predictions.read_text().splitlines()
        assert lines[0].startswith("file-name,label,barretts,bbps-0-1")
        assert len(lines) - 1 == sum(1 for f in tiny_twin.folds2.values() if f == fold)
    mean = results["models"]["test_efficientnet"]["mean"]
    assert mean["macro_f1"] == pytest.approx((folds[0]["macro_f1"] + folds[1]["macro_f1"]) / 2)
    table = (tmp_path / "bench" / "results.md").read_text()
    assert "Pre-Trained DenseNet-161 | paper Table 3" in table and "0.619" in table
    assert "Per-class F1" in table and "| hemorrhoids | 1 |" in table  # rarest first, with its test images
    assert json.loads((tmp_path / "bench" / "results.json").read_text())["majority_class"]["folds"] == 2


def test_two_processes_with_gloo_score_the_whole_validation_set(tiny_twin, tmp_path: Path, run_cli) -> None:
    """With lr 0 and batch norm on its running statistics the weights and statistics never move, so two
    processes score the same whole validation and test sets as one process, to the last digit. The class-balanced
    sampler runs sharded: together the two ranks draw as many images as one process."""
    args = [
        "train",
        "classify",
        str(tiny_twin.root),
        "--model",
        "test_efficientnet",
        "--epochs",
        "1",
        "--input-size",
        "32",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--no-pretrained",
        "--lr",
        "0",
        "--json",
        "--balanced",
        "--freeze-batchnorm",
    ]  # the class-balanced sampler, sharded over the two processes
    run_cli([*args, "--out", tmp_path / "ddp"], processes=2)
    run_cli([*args, "--out", tmp_path / "one"])
    two, one = (json.loads((tmp_path / name / "metrics.json").read_text())[0] for name in ("ddp", "one"))
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world_size"] == 2
    assert two["val_images"] == one["val_images"] > 0
    assert two["val_macro_f1"] == one["val_macro_f1"]
    assert (
        abs(two["train_images"] - one["train_images"]) <= 8 and two["train_images"] > 0
    )  # halves, last batches dropped
    assert (tmp_path / "ddp" / "predictions-test.csv").read_text() == (
        tmp_path / "one" / "predictions-test.csv"
    ).read_text()


def test_existing_run_is_refused(tiny_twin, tmp_path: Path) -> None:
    from hyperkvasir.errors import HyperKvasirError

    train_classify(ClassifyConfig(root=str(tiny_twin.root), out=str(tmp_path / "r"), **FAST | {"epochs": 1}))
    with pytest.raises(HyperKvasirError, match="pass --resume"):
        train_classify(ClassifyConfig(root=str(tiny_twin.root), out=str(tmp_path / "r"), **FAST))


def test_benchmark_rerun_skips_finished_folds_and_continues_an_unfinished_one(
    tiny_twin, tmp_path: Path, crash_after_first_epoch
) -> None:
    base = ClassifyConfig(root=str(tiny_twin.root), **FAST)
    disarm = crash_after_first_epoch()
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_benchmark(tiny_twin.root, ["test_efficientnet"], tmp_path / "bench", base=base)
    disarm()
    fold0 = tmp_path / "bench" / "test_efficientnet" / "test-fold-0"
    assert (fold0 / "last.ckpt").is_file() and not (fold0 / "metrics-test.json").exists()
    first = run_benchmark(tiny_twin.root, ["test_efficientnet"], tmp_path / "bench", base=base)
    assert len(json.loads((fold0 / "metrics.json").read_text())) == 2  # continued, not restarted
    stamp = (fold0 / "metrics-test.json").stat().st_mtime_ns
    again = run_benchmark(tiny_twin.root, ["test_efficientnet"], tmp_path / "bench", base=base)
    assert (fold0 / "metrics-test.json").stat().st_mtime_ns == stamp  # skipped
    assert again["models"] == first["models"]


def test_cache_is_not_rebuilt_for_a_file_that_passes_the_index_but_not_the_decoder(twin_copy: Path) -> None:
    """A JPEG with intact markers and corrupt data: the manifest calls it decodable, the decoder does not."""
    path = sorted(twin_copy.glob("labeled-images/**/*.jpg"))[0]
    data = bytearray(path.read_bytes())
    start = data.index(b"\xff\xda") + 20  # inside the entropy-coded scan, EOI kept
    data[start : start + 400] = b"\xff\x00" * 200
    data[start + 400 : -2] = b"\x00" * (len(data) - start - 402)
    path.write_bytes(bytes(data))
    rows = [r for r in build_index(twin_copy).to_pylist() if r["part"] == "labeled" and r["decodes"]]
    entries = [(r["path"], r["sha256"]) for r in rows]
    first = open_cache(twin_copy, entries, 32, workers=1)
    relpath = str(path.relative_to(twin_copy))
    assert relpath in dict(entries) and relpath not in first.row, "the decoder must have refused it"
    stamp = (twin_copy / ".hyperkvasir" / "cache" / "square-32.npy").stat().st_mtime_ns
    again = open_cache(twin_copy, entries, 32, workers=1)
    assert (twin_copy / ".hyperkvasir" / "cache" / "square-32.npy").stat().st_mtime_ns == stamp
    assert first.row == again.row
