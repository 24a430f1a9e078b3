from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hyperkvasir.cli import main
from hyperkvasir.data.imaging import load_square
from hyperkvasir.data.layout import Release
from hyperkvasir.video.decode import decode_frames, model_input
from hyperkvasir.video.frames import MARKER, extract_frames


def test_every_n_gives_exact_frame_numbers(tiny_twin, tmp_path: Path) -> None:
    report = extract_frames(tiny_twin.root, tmp_path / "f", every=3, workers=2)
    assert report.failed == {} and report.frames == 3 * 7  # 20 frames per clip: 0, 3, …, 18
    table = pq.read_table(tmp_path / "f" / "frames.parquet").to_pylist()
    assert sorted({r["frame_index"] for r in table}) == [0, 3, 6, 9, 12, 15, 18]
    assert all((tmp_path / "f" / r["path"]).is_file() for r in table)


def test_fps_and_reduced_size(tiny_twin, tmp_path: Path) -> None:
    report = extract_frames(tiny_twin.root, tmp_path / "f", fps=5, size=64, workers=1)
    assert report.frames == 3 * 4  # 25 fps → frames 0, 5, 10, 15
    first = next((tmp_path / "f").rglob("*.jpg"))
    assert min(Image.open(first).size) == 64


def test_resume_skips_finished_videos_and_existing_frames(tiny_twin, tmp_path: Path) -> None:
    out = tmp_path / "f"
    extract_frames(tiny_twin.root, out, every=4, workers=1)
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    # as after a kill inside the second video: its frames still in the partial folder, no marker, two missing
    partial = out / f".{folders[1].name}.partial"
    folders[1].rename(partial)
    (partial / MARKER).unlink()
    (partial / ".params.json").write_text(json.dumps({"every": 4, "fps": None, "size": None}))
    frames = sorted(partial.glob("*.jpg"))
    for path in frames[-2:]:
        path.unlink()
    kept = frames[0].stat().st_mtime_ns
    os.utime(frames[0], ns=(kept, kept))
    report = extract_frames(tiny_twin.root, out, every=4, workers=1)
    assert report.skipped_finished == 2 and report.frames == 3 * 5
    assert [p.name for p in sorted(folders[1].glob("*.jpg"))] == [p.name for p in frames]
    assert (folders[1] / frames[0].name).stat().st_mtime_ns == kept and not partial.exists()
    assert not list(out.rglob("*.tmp"))


def test_bad_videos_are_reported_by_name_and_the_rest_continues(twin_copy: Path, tmp_path: Path, capsys) -> None:
    videos = sorted(twin_copy.glob("labeled-videos/**/*.avi"))
    data = videos[0].read_bytes()
    videos[0].write_bytes(data[: len(data) // 10])  # truncated
    videos[1].write_bytes(b"")  # zero length
    (videos[2].parent / "not-a-video.avi").write_bytes(b"RIFF....garbage")
    assert main(["video", "frames", str(twin_copy), str(tmp_path / "f"), "--every", "5", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = set(report["failed"])
    assert str(videos[1].relative_to(twin_copy)) in failed
    assert any(name.endswith("not-a-video.avi") for name in failed)
    assert report["frames"] >= 4  # the intact video still gave 0, 5, 10, 15
    assert main(["video", "frames", str(twin_copy), str(tmp_path / "g"), "--every", "2", "--fps", "1"]) == 2


@pytest.mark.parametrize(("size", "mask_corners"), [(33, False), (96, True)])
def test_predict_scores_the_pixels_training_reads_back(
    tiny_twin, tmp_path: Path, size: int, mask_corners: bool
) -> None:
    """The stored training frame, read as training reads it (``load_square``), equals the square predict feeds
    the model for the same decoded frame: one decode, the same JPEG round trip (before video/decode.py they
    differed by 1.5–3.8 grey levels on average)."""
    report = extract_frames(tiny_twin.root, tmp_path / "f", every=3, size=size, workers=1)
    stored = {
        (r["video"], r["frame_index"]): r["path"] for r in pq.read_table(tmp_path / "f" / "frames.parquet").to_pylist()
    }
    compared = 0
    for video in Release(tiny_twin.root).video_files():
        for index, _, rgb in decode_frames(video, every=3, size=size):
            trained = load_square(
                tmp_path / "f" / stored[(str(video.relative_to(tiny_twin.root)), index)],
                size,
                mask_corners=mask_corners,
            )
            np.testing.assert_array_equal(model_input(rgb, size, mask_corners=mask_corners), trained)
            compared += 1
    assert compared == report.frames == 3 * 7
