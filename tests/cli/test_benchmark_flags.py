"""Every flag of `benchmark` is used by its task or refused before any work starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperkvasir.cli import main


@pytest.mark.parametrize(
    ("task", "flags", "named"),
    [
        ("segment", ["--optimizer", "sgd"], "--optimizer"),
        ("video", ["--scheme", "official-2fold"], "--scheme"),
        ("video", ["--optimizer", "adamw"], "--optimizer"),
        ("video", ["--config", "recipe.yaml"], "--config"),
        ("segment", ["--select-on-train"], "--select-on-train"),
        ("classify", ["--select-on-train"], "--select-on-train"),
        ("segment", ["--exclude-conflicts"], "--exclude-conflicts"),
        ("video", ["--models", "no-such-net"], "no-such-net"),
        ("segment", ["--models", "no-such-encoder"], "no-such-encoder"),
        ("classify", ["--models", "resnet50,no-such-net"], "no-such-net"),
        ("segment", ["--models", "resnet50,convnext_tiny"], "one name"),
        ("segment", ["--scheme", "official-2fold"], "no segmentation scheme"),
    ],
)
def test_flags_that_do_not_apply_are_refused_before_work(tiny_twin, tmp_path: Path, capsys, task, flags, named) -> None:
    out = tmp_path / "bench"
    assert main(["benchmark", str(tiny_twin.root), "--task", task, "--out", str(out), *flags]) == 2
    assert named in capsys.readouterr().err
    assert not out.exists(), "nothing is written before a refusal"


def test_video_benchmark_refuses_to_select_on_training_videos(tiny_twin, tmp_path: Path, capsys) -> None:
    out = tmp_path / "vb"
    assert (
        main(["benchmark", str(tiny_twin.root), "--task", "video", "--models", "test_efficientnet", "--out", str(out)])
        == 1
    )
    assert "--select-on-train" in capsys.readouterr().err and not out.exists()


def test_segment_benchmark_uses_models_and_the_official_scheme_refuses_uuid_names(
    tiny_twin, tmp_path: Path, capsys
) -> None:
    assert (
        main(
            [
                "benchmark",
                str(tiny_twin.root),
                "--task",
                "segment",
                "--scheme",
                "kvasir-seg-official",
                "--models",
                "test_efficientnet",
                "--out",
                str(tmp_path / "official"),
            ]
        )
        == 1
    )
    assert "UUID names" in capsys.readouterr().err
    assert (
        main(
            [
                "benchmark",
                str(tiny_twin.root),
                "--task",
                "segment",
                "--models",
                "test_efficientnet",
                "--epochs",
                "1",
                "--input-size",
                "64",
                "--batch-size",
                "4",
                "--workers",
                "0",
                "--out",
                str(tmp_path / "seg"),
                "--json",
            ]
        )
        == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert results["config"]["model"] == "test_efficientnet" and results["config"]["scheme"] == "segmentation"
