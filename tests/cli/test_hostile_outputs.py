"""Issue 22, class 1 (data loss) and everything about output folders: overwrite guards, staged outputs that
appear whole or not at all, full disks, exports that read nothing outside the tree, and the report's escaping."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import pytest

from hyperkvasir.cli import main


def _digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path → SHA-1), to prove a folder was left exactly as it was."""
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _release_only(folder: Path) -> dict[str, str]:
    return {k: v for k, v in _digest(folder).items() if not k.startswith(".hyperkvasir")}


# ------------------------------------------------------------------------------------------- data loss
def test_export_overwrite_onto_its_own_release_deletes_nothing(twin_copy: Path, capsys) -> None:
    before = _release_only(twin_copy)
    assert main(["export", "imagefolder", str(twin_copy), str(twin_copy), "--overwrite"]) == 2
    assert str(twin_copy) in capsys.readouterr().err
    assert _release_only(twin_copy) == before


def test_export_overwrite_onto_the_folder_holding_the_release_deletes_nothing(
    tiny_twin, tmp_path: Path, capsys
) -> None:
    holder = tmp_path / "holder"
    shutil.copytree(tiny_twin.root, holder / "release", ignore=shutil.ignore_patterns(".hyperkvasir"))
    (holder / "thesis.txt").write_text("years of work")
    before = _digest(holder)
    assert main(["export", "coco", str(holder / "release"), str(holder), "--overwrite"]) == 2
    assert "nothing was deleted" in capsys.readouterr().err
    assert {k: v for k, v in _digest(holder).items() if "/.hyperkvasir/" not in k} == {
        k: v for k, v in before.items() if "/.hyperkvasir/" not in k
    }


def test_export_overwrite_refuses_release_roots_work_dirs_and_foreign_folders(
    tiny_twin, twin_copy: Path, tmp_path: Path, capsys
) -> None:
    other = tmp_path / "other-release"
    (other / "official_splits").mkdir(parents=True)
    (other / "official_splits" / "2_fold_split.csv").write_text("keep me")
    inside = twin_copy / "labeled-images" / "lower-gi-tract"
    work = tmp_path / "work"
    (work / "cache").mkdir(parents=True)
    (work / "cache" / "square-64.npy").write_bytes(b"cache")
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"jpeg")
    for target, expected in (
        (other, "is a release root"),
        (inside, "lies inside the release root"),
        (foreign, "holds files the toolkit did not create"),
    ):
        before = _digest(target)
        assert main(["export", "imagefolder", str(tiny_twin.root), str(target), "--overwrite"]) == 2
        assert expected in capsys.readouterr().err
        assert _digest(target) == before
    assert main(["--work-dir", str(work), "export", "imagefolder", str(twin_copy), str(work), "--overwrite"]) == 2
    assert "keeps its work in" in capsys.readouterr().err and (work / "cache" / "square-64.npy").is_file()


