from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hyperkvasir.cli import main
from hyperkvasir.data.taxonomy import VIDEO_CLASS_NAMES, normalise_video_finding
from hyperkvasir.synth.tree import make_synthetic_release
from hyperkvasir.video.data import video_labels, video_split
from hyperkvasir.video.evaluate import video_level_metrics


@pytest.fixture(scope="module")
def video_twin(tmp_path_factory):
    return make_synthetic_release(
        tmp_path_factory.mktemp("videos") / "hk", seed=5, scale="tiny", parts=("videos",), videos=18
    )


def test_vocabulary_maps_real_findings(shared_data: Path) -> None:
    from hyperkvasir.data.tables import read_video_metadata

    rows = [r for r in read_video_metadata(shared_data / "official" / "hyper-kvasir-video-metadata.csv") if r.finding]
    mapped = [normalise_video_finding(r.finding) for r in rows]
    assert sum(m is not None for m in mapped) / len(rows) > 0.9
    assert normalise_video_finding("clipping polyp stalk") == "clip-placement"
    assert normalise_video_finding("watermelon stomach") == "gave"
    assert normalise_video_finding("lifted polyp, resection") == "dyed-lifted-polyp"
    assert len(VIDEO_CLASS_NAMES) == 29  # 30 classes; polyps occur in both tracts


def test_video_split_is_stratified_seeded_and_disjoint(video_twin) -> None:
    split = video_split(video_twin.root, seed=1)
    assert split == video_split(video_twin.root, seed=1)
    everything = split["train"] + split["val"] + split["test"]
    assert len(everything) == len(set(everything)) == 18
    labels = video_labels(video_twin.root)
    for subset in ("train", "val", "test"):  # 3 videos per class: one in each part
        assert len({labels[v] for v in split[subset]}) == 6


def test_video_level_evaluation_decides_each_video_by_mean_and_by_majority(video_twin) -> None:
    labels = video_labels(video_twin.root)
    eye = np.eye(len(VIDEO_CLASS_NAMES))
    # two frames lean to the next class, one is sure of the true one: the mean is right, the majority wrong
    leaning = {v: 0.4 * eye[labels[v]] + 0.6 * eye[(labels[v] + 1) % len(eye)] for v in labels}
    probs = {v: [leaning[v], leaning[v], eye[labels[v]]] for v in sorted(labels)}
    metrics = video_level_metrics(probs, labels)
    assert metrics["videos"] == 18
    assert metrics["mean_probability"]["accuracy"] == 1.0 and metrics["majority_vote"]["accuracy"] == 0.0
    wrong = VIDEO_CLASS_NAMES[(labels[sorted(labels)[0]] + 1) % len(eye)]
    assert metrics["predictions"][sorted(labels)[0]]["majority"] == wrong


def test_video_benchmark_end_to_end(video_twin, tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "benchmark",
                str(video_twin.root),
                "--task",
                "video",
                "--models",
                "test_efficientnet",
                "--epochs",
                "1",
                "--input-size",
                "32",
                "--out",
                str(tmp_path / "vb"),
                "--json",
            ]
        )
        == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert results["split"] == {"train": 6, "val": 6, "test": 6}
    assert results["test"]["videos"] == 6 and "majority_vote" in results["test"]
    assert "| mean probability |" in (tmp_path / "vb" / "results.md").read_text()


def test_video_training_resumes_exactly_and_runs_on_two_processes(
    video_twin, tmp_path: Path, crash_after_first_epoch, run_cli
) -> None:
    from hyperkvasir.video.config import VideoConfig
    from hyperkvasir.video.train import train_video

    fast = dict(model="test_efficientnet", epochs=2, size=32, batch_size=8, pretrained=False, every=10)
    full = train_video(VideoConfig(root=str(video_twin.root), out=str(tmp_path / "full"), **fast))
    disarm = crash_after_first_epoch()
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_video(VideoConfig(root=str(video_twin.root), out=str(tmp_path / "cut"), **fast))
    disarm()
    resumed = train_video(VideoConfig(root=str(video_twin.root), out=str(tmp_path / "cut")), resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("train_images_per_s", "epoch_s")} for r in rows]  # noqa: E731
    assert strip(json.loads((tmp_path / "cut" / "metrics.json").read_text())) == strip(
        json.loads((tmp_path / "full" / "metrics.json").read_text())
    )
    assert resumed["test"]["predictions"] == full["test"]["predictions"]

    # two processes, frames extracted by rank 0 into the run while the other waits
    run_cli(
        [
            "train",
            "video",
            video_twin.root,
            "--model",
            "test_efficientnet",
            "--epochs",
            "1",
            "--size",
            "32",
            "--every",
            "10",
            "--batch-size",
            "4",
            "--no-pretrained",
            "--lr",
            "0",
            "--json",
            "--out",
            tmp_path / "ddp",
        ],
        processes=2,
    )
    frames = json.loads((tmp_path / "ddp" / "metrics-test.json").read_text())["frames"]
    assert frames == len(list((tmp_path / "ddp" / "frames").glob("*/*.jpg"))) > 0
    row = json.loads((tmp_path / "ddp" / "metrics.json").read_text())[0]
    assert row["val_videos"] == full["split"]["val"] and row["train_images"] > 0
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world_size"] == 2
