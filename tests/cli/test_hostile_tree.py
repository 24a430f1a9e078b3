"""Stepping outside the tree, and the work dir's messages: no command reads a file through a link that leaves the
release tree (``validate`` names each such link), links that stay inside are followed, and a work dir that cannot
be written, or a Ctrl-C, is one line before or instead of any long work.

Archives (links, devices, chained links served over HTTP) are tested in tests/download/test_download.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hyperkvasir.cli import main
from hyperkvasir.data import index as index_module

POLYPS = "labeled-images/lower-gi-tract/pathological-findings/polyps"
CECUM = "labeled-images/lower-gi-tract/anatomical-landmarks/cecum"


def _findings(capsys, root: Path) -> tuple[int, list[dict]]:
    capsys.readouterr()
    code = main(["validate", str(root), "--workers", "1", "--json"])
    return code, json.loads(capsys.readouterr().out)["findings"]


def _manifest(root: Path) -> list[dict]:
    return pq.read_table(root / ".hyperkvasir" / "manifest.parquet").to_pylist()


def test_a_class_folder_linked_inside_the_tree_is_followed(twin_copy: Path, capsys) -> None:
    code_before, before = _findings(capsys, twin_copy)
    images = sorted(p.name for p in (twin_copy / POLYPS).iterdir())
    (twin_copy / "store").mkdir()
    (twin_copy / POLYPS).rename(twin_copy / "store" / "polyps")
    (twin_copy / POLYPS).symlink_to(Path("../../../store/polyps"), target_is_directory=True)
    code_after, after = _findings(capsys, twin_copy)
    assert (code_after, after) == (code_before, before)  # nothing "not on disk", nothing skipped
    listed = sorted(Path(r["path"]).name for r in _manifest(twin_copy) if r["class"] == "polyps")
    assert listed == images


def test_links_that_leave_the_tree_are_reported_and_never_read(twin_copy: Path, tmp_path: Path, capsys) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.jpg"  # a real image: only the path tells it is not the release's
    shutil.copyfile(next((twin_copy / CECUM).iterdir()), secret)
    hemorrhoids = twin_copy / "labeled-images/lower-gi-tract/pathological-findings/hemorrhoids"
    hemorrhoids.rename(outside / "hemorrhoids")
    hemorrhoids.symlink_to(outside / "hemorrhoids", target_is_directory=True)  # a class folder
    links = {
        f"{CECUM}/leak.jpg": secret,
        f"{CECUM}/environ.jpg": Path("/proc/self/environ"),
        "unlabeled-images/images/leak.jpg": secret,
    }
    mask = next((twin_copy / "segmented-images/masks").iterdir())
    shutil.copyfile(mask, outside / mask.name)
    mask.unlink()
    links[str(mask.relative_to(twin_copy))] = outside / mask.name
    for rel in ("official_splits/5_fold_split.csv", "segmented-images/bounding-boxes.json"):
        (twin_copy / rel).rename(outside / Path(rel).name)
        links[rel] = outside / Path(rel).name
    for rel, target in links.items():
        (twin_copy / rel).symlink_to(target)
    links[str(hemorrhoids.relative_to(twin_copy))] = outside / "hemorrhoids"

    assert main(["index", str(twin_copy), "--workers", "1"]) == 0
    rows = _manifest(twin_copy)
    assert not {r["path"] for r in rows} & set(links)
    assert not any(r["path"].startswith(str(hemorrhoids.relative_to(twin_copy))) for r in rows)
    assert all(r["fold5"] is None for r in rows)  # the split CSV outside was not read
    code, findings = _findings(capsys, twin_copy)
    reported = {f["file"]: f for f in findings if f["code"] == "link-outside-tree"}
    assert code == 1 and set(reported) == set(links)
    assert "boxes-missing" not in {f["code"] for f in findings}  # there is a file: the link is the finding
    for rel, target in links.items():
        assert reported[rel]["severity"] == "error" and str(target.resolve()) in reported[rel]["message"]


def test_a_part_folder_linked_outside_the_tree_is_absent(twin_copy: Path, tmp_path: Path, capsys) -> None:
    (twin_copy / "segmented-images").rename(tmp_path / "segmented-images")
    (twin_copy / "segmented-images").symlink_to(tmp_path / "segmented-images", target_is_directory=True)
    code, findings = _findings(capsys, twin_copy)
    assert code == 1 and {"segmented-images"} <= {f["file"] for f in findings if f["code"] == "link-outside-tree"}
    assert not any(r["part"] == "segmented" for r in _manifest(twin_copy))
    only = tmp_path / "only"
    only.mkdir()
    (only / "hyper-kvasir").symlink_to(twin_copy, target_is_directory=True)
    assert main(["index", str(only)]) == 2
    err = capsys.readouterr().err
    assert "hyper-kvasir is a link to" in err and "outside the tree" in err and not (twin_copy / "only").exists()


def test_pipes_and_link_loops_in_the_tree_neither_hang_nor_recurse(twin_copy: Path, capsys) -> None:
    os.mkfifo(twin_copy / CECUM / "pipe.jpg")  # opening it would wait forever for a writer
    (twin_copy / "labeled-videos" / "again").symlink_to("..", target_is_directory=True)
    (twin_copy / "labeled-videos" / "self").symlink_to(".", target_is_directory=True)
    done: list[int] = []
    worker = threading.Thread(
        target=lambda: done.append(main(["index", str(twin_copy), "--workers", "1"])), daemon=True
    )
    worker.start()
    worker.join(120)
    assert done == [0], "index hung on a pipe named .jpg"
    code, findings = _findings(capsys, twin_copy)
    codes = {f["file"]: f["code"] for f in findings}
    assert code == 1 and codes[f"{CECUM}/pipe.jpg"] == "not-a-file"
    assert codes["labeled-videos/self"] == codes["labeled-videos/again"] == "broken-link"  # loops, not walked


def test_a_tree_reached_through_a_link_is_read_whole(tiny_twin, tmp_path: Path) -> None:
    (tmp_path / "release").symlink_to(tiny_twin.root, target_is_directory=True)
    out = tmp_path / "m.parquet"
    assert main(["index", str(tmp_path / "release"), "--workers", "1", "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == len(list(tiny_twin.root.glob("**/*.jpg"))) + len(tiny_twin.videos)


# ------------------------------------------------------------------------------------------------- work dir
def _no_hashing(monkeypatch) -> list:
    calls: list = []
    monkeypatch.setattr(index_module, "_content_job", lambda job: calls.append(job))
    return calls


def test_a_home_that_is_a_file_is_one_line(twin_copy: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "home").write_text("not a folder")
    monkeypatch.setenv("HYPERKVASIR_HOME", str(tmp_path / "home"))
    calls = _no_hashing(monkeypatch)
    assert main(["index", str(twin_copy), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "HYPERKVASIR_HOME=" in err and "is a file" in err and len(err.strip().splitlines()) == 1
    assert calls == []
    monkeypatch.setenv("HYPERKVASIR_HOME", "/proc/hk-home")
    assert main(["index", str(twin_copy), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "HYPERKVASIR_HOME" in err and "/proc/hk-home" in err and calls == []


def test_an_unwritable_release_fails_before_hashing_with_the_way_out(twin_copy: Path, capsys, monkeypatch) -> None:
    (twin_copy / ".hyperkvasir").write_text("in the way")  # the work dir cannot be made: as on a read-only tree
    calls = _no_hashing(monkeypatch)
    assert main(["index", str(twin_copy), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "--work-dir DIR" in err and "HYPERKVASIR_HOME" in err and calls == []


def test_a_read_only_release_without_work_dir(twin_copy: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs root")
    view = tmp_path / "ro"
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(twin_copy), str(view)], capture_output=True).returncode:
        pytest.skip("mount --bind refused here")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True, capture_output=True)
        calls = _no_hashing(monkeypatch)
        assert main(["index", str(view), "--workers", "1"]) == 2
        err = capsys.readouterr().err
        assert "read-only" in err and "--work-dir DIR" in err and calls == []
        monkeypatch.undo()
        assert main(["--work-dir", str(tmp_path / "work"), "index", str(view), "--workers", "1"]) == 0
    finally:
        subprocess.run(["umount", str(view)], check=True)


def test_a_work_dir_inside_the_release_is_refused(twin_copy: Path, capsys, monkeypatch) -> None:
    calls = _no_hashing(monkeypatch)
    assert main(["--work-dir", str(twin_copy / CECUM / "work"), "index", str(twin_copy)]) == 2
    assert "inside the release tree" in capsys.readouterr().err and calls == []
    assert not (twin_copy / CECUM / "work").exists()


_SLOW_INDEX = """
import sys, time
from pathlib import Path
import hyperkvasir.data.index as index
real = index._content_job
def slow(job):
    Path(sys.argv[2]).touch()
    time.sleep(0.2)
    return real(job)
