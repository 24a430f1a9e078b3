"""``evaluate video``: a video checkpoint's per-frame predictions (``predict … --part videos``) scored per video
against the release's video labels, the figures recomputed here from frames.parquet and video-labels.csv alone,
and what cannot be scored refused with one line."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from hyperkvasir.cli import main
from hyperkvasir.data.taxonomy import CLASSES, VIDEO_CLASS_NAMES, normalise_video_finding


@pytest.fixture(scope="module")
def predicted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(release of 18 twin videos, a one-epoch video checkpoint trained on it, predict --part videos of it)."""
    from hyperkvasir.synth.tree import make_synthetic_release
    from hyperkvasir.video.config import VideoConfig
    from hyperkvasir.video.train import train_video

    base = tmp_path_factory.mktemp("evaluate-video")
    root = make_synthetic_release(base / "hk", seed=5, scale="tiny", parts=("videos",), videos=18).root
    fast = dict(model="test_efficientnet", epochs=1, size=32, batch_size=8, pretrained=False, every=10, workers=0)
    train_video(VideoConfig(root=str(root), out=str(base / "run"), **fast))
    checkpoint, out = base / "run" / "best.ckpt", base / "findings"
    argv = ["predict", str(checkpoint), str(root), "--part", "videos", "--every", "5", "--workers", "0"]
    assert main([*argv, "--out", str(out)]) == 0
    return root, checkpoint, out


def _expected(root: Path, out: Path) -> dict[str, dict[str, float]]:
    """Accuracy, macro F1 and MCC per aggregation, from the two files by hand: the truth is each video's first
    finding in video-labels.csv, mean = argmax of the mean of its frames' probability columns, majority = the
    label column's most frequent value (the first to reach it in frame order)."""
    truth = _truth(root)
    rows = pq.read_table(out / "frames.parquet").to_pylist()
    by_video: dict[str, list[dict]] = {}
    for row in rows:
        by_video.setdefault(Path(row["video"]).stem, []).append(row)
    assert set(by_video) == set(truth)
    stems = sorted(by_video, key=lambda stem: by_video[stem][0]["video"])
    true = [truth[stem] for stem in stems]
    mean = [
        VIDEO_CLASS_NAMES[int(np.mean([[r[c] for c in VIDEO_CLASS_NAMES] for r in by_video[stem]], 0).argmax())]
        for stem in stems
    ]
    majority = [Counter(r["label"] for r in by_video[stem]).most_common(1)[0][0] for stem in stems]
    figures = {}
    for name, decided in (("mean_probability", mean), ("majority_vote", majority)):
        figures[name] = {
            "accuracy": accuracy_score(true, decided),
            "macro_f1": f1_score(true, decided, average="macro", labels=sorted(set(true) | set(decided))),
            "mcc": matthews_corrcoef(true, decided),
        }
    return figures


