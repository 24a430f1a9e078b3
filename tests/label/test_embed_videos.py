"""Video frames as an embed part: `embed --part videos --frames DIR` and `similar` answering with frames, on the
tiny twin's videos (frames extracted by `video frames`), with the bad inputs a user will give them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hyperkvasir.cli import main


@pytest.fixture(scope="session")
def twin_frames(tiny_twin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every 4th frame of the tiny twin's videos at 64 px, as `hyperkvasir video frames` writes them."""
    out = tmp_path_factory.mktemp("frames") / "frames"
    assert (
        main(["video", "frames", str(tiny_twin.root), str(out), "--every", "4", "--size", "64", "--workers", "1"]) == 0
    )
    return out


def _listed(frames: Path) -> list[dict]:
    return pq.read_table(frames / "frames.parquet").to_pylist()


def _name(row: dict) -> str:
    return f"{row['video']}#frame={row['frame_index']:06d}"


def test_embed_videos_embeds_every_listed_frame_by_video_and_index(
    tiny_twin, twin_frames: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    from hyperkvasir.label.embed import embed_parts

    work = tmp_path / "work"
    assert (
        main(
            [
                "--work-dir",
                str(work),
                "embed",
                str(tiny_twin.root),
                "--part",
                "videos",
                "--frames",
                str(twin_frames),
                "--size",
                "64",
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    listed = _listed(twin_frames)
    assert summary["images"] == len(listed) > 0 and summary["undecodable"] == []
    assert len(list((work / "embeddings").glob("*.npz"))) == 1
    monkeypatch.setenv("HYPERKVASIR_WORK_DIR", str(work))
    found = embed_parts(tiny_twin.root, parts=("videos",), size=64, frames=twin_frames)
    assert sorted(found.paths) == sorted(_name(r) for r in listed) and set(found.parts) == {"videos"}
    assert all((tiny_twin.root / p.split("#")[0]).is_file() for p in found.paths)  # named by the release's video


def test_similar_answers_a_frame_with_frames_of_its_own_video(
    tiny_twin, twin_frames: Path, tmp_path: Path, capsys
) -> None:
    listed = _listed(twin_frames)
    query = _name(listed[0])
    same_video = sum(r["video"] == listed[0]["video"] for r in listed) - 1
    assert same_video >= 2
    assert (
        main(
            [
                "--work-dir",
                str(tmp_path / "work"),
                "similar",
                str(tiny_twin.root),
                "--query",
                query,
                "--part",
                "videos",
                "--frames",
                str(twin_frames),
                "-k",
                str(same_video),
                "--size",
                "64",
                "--json",
            ]
        )
        == 0
    )
    near = json.loads(capsys.readouterr().out)[query]
    assert len(near) == same_video and query not in {n["file"] for n in near}
    assert {n["file"].split("#")[0] for n in near} == {listed[0]["video"]}  # a moment of the same video
    by_name = {_name(r): twin_frames / r["path"] for r in listed}
    assert all(Path(n["image"]) == by_name[n["file"]] and Path(n["image"]).is_file() for n in near)


def test_similar_finds_video_frames_for_a_labeled_image(tiny_twin, twin_frames: Path, tmp_path: Path, capsys) -> None:
    image = sorted(
        p.relative_to(tiny_twin.root).as_posix() for p in (tiny_twin.root / "labeled-images").rglob("*.jpg")
    )[0]
    assert (
        main(
            [
                "--work-dir",
                str(tmp_path / "work"),
                "similar",
                str(tiny_twin.root),
                "--query",
                image,
                "--part",
                "videos",
                "--part",
                "labeled",
                "--frames",
                str(twin_frames),
                "-k",
                "40",
                "--size",
                "64",
                "--json",
            ]
        )
        == 0
    )
    near = json.loads(capsys.readouterr().out)[image]
    frames = [n for n in near if "#frame=" in n["file"]]
    assert frames and all("image" in n for n in frames)
    assert any(n["file"].startswith("labeled-images/") and "image" not in n for n in near)


def _rewrite_listing(frames: Path, change) -> None:
    table = _listed(frames)
    pq.write_table(pa.Table.from_pylist([change(dict(r)) for r in table]), frames / "frames.parquet")


@pytest.mark.parametrize(
    "case, code, text",
    [
        ("no-frames-flag", 2, "--part videos embeds the frames of `hyperkvasir video frames"),
        ("frames-without-videos", 2, "used only with --part videos"),
        ("no-listing", 2, "no frames.parquet; extract the frames first with `hyperkvasir video frames"),
        ("broken-listing", 1, "not a frames listing of `hyperkvasir video frames`"),
        ("another-tree", 1, "which is not a video of"),
        ("path-leaves", 1, "lies outside"),
        ("link-leaves", 1, "lies outside"),
    ],
)
def test_embed_videos_refuses_bad_frames(
    tiny_twin, twin_frames: Path, tmp_path: Path, capsys, case: str, code: int, text: str
) -> None:
    frames = Path(shutil.copytree(twin_frames, tmp_path / "frames"))
    parts = ["--part", "videos", "--frames", str(frames)]
    if case == "no-frames-flag":
        parts = ["--part", "videos"]
    elif case == "frames-without-videos":
        parts = ["--part", "labeled", "--frames", str(frames)]
    elif case == "no-listing":
        (frames / "frames.parquet").unlink()
    elif case == "broken-listing":
        (frames / "frames.parquet").write_bytes(b"not parquet")
    elif case == "another-tree":
        _rewrite_listing(frames, lambda r: r | {"video": "labeled-videos/elsewhere/x.avi"})
    elif case == "path-leaves":
        _rewrite_listing(frames, lambda r: r | {"path": "../../outside.jpg"})
    else:
        outside = tmp_path / "outside.jpg"
        first = frames / _listed(frames)[0]["path"]
        shutil.copyfile(first, outside)
        first.unlink()
        first.symlink_to(outside)
    assert main(["--work-dir", str(tmp_path / "work"), "embed", str(tiny_twin.root), *parts, "--size", "64"]) == code
    captured = capsys.readouterr()
    assert text in captured.err and "Traceback" not in captured.err
    assert not list((tmp_path / "work" / "embeddings").glob("*.npz"))  # nothing half-made


@pytest.mark.parametrize(
    "flags, code, text",
    [
        (["--query", "labeled-videos/x.avi#frame=000000", "--part", "videos"], 2, "need --frames DIR"),
        (["--query", "IMAGE", "--part", "labeled"], 2, "used only with --part videos or a video-frame query"),
        (["--query", "QUERY#frame=999999", "--part", "videos"], 2, "no such frame in"),
    ],
)
def test_similar_refuses_frames_misused(
    tiny_twin, twin_frames: Path, tmp_path: Path, capsys, flags: list[str], code: int, text: str
) -> None:
    listed = _listed(twin_frames)
    image = next((tiny_twin.root / "labeled-images").rglob("*.jpg")).relative_to(tiny_twin.root).as_posix()
    flags = [f.replace("QUERY", listed[0]["video"]).replace("IMAGE", image) for f in flags]
    query = [] if "--query" in flags else ["--query", _name(listed[0])]
    frames = [] if text == "need --frames DIR" else ["--frames", str(twin_frames)]
    assert (
        main(
            [
                "--work-dir",
                str(tmp_path / "work"),
                "similar",
                str(tiny_twin.root),
                *query,
                *flags,
                *frames,
                "--size",
                "64",
            ]
        )
        == code
    )
    assert text in capsys.readouterr().err