index._content_job = slow
from hyperkvasir.cli import main
sys.exit(main(["index", sys.argv[1], "--workers", "2"]))
"""


def test_ctrl_c_during_index_is_one_line(twin_copy: Path, tmp_path: Path) -> None:
    script, started = tmp_path / "slow_index.py", tmp_path / "started"
    script.write_text(textwrap.dedent(_SLOW_INDEX))
    job = subprocess.Popen(
        [sys.executable, str(script), str(twin_copy), str(started)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not started.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(job.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: every process of the job gets it
    _, err = job.communicate(timeout=120)
    assert job.returncode == 130, err
    assert [line for line in err.splitlines() if line.strip()] == ["error: interrupted"], err
    assert not (twin_copy / ".hyperkvasir" / "manifest.parquet").exists()
    assert not list(twin_copy.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------- names with brackets
def test_paths_with_brackets_are_printed_whole(tiny_twin, tmp_path: Path, capsys) -> None:
    root = Path(shutil.copytree(tiny_twin.root, tmp_path / "HK [old]", ignore=shutil.ignore_patterns(".hyperkvasir")))
    shutil.copyfile(next((root / CECUM).iterdir()), root / CECUM / "[bold]scan 1.jpg")
    assert main(["index", str(root), "--workers", "1"]) == 0
    assert "HK [old]/.hyperkvasir/manifest.parquet" in capsys.readouterr().out
    assert main(["validate", str(root), "--workers", "1"]) == 1
    assert f"{CECUM}/[bold]scan 1.jpg" in capsys.readouterr().out
    assert main(["index", str(tmp_path / "HK [old]" / "none")]) == 2
    assert "HK [old]/none" in capsys.readouterr().err


def test_a_full_work_dir_names_the_file_it_could_not_write(tiny_twin, small_disk, capsys) -> None:
    disk = small_disk("16k")
    assert main(["--work-dir", str(disk / "work"), "index", str(tiny_twin.root), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{disk / 'work' / 'manifest.parquet'}: No space left on device" in err and "Traceback" not in err
    left = [p for p in (disk / "work").iterdir() if not p.name.endswith(".lock")]  # empty lock files stay
    assert left == []  # no temp file left behind
