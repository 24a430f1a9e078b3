"""A classifier on videos: one file, every video of a release (``--part videos``), resumed after a kill, and
sharded over two torchrun processes — the same outputs and code path as a video checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from hyperkvasir.cli import main
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.video.decode import decode_frames, model_input

CLASS_COLUMNS = [c.folder for c in CLASSES]


@pytest.fixture(scope="module")
def many_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release of twelve twin videos (and nothing else), enough for a kill to land between two of them."""
    from hyperkvasir.synth.tree import make_synthetic_release

    return make_synthetic_release(
        tmp_path_factory.mktemp("videos") / "hk", seed=5, scale="tiny", parts=("videos",), videos=12
    ).root


def _table(folder: Path) -> list[dict]:
    return pq.read_table(folder / "frames.parquet").to_pylist()


def test_a_classifier_scores_one_video_file_as_its_image_predict_would(
    classify_checkpoint: Path, tiny_twin, tmp_path: Path, capsys
) -> None:
    from hyperkvasir.classify.module import ClassifyModule
    from hyperkvasir.datasets.transforms import normalise
    from hyperkvasir.models import MODELS

    video = sorted(tiny_twin.root.glob("labeled-videos/**/*.avi"))[0]
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(classify_checkpoint),
                str(video),
                "--every",
                "2",
                "--workers",
                "0",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["videos"] == 1 and summary["frames"] == 10 and summary["classes"] == 23
    table = pq.read_table(out / "frames.parquet")
    assert table.column_names == ["video", "frame_index", "time_s", "label", *CLASS_COLUMNS]
    rows = table.to_pylist()
    assert [r["frame_index"] for r in rows] == list(range(0, 20, 2)) and {r["video"] for r in rows} == {video.name}
    # the probabilities are the classifier's on the frames of the shared decode, as classify's predict computes them
    module, _ = ClassifyModule.from_checkpoint(classify_checkpoint, torch.device("cpu"))
    model, config = module.model, module.config
    squares = [
        model_input(rgb, config.input_size) for _, _, rgb in decode_frames(video, every=2, size=config.input_size)
    ]
    images = normalise(
        torch.from_numpy(np.stack(squares)).permute(0, 3, 1, 2), MODELS[config.model].mean, MODELS[config.model].std
    )
    with torch.no_grad():
        expected = torch.softmax(model(images).float(), 1).numpy()
    scored = np.array([[r[c] for c in CLASS_COLUMNS] for r in rows])
    np.testing.assert_allclose(scored, expected, atol=1e-6)
    assert [r["label"] for r in rows] == [CLASS_COLUMNS[i] for i in expected.argmax(1)]
    timeline = (out / "timeline.csv").read_text().splitlines()
    assert timeline[0] == "video,second,finding,probability" and timeline[1].split(",")[2] in CLASS_COLUMNS
    # 20 frames at 25 fps: one second, averaged over itself alone (not diluted by the zeros beyond the video)
    assert float(timeline[1].split(",")[3]) == pytest.approx(scored.mean(0).max(), abs=1e-4)
    assert (out / f"{video.stem}-strip.png").is_file() and not (tmp_path / "out.work").exists()


def test_part_videos_scores_every_video_of_the_release(classify_checkpoint: Path, tiny_twin, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(classify_checkpoint),
                str(tiny_twin.root),
                "--part",
                "videos",
                "--every",
                "5",
                "--workers",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    videos = sorted(tiny_twin.root.glob("labeled-videos/**/*.avi"))
    rows = _table(out)
    assert sorted({r["video"] for r in rows}) == sorted(str(v.relative_to(tiny_twin.root)) for v in videos)
    assert len(rows) == 4 * len(videos)  # frames 0, 5, 10, 15 of each 20-frame clip
    for video in videos:
        stem = video.relative_to(tiny_twin.root / "labeled-videos").with_suffix("")
        assert (out / f"{stem}-strip.png").is_file()
    assert not (out / "labeled-videos").exists(), "OUT never looks like a release root"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--gradcam", "{tmp}/cam"], "--gradcam does not apply to videos"),
        (["--pseudo-labels", "{tmp}/pl.csv"], "--pseudo-labels does not apply to videos"),
        (["{image}"], "is an image among video inputs"),
    ],
)
def test_what_does_not_apply_to_videos_is_one_line(
    classify_checkpoint: Path, tiny_twin, tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    video = sorted(tiny_twin.root.glob("labeled-videos/**/*.avi"))[0]
    image = next(tiny_twin.root.glob("unlabeled-images/**/*.jpg"))
    extra = [e.format(tmp=tmp_path, image=image) for e in extra]
    assert main(["predict", str(classify_checkpoint), str(video), *extra, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "out").exists()


def _markers(work: Path) -> set[str]:
    """The done markers of finished videos in a work folder."""
    return {p.name for p in work.glob("*.done.json")}


def test_a_killed_run_continues_where_it_stopped_and_equals_an_uninterrupted_one(
    classify_checkpoint: Path, many_videos: Path, tmp_path: Path, capsys
) -> None:
    def command(every: int = 1) -> list[str]:
        return [
            "predict",
            str(classify_checkpoint),
            str(many_videos),
            "--part",
            "videos",
            "--every",
            str(every),
            "--workers",
            "0",
            "--json",
        ]

    argv = command()
    out, work = tmp_path / "out", tmp_path / "out.work"
    process = subprocess.Popen(
        [sys.executable, "-m", "hyperkvasir", *argv, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 240
    while not (work.is_dir() and _markers(work)) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL, process.stderr.read()[-2000:] if process.stderr else ""
    process.stderr.close()
    finished = _markers(work)
    assert 1 <= len(finished) < 12 and not out.exists(), f"killed after {len(finished)} of 12 videos"
    # another --every is not mixed with the finished videos: one line, the work kept
    assert main([*command(every=2), "--out", str(out)]) == 2
    assert "holds the finished videos of another run (every 1 → 2)" in capsys.readouterr().err
    assert _markers(work) == finished
    assert main([*argv, "--out", str(out)]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert (resumed["kept"], resumed["scored"], resumed["videos"]) == (len(finished), 12 - len(finished), 12)
    assert not work.exists()
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    assert _table(out) == _table(tmp_path / "whole")
    assert (out / "timeline.csv").read_text() == (tmp_path / "whole" / "timeline.csv").read_text()
    strips = sorted(p.relative_to(out) for p in out.rglob("*-strip.png"))
    assert len(strips) == 12 and strips == sorted(
        p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*-strip.png")
    )


def test_two_torchrun_processes_write_what_one_process_writes(
    classify_checkpoint: Path, many_videos: Path, tmp_path: Path, run_cli
) -> None:
    argv = ["predict", classify_checkpoint, many_videos, "--part", "videos", "--every", "3", "--workers", "0"]
    two = run_cli([*argv, "--out", tmp_path / "two"], processes=2)
    assert two.stdout.count("frames of 12 videos scored") == 1, "rank 0 alone merges and reports"
    run_cli([*argv, "--out", tmp_path / "one"])
    assert _table(tmp_path / "two") == _table(tmp_path / "one") and len(_table(tmp_path / "one")) == 12 * 7
    assert (tmp_path / "two" / "timeline.csv").read_text() == (tmp_path / "one" / "timeline.csv").read_text()
    assert len(list((tmp_path / "two").rglob("*-strip.png"))) == 12 and not (tmp_path / "two.work").exists()
