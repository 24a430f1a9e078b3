"""Issue 22's leftovers: same-named videos in two folders, file names that are no UTF-8, an interrupted synth or
Grad-CAM run, EXIF-rotated sizes in the index, and the further hostile inputs of the last sweep."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hyperkvasir.cli import main

FAST = dict(model="test_efficientnet", epochs=1, input_size=32, batch_size=8, workers=0, pretrained=False)


def _litter(parent: Path, name: str) -> list[str]:
    """Staging folders or temp files left beside ``name`` in ``parent``."""
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


@pytest.fixture(scope="module")
def video_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """(best.ckpt of a one-epoch video model, two different video files of its twin)."""
    from hyperkvasir.synth.tree import make_synthetic_release
    from hyperkvasir.video.config import VideoConfig
    from hyperkvasir.video.train import train_video

    base = tmp_path_factory.mktemp("video")
    twin = make_synthetic_release(base / "hk", seed=5, scale="tiny", parts=("videos",), videos=18)
    train_video(
        VideoConfig(
            root=str(twin.root),
            out=str(base / "run"),
            model="test_efficientnet",
            epochs=1,
            size=32,
            batch_size=8,
            pretrained=False,
            every=10,
        )
    )
    return base / "run" / "best.ckpt", sorted(twin.root.glob("labeled-videos/**/*.avi"))[:2]


@pytest.fixture(scope="module")
def classifier(tiny_twin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.classify.train import train_classify

    out = tmp_path_factory.mktemp("classifier") / "run"
    train_classify(ClassifyConfig(root=str(tiny_twin.root), out=str(out), **FAST))
    return out / "best.ckpt"


# ------------------------------------------------------------------------------------------- silent results
def test_same_named_videos_in_two_folders_keep_their_own_rows_and_strips(video_checkpoint, tmp_path: Path) -> None:
    checkpoint, videos = video_checkpoint
    for site, video in zip(("site1", "site2"), videos):
        (tmp_path / "sites" / site).mkdir(parents=True)
        shutil.copyfile(video, tmp_path / "sites" / site / "case.avi")
    out = tmp_path / "out"
    assert main(["predict", str(checkpoint), str(tmp_path / "sites"), "--every", "5", "--out", str(out)]) == 0
    rows = pq.read_table(out / "frames.parquet").to_pylist()
    assert {row["video"] for row in rows} == {"site1/case.avi", "site2/case.avi"}
    timeline = {line.split(",")[0] for line in (out / "timeline.csv").read_text().splitlines()[1:]}
    assert timeline == {"site1/case.avi", "site2/case.avi"}
    assert (out / "site1" / "case-strip.png").is_file() and (out / "site2" / "case-strip.png").is_file()


def test_index_records_the_upright_size_of_an_exif_rotated_jpeg(twin_copy: Path) -> None:
    from hyperkvasir.data.imaging import decode_rgb
    from hyperkvasir.data.index import build_index

    target = next((twin_copy / "labeled-images").rglob("*.jpg"))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90° clockwise to view
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 60, 60)).save(buffer, "JPEG", exif=exif.tobytes())
    target.write_bytes(buffer.getvalue())
    row = next(
        r for r in build_index(twin_copy, workers=1).to_pylist() if r["path"] == str(target.relative_to(twin_copy))
    )
    assert (row["width"], row["height"]) == (30, 40) == decode_rgb(target).shape[1::-1]


# ------------------------------------------------------------------------------------------- messages
def test_a_file_name_that_is_no_utf8_is_left_out_and_named_escaped(twin_copy: Path, capsys) -> None:
    folder = next((twin_copy / "labeled-images").rglob("*.jpg")).parent
    bad = os.path.join(os.fsencode(folder), b"scan\xff.jpg")
    shutil.copyfile(next(folder.glob("*.jpg")), bad)
    assert main(["index", str(twin_copy)]) == 0
    assert "scan\\xff.jpg (undecodable-name)" in capsys.readouterr().out
    manifest = pq.read_table(twin_copy / ".hyperkvasir" / "manifest.parquet").column("path").to_pylist()
    assert not any("scan" in path for path in manifest)
    assert main(["validate", str(twin_copy), "--json"]) == 1
    findings = json.loads(capsys.readouterr().out)["findings"]
    named = [f for f in findings if f["code"] == "undecodable-name"]
    assert len(named) == 1 and named[0]["file"].endswith("scan\\xff.jpg") and named[0]["severity"] == "error"


# ------------------------------------------------------------------------------------------- data loss
def test_interrupted_synth_leaves_no_out_and_no_staging_folder(tmp_path: Path, monkeypatch) -> None:
    from hyperkvasir.synth import tree

    real, written = tree.write_video, []

    def interrupt_after_one(*args, **kwargs):
        if written:
            raise KeyboardInterrupt
        written.append(real(*args, **kwargs))

    monkeypatch.setattr(tree, "write_video", interrupt_after_one)
    assert main(["synth", str(tmp_path / "twin")]) == 130
    assert written and not (tmp_path / "twin").exists() and _litter(tmp_path, "twin") == []


def test_interrupted_video_predict_leaves_no_out(video_checkpoint, tmp_path: Path, monkeypatch) -> None:
    from hyperkvasir.video import predict

    checkpoint, videos = video_checkpoint
    real, drawn = predict._strip, []

    def interrupt_after_one(*args):
        if drawn:
            raise KeyboardInterrupt
        drawn.append(real(*args))

    monkeypatch.setattr(predict, "_strip", interrupt_after_one)
    assert main(["predict", str(checkpoint), *map(str, videos), "--out", str(tmp_path / "out")]) == 130
    assert drawn and not (tmp_path / "out").exists() and _litter(tmp_path, "out") == []


def test_interrupted_gradcam_leaves_no_folder(classifier: Path, tiny_twin, tmp_path: Path, monkeypatch) -> None:
    from hyperkvasir.classify import gradcam

    real, drawn = gradcam.overlay, []

    def interrupt_after_one(*args, **kwargs):
        if drawn:
            raise KeyboardInterrupt
        drawn.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(gradcam, "overlay", interrupt_after_one)
    images = tiny_twin.root / "unlabeled-images" / "images"
    assert (
        main(
            [
                "predict",
                str(classifier),
                str(images),
                "--out",
                str(tmp_path / "p.parquet"),
                "--workers",
                "0",
                "--gradcam",
                str(tmp_path / "cam"),
            ]
        )
        == 130
    )
    assert drawn and not (tmp_path / "cam").exists() and _litter(tmp_path, "cam") == []
    assert not (tmp_path / "p.parquet").exists()


def test_gradcam_under_two_processes_is_renamed_whole_with_every_rank_s_overlays(
    classifier: Path, tiny_twin, tmp_path: Path, run_cli
) -> None:
    images = tiny_twin.root / "unlabeled-images" / "images"
    run_cli(
        [
            "predict",
            classifier,
            images,
            "--out",
            tmp_path / "p.parquet",
            "--workers",
            "0",
            "--gradcam",
            tmp_path / "cam",
        ],
        processes=2,
    )
    written = sorted(p.stem for p in (tmp_path / "cam").glob("*.png"))
    assert written == sorted(p.stem for p in images.glob("*.jpg"))
    assert (tmp_path / "cam" / ".hyperkvasir-output.json").is_file() and _litter(tmp_path, "cam") == []
    assert np.isfinite(pq.read_table(tmp_path / "p.parquet").column("polyps").to_numpy()).all()


# ------------------------------------------------------------------------------------------- the sweep
def test_resume_of_a_run_whose_config_json_is_damaged_names_the_file(
    classifier: Path, tiny_twin, tmp_path: Path, capsys
) -> None:
    run = Path(shutil.copytree(classifier.parent, tmp_path / "run"))
    (run / "config.json").write_text('{"model": ')
    assert main(["train", "classify", str(tiny_twin.root), "--resume", "--out", str(run)]) == 1
    assert f"{run / 'config.json'}: damaged" in capsys.readouterr().err


@pytest.mark.parametrize("change", [{"future_option": 3}, {"model": "resnet9000"}])
def test_a_checkpoint_from_a_newer_toolkit_is_refused_by_name(
    classifier: Path, tiny_twin, tmp_path: Path, change, capsys
) -> None:
    import torch

    checkpoint = torch.load(classifier, weights_only=True)
    checkpoint["hyper_parameters"]["config"] |= change
    torch.save(checkpoint, tmp_path / "newer.ckpt")
    assert (
        main(
            [
                "predict",
                str(tmp_path / "newer.ckpt"),
                str(tiny_twin.root / "unlabeled-images" / "images"),
                "--out",
                str(tmp_path / "p.parquet"),
                "--workers",
                "0",
            ]
        )
        == 2
    )
    assert "unknown to hyperkvasir" in capsys.readouterr().err and not (tmp_path / "p.parquet").exists()


def test_predict_scores_an_image_whose_name_is_no_utf8_and_names_it_escaped(
    classifier: Path, tiny_twin, tmp_path: Path
) -> None:
    (tmp_path / "images").mkdir()
    source = next((tiny_twin.root / "unlabeled-images" / "images").glob("*.jpg"))
    shutil.copyfile(source, os.path.join(os.fsencode(tmp_path / "images"), b"scan\xff.jpg"))
    assert (
        main(
            [
                "predict",
                str(classifier),
                str(tmp_path / "images"),
                "--out",
                str(tmp_path / "p.parquet"),
                "--workers",
                "0",
                "--gradcam",
                str(tmp_path / "cam"),
            ]
        )
        == 0
    )
    assert pq.read_table(tmp_path / "p.parquet").column("path").to_pylist() == [
        str(tmp_path / "images" / "scan\\xff.jpg")
    ]
    assert sorted(os.listdir(os.fsencode(tmp_path / "cam"))) == [b".hyperkvasir-output.json", b"scan\xff.png"]


def test_video_predict_names_a_video_whose_name_is_no_utf8_escaped(video_checkpoint, tmp_path: Path) -> None:
    checkpoint, videos = video_checkpoint
    (tmp_path / "videos").mkdir()
    shutil.copyfile(videos[0], os.path.join(os.fsencode(tmp_path / "videos"), b"case\xff.avi"))
    assert main(["predict", str(checkpoint), str(tmp_path / "videos"), "--out", str(tmp_path / "out")]) == 0
    assert {row["video"] for row in pq.read_table(tmp_path / "out" / "frames.parquet").to_pylist()} == {"case\\xff.avi"}


def test_an_output_folder_inside_the_release_s_own_folders_is_refused(
    twin_copy: Path, classify_checkpoint: Path, capsys
) -> None:
    cams = twin_copy / "labeled-images" / "cams"
    assert (
        main(
            [
                "predict",
                str(classify_checkpoint),
                str(twin_copy / "unlabeled-images" / "images"),
                "--out",
                str(twin_copy.parent / "p.parquet"),
                "--workers",
                "0",
                "--gradcam",
                str(cams),
            ]
        )
        == 2
    )
    assert "a folder of the release" in capsys.readouterr().err and not cams.exists()
