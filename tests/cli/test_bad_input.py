"""Bad input never crashes, never passes silently, never leaves litter: one line naming the file or option and
the fix, exit 1 for bad data, 2 for bad usage, nothing half-written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hyperkvasir.cli import main


def _cases(root: Path, tmp: Path) -> list[tuple[str, list[str], int, str, list[Path]]]:
    """(name, argv, exit code, text the one line must hold, paths that must not exist afterwards)."""
    (tmp / "empty-results").mkdir()
    (tmp / "binary.csv").write_bytes(os.urandom(300))
    (tmp / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0not really a jpeg")
    (tmp / "zero.jpg").write_bytes(b"")
    split = str(root / "official_splits" / "2_fold_split.csv")
    run = tmp / "run"
    train = ["train", "classify", str(root), "--model", "test_efficientnet", "--no-pretrained", "--workers", "0",
             "--out", str(run)]
    return [
        ("negative input size", [*train, "--input-size", "-64"], 2, "--input-size must be", [run]),
        ("zero epochs", [*train, "--epochs", "0"], 2, "--epochs must be at least 1", [run]),
        ("negative batch size", [*train, "--batch-size", "-1"], 2, "--batch-size must be", [run]),
        ("fold out of range", [*train, "--fold", "7", "--epochs", "1", "--input-size", "32"], 2, "fold 7", [run]),
        ("report without results", ["report", str(root), "--out", str(tmp / "r.html"), "--results",
                                    str(tmp / "empty-results")], 2, "no results.json",
         [tmp / "r.html", tmp / "r-figures"]),
        ("report into a folder", ["report", str(root), "--out", str(tmp)], 2, "is a folder", []),
        ("binary predictions", ["evaluate", "classify", "--predictions", str(tmp / "binary.csv"), "--truth", split],
         1, "binary.csv", []),
        ("binary truth", ["evaluate", "classify", "--predictions", split, "--truth", str(tmp / "binary.csv")],
         1, "binary.csv", []),
        ("threshold above 1", ["predict", "x.ckpt", str(root), "--threshold", "1.7"], 2, "--threshold", []),
        ("unknown part", ["predict", str(tmp / "binary.csv"), str(root), "--part", "bogus"], 2, "binary.csv", []),
        ("segment flag on video", ["benchmark", str(root), "--task", "video", "--scheme", "grouped-2fold"], 2,
         "--scheme", []),
        ("frames OUT is a file", ["video", "frames", str(root), str(tmp / "binary.csv")], 2, "is a file", []),
        ("export OUT is a file", ["export", "coco", str(root), str(tmp / "binary.csv")], 2, "is a file", []),
        ("splits --out is a folder", ["splits", str(root), "--out", str(tmp)], 2, "is a folder", []),
        ("index --out below a file", ["index", str(root), "--out", str(tmp / "binary.csv" / "m.parquet")], 2,
         "is a file", []),
        ("frames OUT not writable", ["video", "frames", str(root), "/proc/hk-frames"], 2, "not writable", []),
    ]


def test_bad_inputs_give_one_line_and_no_litter(tiny_twin, tmp_path: Path, capsys) -> None:
    failures = []
    for name, argv, code, text, absent in _cases(tiny_twin.root, tmp_path):
        result = main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.strip().splitlines() if line.strip()]
        problems = [p for p, bad in (("exit", result != code), ("text", text not in err),
                                     ("traceback", "Traceback" in err), ("litter", any(p.exists() for p in absent)))
                    if bad]
        if problems:
            failures.append(f"{name}: {problems} (exit {result}) {err[-300:]!r}")
        assert len(lines) <= 4, (name, err)
    assert not failures, "\n".join(failures)
    assert not list((tiny_twin.root / ".hyperkvasir" / "cache").glob("*.tmp")), "no temp file in the cache"


def test_undecodable_inputs_to_predict(tiny_twin, tmp_path: Path, capsys) -> None:
    from hyperkvasir.classify.module import TrainConfig, train_classifier

    train_classifier(TrainConfig(root=str(tiny_twin.root), out=str(tmp_path / "t"), model="test_efficientnet",
                                 epochs=1, input_size=32, workers=0, pretrained=False))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "zero.jpg").write_bytes(b"")
    (tmp_path / "in" / "garbage.jpg").write_bytes(b"\xff\xd8\xffnot a jpeg")
    out = tmp_path / "p.parquet"
    assert main(["predict", str(tmp_path / "t" / "best.ckpt"), str(tmp_path / "in"), "--out", str(out),
                 "--workers", "0"]) == 1
    assert "none of the 2 inputs decodes" in capsys.readouterr().err and not out.exists()
    good = next(tiny_twin.root.glob("labeled-images/**/*.jpg"))
    (tmp_path / "in" / "good.jpg").write_bytes(good.read_bytes())
    assert main(["predict", str(tmp_path / "t" / "best.ckpt"), str(tmp_path / "in"), "--out", str(out),
                 "--workers", "0"]) == 0
    err = capsys.readouterr().err
    assert "2 inputs do not decode and were skipped" in err and "zero.jpg" in err and "garbage.jpg" in err
    assert main(["predict", str(tmp_path / "t" / "best.ckpt"), str(tmp_path / "in"), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_broken_links_in_the_tree_are_findings_not_crashes(twin_copy: Path, capsys) -> None:
    cecum = next(twin_copy.glob("labeled-images/**/cecum"))
    (cecum / "dangling.jpg").symlink_to("/nonexistent/file.jpg")
    (cecum / "loop.jpg").symlink_to(cecum / "loop.jpg")
    assert main(["index", str(twin_copy)]) == 0
    capsys.readouterr()
    assert main(["validate", str(twin_copy)]) == 1
    out = capsys.readouterr().out
    assert "broken-link" in out and "dangling.jpg" in out and "loop.jpg" in out and "Traceback" not in out


def test_outputs_honour_the_umask(twin_copy: Path) -> None:
    previous = os.umask(0o022)
    try:
        assert main(["index", str(twin_copy)]) == 0
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((twin_copy / ".hyperkvasir" / "manifest.parquet").stat().st_mode)
    assert mode == 0o644, oct(mode)


@pytest.mark.parametrize("flag", ["--debug", None])
def test_unexpected_errors_are_one_line_unless_debug(tmp_path: Path, capsys, monkeypatch, flag) -> None:
    import hyperkvasir.data.index as index_module

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(index_module, "build_index", explode)
    (tmp_path / "labeled-images").mkdir()
    if flag:
        with pytest.raises(RuntimeError, match="disk on fire"):
            main(["index", str(tmp_path), flag])
        return
    assert main(["index", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unexpected RuntimeError: disk on fire" in err and "--debug" in err and "Traceback" not in err


def test_truncated_and_garbage_videos_are_named_and_never_marked_done(twin_copy: Path, tmp_path: Path,
                                                                      capsys) -> None:
    video = sorted(twin_copy.glob("labeled-videos/**/*.avi"))[0]
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    (twin_copy / "labeled-videos" / "garbage.avi").write_bytes(os.urandom(4000))
    out = tmp_path / "frames"
    for _ in range(2):  # a rerun retries the truncated video instead of trusting a marker
        assert main(["video", "frames", str(twin_copy), str(out), "--every", "5"]) == 1
        text = capsys.readouterr().out
        assert "truncated:" in text and video.name in text and "garbage.avi" in text
        assert not (out / video.stem / ".done.json").exists()
        assert not (out / "garbage").exists(), "no empty folder is left for an unreadable video"


def test_segmentation_inputs(tiny_twin, tmp_path: Path, capsys) -> None:
    import json as json_module

    masks = tiny_twin.root / "segmented-images" / "masks"
    boxes = json_module.loads((tiny_twin.root / "segmented-images" / "bounding-boxes.json").read_text())
    stem = sorted(boxes)[0]
    boxes[stem]["bbox"][0]["xmin"] = -5
    (tmp_path / "boxes.json").write_text(json_module.dumps(boxes))
    assert main(["evaluate", "segment", "--pred", str(masks), "--truth", str(masks), "--boxes",
                 str(tmp_path / "boxes.json")]) == 1
    err = capsys.readouterr().err
    assert "boxes.json" in err and stem in err and "leaves its" in err
    some_file = next(masks.iterdir())
    assert main(["evaluate", "segment", "--pred", str(some_file), "--truth", str(masks)]) == 2
    assert "is a file; pass the folder" in capsys.readouterr().err


def test_a_zero_byte_jpeg_is_named_as_empty(twin_copy: Path, capsys) -> None:
    empty = sorted(twin_copy.glob("labeled-images/**/*.jpg"))[0]
    empty.write_bytes(b"")
    assert main(["validate", str(twin_copy)]) == 1
    out = capsys.readouterr().out
    assert "empty file (0 bytes)" in out and empty.name in out and "BytesIO" not in out