def test_demo_refuses_a_folder_it_did_not_make(tiny_twin, tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    shutil.copytree(tiny_twin.root, out / "release", ignore=shutil.ignore_patterns(".hyperkvasir"))
    (out / "benchmark").mkdir()
    (out / "benchmark" / "notes.md").write_text("mine")
    before = _digest(out)
    assert main(["demo", "--out", str(out)]) == 2
    assert "nothing was deleted" in capsys.readouterr().err
    assert _digest(out) == before


# ---------------------------------------------------------------------------------- stepping outside
@pytest.mark.parametrize(
    "fmt, extra", [("imagefolder", ["--copy"]), ("imagefolder", []), ("webdataset", []), ("hf", [])]
)
def test_export_reads_nothing_outside_the_tree_through_a_link(
    twin_copy: Path, tmp_path: Path, fmt: str, extra: list[str], capsys
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"SECRET-OUTSIDE-THE-TREE " * 20)
    victim = next((twin_copy / "labeled-images").rglob("*.jpg"))
    victim.unlink()
    victim.symlink_to(secret)
    out = tmp_path / "out"
    code = main(["export", fmt, str(twin_copy), str(out), *extra])
    err = capsys.readouterr().err
    assert code == 1 and victim.name in err and str(secret) in err and not out.exists()
    for path in out.rglob("*") if out.exists() else []:
        if path.is_symlink():
            assert Path(os.readlink(path)).resolve() != secret.resolve()
        elif path.is_file():
            assert b"SECRET-OUTSIDE-THE-TREE" not in path.read_bytes(), path


# -------------------------------------------------------------------------------------- silent results
def test_export_and_frames_name_what_a_listing_leaves_out(twin_copy: Path, tmp_path: Path, capsys) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    mask = next((twin_copy / "segmented-images" / "masks").glob("*.jpg"))
    video = next(twin_copy.glob("labeled-videos/**/*.avi"))
    for link in (mask, video):
        shutil.move(link, outside / link.name)
        link.symlink_to(outside / link.name)
    assert main(["export", "coco", str(twin_copy), str(tmp_path / "coco")]) == 1  # not a COCO lacking a mask
    assert "link-outside-tree" in capsys.readouterr().err and not (tmp_path / "coco").exists()
    assert main(["video", "frames", str(twin_copy), str(tmp_path / "frames"), "--every", "10", "--json"]) == 1
    failed = json.loads(capsys.readouterr().out)["failed"]
    assert str(video.relative_to(twin_copy)) in failed and not (tmp_path / "frames" / video.stem).exists()


def test_coco_and_yolo_refuse_a_mask_of_another_size(twin_copy: Path, tmp_path: Path, capsys) -> None:
    mask = next((twin_copy / "segmented-images" / "masks").glob("*.jpg"))
    pixels = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(
        str(mask), cv2.resize(pixels, (pixels.shape[1] // 2, pixels.shape[0] // 2), interpolation=cv2.INTER_NEAREST)
    )
    for fmt in ("coco", "yolo"):
        assert main(["export", fmt, str(twin_copy), str(tmp_path / fmt)]) == 1
        err = capsys.readouterr().err
        assert mask.name in err and "its image is" in err and not (tmp_path / fmt).exists()
        assert not list(tmp_path.glob(f".{fmt}.*"))


def test_yolo_yaml_names_the_final_folder(tiny_twin, tmp_path: Path) -> None:
    import yaml

    out = tmp_path / "yolo"
    assert main(["export", "yolo", str(tiny_twin.root), str(out)]) == 0
    for name in ("data.yaml", "data-segment.yaml"):
        spec = yaml.safe_load((out / name).read_text())
        assert Path(spec["path"]) == out.resolve()
        assert list((Path(spec["path"]) / spec["train"]).glob("*.jpg"))
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # not the private mode of a temp folder


# --------------------------------------------------------------------------- staged outputs and full disks
@pytest.fixture(scope="module")
def segment_checkpoint(tiny_twin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hyperkvasir.segment.config import SegmentConfig
    from hyperkvasir.segment.train import train_segment

    run = tmp_path_factory.mktemp("seg") / "run"
    train_segment(
        SegmentConfig(
            root=str(tiny_twin.root),
            out=str(run),
            epochs=1,
            size=32,
            batch_size=4,
            workers=0,
            pretrained=False,
            model="test_efficientnet",
        )
    )
    return run / "best.ckpt"


def test_ctrl_c_during_segment_predict_leaves_the_previous_output_whole(
    segment_checkpoint: Path, tiny_twin, tmp_path: Path, monkeypatch
) -> None:
    import hyperkvasir.segment.predict as predict

    images = str(tiny_twin.root / "segmented-images" / "images")
    out = tmp_path / "pred"
    assert main(["predict", str(segment_checkpoint), images, "--out", str(out)]) == 0
    before = _digest(out)
    real, calls = predict._png, []

    def interrupted(path, image):
        calls.append(path)
        if len(calls) % 4 == 0:  # the second image, of each call
            raise KeyboardInterrupt
        real(path, image)

    monkeypatch.setattr(predict, "_png", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict.predict_masks(segment_checkpoint, [images], out)
    assert _digest(out) == before and (out / "bounding-boxes.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["pred"]  # no staging folder left beside it
    with pytest.raises(KeyboardInterrupt):
        predict.predict_masks(segment_checkpoint, [images], tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_predict_refuses_an_out_folder_it_did_not_make(
    segment_checkpoint: Path, tiny_twin, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    images = tiny_twin.root / "segmented-images" / "images"
    assert main(["predict", str(segment_checkpoint), str(images), "--out", str(out)]) == 2
    assert "nothing was deleted" in capsys.readouterr().err and (out / "notes.txt").read_text() == "keep"
    assert main(["predict", str(segment_checkpoint), str(images), "--out", str(images)]) == 2
    assert "this command reads" in capsys.readouterr().err


def test_export_model_onto_a_full_disk_leaves_nothing(segment_checkpoint: Path, small_disk, capsys) -> None:
    disk = small_disk("32k")
    out = disk / "deploy"
    assert main(["export-model", str(segment_checkpoint), "--format", "torchscript", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert str(out) in err and "disk is full" in err and len(err.strip().splitlines()) == 1
    assert list(disk.iterdir()) == []


def test_report_escapes_a_foreign_results_folder(tiny_twin, tmp_path: Path) -> None:
    evil = "<script>alert('x')</script>"
    results = tmp_path / "results"
    results.mkdir()
    metrics = dict.fromkeys(
        ("macro_precision", "macro_recall", "macro_f1", "micro_precision", "micro_recall", "micro_f1", "mcc"), 0.5
    )
    (results / "results.json").write_text(
        json.dumps(
            {
                "scheme": "official-2fold",
                "models": {evil: {"mean": metrics, "per_class_f1": {evil: {"f1": 0.5}}}},
                "majority_class": metrics,
                "shortcuts": {"summary": evil},
            }
        )
    )
    (results / "results.md").write_text(f"| model |\n|---|\n| {evil} |\n| <img src=x onerror=alert(1)> |\n")
    assert main(["report", str(tiny_twin.root), "--out", str(tmp_path / "r.html"), "--results", str(results)]) == 0
    html = (tmp_path / "r.html").read_text()
    assert evil not in html and "onerror=alert(1)>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_report_replaces_only_its_own_figures_folder(tiny_twin, tmp_path: Path, capsys) -> None:
    figures = tmp_path / "r-figures"
    figures.mkdir()
    (figures / "my-drawing.png").write_bytes(b"mine")
    assert main(["report", str(tiny_twin.root), "--out", str(tmp_path / "r.html")]) == 2
    assert "nothing was deleted" in capsys.readouterr().err and (figures / "my-drawing.png").read_bytes() == b"mine"
    assert not (tmp_path / "r.html").exists()
    assert main(["report", str(tiny_twin.root), "--out", str(tmp_path / "s.html")]) == 0
    first = sorted(p.name for p in (tmp_path / "s-figures").iterdir())
    assert main(["report", str(tiny_twin.root), "--out", str(tmp_path / "s.html")]) == 0  # a rerun replaces it
    assert sorted(p.name for p in (tmp_path / "s-figures").iterdir()) == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_disk_too_small_for_the_image_cache_is_one_line_and_leaves_nothing(
    tiny_twin, tmp_path: Path, small_disk
) -> None:
    import sys

    work = small_disk("600k")  # the manifest fits, the 64-px cache (0.8 MiB) does not
    run = tmp_path / "run"
    command = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hyperkvasir",
            "--work-dir",
            str(work),
            "train",
            "classify",
            str(tiny_twin.root),
            "--model",
            "test_efficientnet",
            "--input-size",
            "64",
            "--epochs",
            "1",
            "--workers",
            "0",
            "--no-pretrained",
            "--out",
            str(run),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _, stderr = command.communicate(timeout=300)  # the pipes close only when every process holding them ended
    left = [
        line.split()[1]
        for line in subprocess.run(["ps", "-eo", "sid=,pid="], capture_output=True, text=True).stdout.splitlines()
        if line.split()[0] == str(command.pid)
    ]
    assert command.returncode == 1, stderr[-2000:]
    assert len(stderr.strip().splitlines()) == 1 and str(work) in stderr and "--work-dir" in stderr
    assert not list(work.rglob("*.tmp")) and not run.exists()
    assert left == []  # no worker outlives the command


def test_checkpoints_are_staged_beside_the_run_not_in_the_system_temp_folder(
    tiny_twin, tmp_path: Path, small_disk
) -> None:
    import sys

    system_temp = small_disk("64k")  # a small system temp folder, as on many clusters; a checkpoint does not fit
    run = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hyperkvasir",
            "train",
            "classify",
            str(tiny_twin.root),
            "--model",
            "test_efficientnet",
            "--input-size",
            "32",
            "--epochs",
            "1",
            "--workers",
            "0",
            "--no-pretrained",
            "--out",
            str(run),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"TMPDIR": str(system_temp)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (run / "best.ckpt").is_file() and (run / "last.ckpt").is_file() and not list(run.glob(".*.tmp"))


def test_video_frames_rerun_with_a_new_size_keeps_no_old_frame(tiny_twin, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "frames"
    assert main(["video", "frames", str(tiny_twin.root), str(out), "--every", "5", "--size", "64"]) == 0
    assert main(["video", "frames", str(tiny_twin.root), str(out), "--every", "10", "--size", "32"]) == 0
    frames = sorted(out.rglob("*.jpg"))
    assert frames and all(min(Image.open(p).size) == 32 for p in frames)
    assert all(int(p.stem.rsplit("_", 1)[1]) % 10 == 0 for p in frames)
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_video_frames_refuses_to_replace_a_folder_it_did_not_make(tiny_twin, tmp_path: Path, capsys) -> None:
    out = tmp_path / "frames"
    stem = next(tiny_twin.root.glob("labeled-videos/**/*.avi")).stem
    (out / stem).mkdir(parents=True)
    (out / stem / "annotations.txt").write_text("mine")
    assert main(["video", "frames", str(tiny_twin.root), str(out), "--every", "5", "--workers", "1"]) == 2
    assert "nothing was deleted" in capsys.readouterr().err
    assert (out / stem / "annotations.txt").read_text() == "mine"


def test_two_video_frames_runs_into_one_folder_do_not_mix(tiny_twin, tmp_path: Path) -> None:
    import sys

    out = tmp_path / "frames"
    command = [sys.executable, "-m", "hyperkvasir", "video", "frames", str(tiny_twin.root), str(out), "--workers", "1"]
    runs = [
        subprocess.Popen(command + ["--every", str(every)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for every in (2, 3)
    ]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in results) in ([0, 0], [0, 2]), results
    assert all("another `hyperkvasir video frames` is writing there" in err for code, err in results if code == 2)
    for folder in (p for p in out.iterdir() if p.is_dir()):
        done = json.loads((folder / ".done.json").read_text())
        assert len({f[0] for f in done["frames"]}) == len(list(folder.glob("*.jpg")))  # one run's frames only
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_a_concurrent_export_into_the_same_out_is_not_replaced_without_overwrite(
    tiny_twin, tmp_path: Path, monkeypatch, capsys
) -> None:
    import hyperkvasir.dataset_export as exporting

    out = tmp_path / "out"
    real = exporting._EXPORTERS["imagefolder"]

    def slow_while_another_finishes(*args, **kwargs):
        summary = real(*args, **kwargs)
        assert exporting.export("coco", tiny_twin.root, out)["format"] == "coco"  # the other run, finished first
        return summary

    monkeypatch.setitem(exporting._EXPORTERS, "imagefolder", slow_while_another_finishes)
    assert main(["export", "imagefolder", str(tiny_twin.root), str(out)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (out / "polyps").is_dir() and not (out / "fold-0").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
