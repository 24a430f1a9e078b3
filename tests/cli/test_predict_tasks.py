"""``predict`` with each task's checkpoint: classify as before, segmentation masks/overlays/boxes, video timelines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from hyperkvasir.cli import main
from hyperkvasir.data.tables import read_bounding_boxes


def test_segmentation_checkpoint_writes_masks_overlays_and_release_boxes(tiny_twin, tmp_path: Path, capsys) -> None:
    from hyperkvasir.segment.config import SegmentConfig
    from hyperkvasir.segment.train import train_segment

    train_segment(
        SegmentConfig(
            root=str(tiny_twin.root),
            out=str(tmp_path / "seg"),
            epochs=1,
            size=64,
            batch_size=4,
            workers=0,
            pretrained=False,
            model="test_efficientnet",
        )
    )
    images = sorted((tiny_twin.root / "segmented-images" / "images").glob("*.jpg"))[:3]
    png = tmp_path / "as.png"
    Image.open(images[0]).save(png)  # predict reads png too
    out = tmp_path / "masks-out"
    assert (
        main(["predict", str(tmp_path / "seg" / "best.ckpt"), *map(str, images[1:]), str(png), "--out", str(out)]) == 0
    )
    boxes = read_bounding_boxes(out / "bounding-boxes.json")  # the release's own reader accepts it
    assert set(boxes) == {p.stem for p in images[1:]} | {"as"}
    for stem, entry in boxes.items():
        mask = Image.open(out / "masks" / f"{stem}.png")
        assert mask.size == (entry.width, entry.height) and set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}
        assert (out / "overlays" / f"{stem}.png").is_file()
    assert main(["predict", str(tmp_path / "seg" / "best.ckpt"), str(images[0]), "--tta"]) == 2
    assert "does not apply to a segment checkpoint" in capsys.readouterr().err
    # external validation: the checkpoint on a folder of images with their masks
    assert (
        main(
            [
                "evaluate",
                "segment",
                "--checkpoint",
                str(tmp_path / "seg" / "best.ckpt"),
                "--images",
                str(tiny_twin.root / "segmented-images" / "images"),
                "--masks",
                str(tiny_twin.root / "segmented-images" / "masks"),
                "--out",
                str(tmp_path / "ext"),
                "--json",
            ]
        )
        == 0
    )
    scored = json.loads(capsys.readouterr().out)
    assert scored["n"] == len(list((tiny_twin.root / "segmented-images" / "images").glob("*.jpg")))
    assert 0.0 <= scored["dice"] <= 1.0 and (tmp_path / "ext" / "bounding-boxes.json").is_file()


def test_video_checkpoint_scores_video_files(tmp_path: Path, capsys) -> None:
    from hyperkvasir.synth.tree import make_synthetic_release
    from hyperkvasir.video.config import VideoConfig
    from hyperkvasir.video.train import train_video

    twin = make_synthetic_release(tmp_path / "hk", seed=5, scale="tiny", parts=("videos",), videos=18)
    train_video(
        VideoConfig(
            root=str(twin.root),
            out=str(tmp_path / "run"),
            model="test_efficientnet",
            epochs=1,
            size=32,
            batch_size=8,
            pretrained=False,
            every=10,
        )
    )
    videos = sorted(twin.root.glob("labeled-videos/**/*.avi"))[:2]
    out = tmp_path / "video-out"
    assert (
        main(["predict", str(tmp_path / "run" / "best.ckpt"), *map(str, videos), "--every", "4", "--out", str(out)])
        == 0
    )
    table = pq.read_table(out / "frames.parquet").to_pylist()
    assert {row["video"] for row in table} == {v.name for v in videos}
    assert all(row["frame_index"] % 4 == 0 for row in table)
    timeline = (out / "timeline.csv").read_text().splitlines()
    assert timeline[0] == "video,second,finding,probability" and len(timeline) > 2
    assert all((out / f"{v.stem}-strip.png").is_file() for v in videos)
    assert main(["predict", str(tmp_path / "run" / "best.ckpt"), str(videos[0]), "--part", "labeled"]) == 2
    assert "--part does not apply" in capsys.readouterr().err
    json.dumps(table[0])  # plain values only
