from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from hyperkvasir.data import index as index_module
from hyperkvasir.data.index import build_index, manifest_path


def _meta(table) -> dict[str, int]:
    return {
        k.decode(): int(v)
        for k, v in table.schema.metadata.items()
        if k in (b"hyperkvasir.read", b"hyperkvasir.reused")
    }


def test_manifest_has_a_row_per_file_of_every_part(tiny_twin, tmp_path: Path) -> None:
    out = tmp_path / "m.parquet"
    table = build_index(tiny_twin.root, workers=2, out=out)
    parts = Counter(zip(table.column("part").to_pylist(), table.column("kind").to_pylist()))
    segmented = len(tiny_twin.segmented)
    assert parts == {
        ("labeled", "image"): sum(tiny_twin.per_class.values()),
        ("segmented", "image"): segmented,
        ("segmented", "mask"): segmented,
        ("unlabeled", "image"): tiny_twin.unlabeled,
        ("videos", "video"): len(tiny_twin.videos),
    }
    rows = table.to_pylist()
    labeled = [r for r in rows if r["part"] == "labeled"]
    assert all(r["fold2"] == tiny_twin.folds2[Path(r["path"]).name] for r in labeled)
    assert all(r["fold5"] == tiny_twin.folds5[Path(r["path"]).name] for r in labeled)
    for row in labeled[:5]:
        assert (row["width"], row["height"]) == Image.open(tiny_twin.root / row["path"]).size
        assert row["decodes"] and len(row["sha256"]) == 64
    segmented = [r for r in rows if r["part"] == "segmented" and r["kind"] == "image"]
    assert all(
        0 < r["mask_area"] < 0.5 and r["box_count"] == tiny_twin.boxes_per_image[Path(r["path"]).stem]
        for r in segmented
    )
    video = next(r for r in rows if r["kind"] == "video")
    assert (video["frames"], video["fps"], video["codec"]) == (20, 25.0, "mpeg4")
    assert pq.read_table(out).equals(table)


def test_second_run_reads_nothing_and_changes_are_reread(twin_copy: Path) -> None:
    first = build_index(twin_copy, workers=1)
    assert _meta(first)["hyperkvasir.read"] == first.num_rows
    second = build_index(twin_copy, workers=1)
    assert _meta(second) == {"hyperkvasir.read": 0, "hyperkvasir.reused": first.num_rows}
    assert second.drop_columns([]).to_pylist() == first.to_pylist()
    changed = next((twin_copy / "unlabeled-images" / "images").glob("*.jpg"))
    Image.new("RGB", (64, 48), "red").save(changed)
    os.utime(changed, ns=(1, 1))
    Image.new("RGB", (32, 32), "blue").save(twin_copy / "unlabeled-images" / "images" / "added.jpg")
    third = build_index(twin_copy, workers=1)
    assert _meta(third)["hyperkvasir.read"] == 2
    row = next(r for r in third.to_pylist() if r["path"].endswith(changed.name))
    assert (row["width"], row["height"]) == (64, 48)


def test_interrupted_write_keeps_the_previous_manifest(twin_copy: Path, monkeypatch) -> None:
    build_index(twin_copy, workers=1)
    before = manifest_path(twin_copy).read_bytes()
    (twin_copy / "unlabeled-images" / "images" / "new.jpg").write_bytes(
        (next((twin_copy / "unlabeled-images" / "images").glob("*.jpg"))).read_bytes()
    )

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module.pq, "write_table", crash)
    with pytest.raises(KeyboardInterrupt):
        build_index(twin_copy, workers=1)
    assert manifest_path(twin_copy).read_bytes() == before
    left = [p.name for p in manifest_path(twin_copy).parent.iterdir() if not p.name.endswith(".lock")]
    assert left == ["manifest.parquet"]  # no temp file (the empty lock file stays, as lock files do)


def test_bad_files_are_recorded_not_fatal(twin_copy: Path) -> None:
    folder = twin_copy / "unlabeled-images" / "images"
    Image.new("RGB", (20, 10)).save(folder / "png-inside.jpg", format="PNG")
    (folder / "empty.jpg").write_bytes(b"")
    good = next(folder.glob("*.jpg")).read_bytes()
    (folder / "cut.jpg").write_bytes(good[: len(good) // 2])
    rows = {Path(r["path"]).name: r for r in build_index(twin_copy, workers=1).to_pylist()}
    assert rows["png-inside.jpg"]["error"] == "named .jpg but is PNG" and not rows["png-inside.jpg"]["decodes"]
    assert rows["empty.jpg"]["error"] == "empty file (0 bytes)"
    assert rows["cut.jpg"]["error"] == "truncated JPEG (no end-of-image marker)"


def test_a_read_only_release_is_never_written_with_a_work_dir(tiny_twin, tmp_path: Path, monkeypatch) -> None:
    """Index, validate, audit, splits and a training cache with --work-dir leave the tree exactly as it was."""
    import os
    import shutil

    from hyperkvasir.cli import main

    tree = Path(shutil.copytree(tiny_twin.root, tmp_path / "ro", ignore=shutil.ignore_patterns(".hyperkvasir")))

    def snapshot() -> dict:
        return {str(p.relative_to(tree)): (p.stat().st_size, p.stat().st_mtime_ns) for p in tree.rglob("*")}

    before = snapshot()
    for path in [tree, *tree.rglob("*")]:  # read-only as a shared mount would be (root ignores it; the test does not)
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        work = tmp_path / "work"
        for argv in (
            ["index", str(tree)],
            ["validate", str(tree)],
            ["audit", str(tree)],
            ["splits", str(tree), "--scheme", "grouped-2fold"],
            [
                "train",
                "classify",
                str(tree),
                "--model",
                "test_efficientnet",
                "--epochs",
                "1",
                "--input-size",
                "32",
                "--no-pretrained",
                "--workers",
                "0",
                "--out",
                str(tmp_path / "run"),
            ],
        ):
            assert main(["--work-dir", str(work), *argv]) in (0, 1), argv  # validate exits 1 on findings
        assert snapshot() == before and not (tree / ".hyperkvasir").exists()
        assert (work / "manifest.parquet").is_file() and (work / "pixels.parquet").is_file()
        assert list((work / "cache").glob("square-32.npy"))
        monkeypatch.setenv("HYPERKVASIR_HOME", str(tmp_path / "home"))
        assert main(["index", str(tree)]) == 0  # without --work-dir: a subfolder of the home, not the tree
        assert os.environ.get("HYPERKVASIR_WORK_DIR") is None, "one call's --work-dir does not leak into the next"
        assert list((tmp_path / "home").glob("ro-*/manifest.parquet")) and snapshot() == before
    finally:
        for path in [tree, *tree.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