def test_video_level_figures_equal_a_computation_by_hand(predicted, tmp_path: Path, capsys) -> None:
    root, _, out = predicted
    saved = tmp_path / "metrics" / "video.json"
    assert main(["evaluate", "video", "--pred", str(out), "--root", str(root), "--json", "--out", str(saved)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert json.loads(saved.read_text()) == metrics
    assert metrics["videos"] == 18 and metrics["not_predicted"] == 0 and not metrics["unlabeled"]
    for aggregation, figures in _expected(root, out).items():
        for key, value in figures.items():
            assert metrics[aggregation][key] == pytest.approx(value, abs=1e-9), (aggregation, key)
            low, high = metrics[aggregation][f"{key}_ci"]
            assert -1.0 <= low <= high <= 1.0
    assert main(["evaluate", "video", "--pred", str(out), "--root", str(root)]) == 0
    shown = capsys.readouterr().out
    assert "18 labeled videos scored" in shown
    accuracy = metrics["majority_vote"]["accuracy"]
    assert any(line.startswith("majority vote") and f"{accuracy:.3f}" in line for line in shown.splitlines())


def _truth(root: Path) -> dict[str, str | None]:
    with (root / "labeled-videos" / "video-labels.csv").open(newline="") as handle:
        return {row["Video file"]: normalise_video_finding(row["Finding 1"]) for row in csv.DictReader(handle)}


def test_mean_and_majority_decide_differently_where_frames_disagree(predicted, tmp_path: Path, capsys) -> None:
    """The predict output with its probabilities replaced by a known pattern (a one-epoch model's decisions are
    too uniform to tell the aggregations apart): of every three videos one is right in every frame, one leans
    wrong in all frames but the last, which is sure of the truth (mean right, majority wrong), one is wrong."""
    root, _, out = predicted
    truth, table = _truth(root), pq.read_table(out / "frames.parquet")
    videos = table.column("video").to_pylist()
    order = {video: k for k, video in enumerate(sorted(set(videos)))}
    last = {video: i for i, video in enumerate(videos)}
    eye = np.eye(len(VIDEO_CLASS_NAMES))
    probs = []
    for i, video in enumerate(videos):
        true = VIDEO_CLASS_NAMES.index(truth[Path(video).stem])
        wrong = eye[(true + 1) % len(eye)]
        pattern = order[video] % 3
        probs.append(
            eye[true]
            if pattern == 0 or (pattern == 1 and last[video] == i)
            else 0.4 * eye[true] + 0.6 * wrong
            if pattern == 1
            else wrong
        )
    matrix = np.array(probs, dtype=np.float32)
    columns = {k: table.column(k) for k in ("video", "frame_index", "time_s")}
    labels = {"label": [VIDEO_CLASS_NAMES[i] for i in matrix.argmax(1)]}
    (tmp_path / "known").mkdir()
    pq.write_table(
        pa.table(columns | labels | {c: matrix[:, i] for i, c in enumerate(VIDEO_CLASS_NAMES)}),
        tmp_path / "known" / "frames.parquet",
    )
    assert main(["evaluate", "video", "--pred", str(tmp_path / "known"), "--root", str(root), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["mean_probability"]["accuracy"] == pytest.approx(2 / 3)
    assert metrics["majority_vote"]["accuracy"] == pytest.approx(1 / 3)
    for aggregation, figures in _expected(root, tmp_path / "known").items():
        for key, value in figures.items():
            assert metrics[aggregation][key] == pytest.approx(value, abs=1e-9), (aggregation, key)
            low, high = metrics[aggregation][f"{key}_ci"]
            assert low <= value <= high or key == "mcc", (aggregation, key)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_a_folder_predict_did_not_write_is_refused(predicted, capsys) -> None:
    root, _, _ = predicted
    assert main(["evaluate", "video", "--pred", str(root), "--root", str(root)]) == 2
    assert "no frames.parquet there; give the OUT folder of `hyperkvasir predict" in _one_line(capsys)


def test_a_classifiers_image_classes_are_refused(predicted, tmp_path: Path, capsys) -> None:
    root, _, out = predicted
    rows = pq.read_table(out / "frames.parquet").slice(0, 4)
    image_classes = {c.folder: [1.0 / len(CLASSES)] * 4 for c in CLASSES}
    (tmp_path / "classifier").mkdir()
    table = pa.table(
        {k: rows.column(k) for k in ("video", "frame_index", "time_s")} | {"label": ["polyps"] * 4} | image_classes
    )
    pq.write_table(table, tmp_path / "classifier" / "frames.parquet")
    assert main(["evaluate", "video", "--pred", str(tmp_path / "classifier"), "--root", str(root)]) == 2
    assert "image classes of a classifier" in _one_line(capsys)


def test_predictions_of_no_labeled_video_are_refused(predicted, tmp_path: Path, capsys) -> None:
    root, checkpoint, _ = predicted
    clip = tmp_path / "clip.avi"
    shutil.copyfile(sorted(root.glob("labeled-videos/**/*.avi"))[0], clip)
    out = tmp_path / "clip-findings"
    assert main(["predict", str(checkpoint), str(clip), "--every", "5", "--workers", "0", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "video", "--pred", str(out), "--root", str(root)]) == 1
    assert "none of its 1 videos is a labeled video" in _one_line(capsys)
    assert main(["evaluate", "video", "--pred", str(out), "--root", str(tmp_path)]) != 0
    assert "not a HyperKvasir release" in _one_line(capsys)
