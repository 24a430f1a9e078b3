"""One line, not a traceback or a riddle: a path prints as it is (brackets, emoji codes, control characters), an
error raised in a worker reaches the user as its own line and exit code, a checkpoint that cannot be resumed is
named with what to do, and Ctrl-C ends any command with one line and no worker left behind."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from hyperkvasir.cli import main
from hyperkvasir.errors import ReleaseFormatError

_TRAIN = ["--no-pretrained", "--workers", "0", "--epochs", "1"]


def _error_line(err: str) -> str:
    """The one error line of a command's stderr (progress bars may precede it; nothing else may)."""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


# --- paths and values print as they are ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["HK [old]", "HK [/]x", "scans :cat: 2019", "[bold]scan 1"])
def test_a_path_prints_as_it_is(tmp_path: Path, capsys, name: str) -> None:
    missing = tmp_path / name / "missing"
    assert main(["index", str(missing)]) == 2
    assert str(missing) in _error_line(capsys.readouterr().err)


def test_control_characters_in_a_path_stay_on_the_line_and_off_the_terminal(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "clear\x1b[2J screen" / "two\nlines"
    assert main(["index", str(missing)]) == 2
    err = capsys.readouterr().err
    line = _error_line(err)
    assert "clear\\x1b[2J screen/two\\nlines" in line and "\x1b" not in err and len(err.splitlines()) == 1


def test_a_file_named_like_markup_is_reported_whole(twin_copy: Path, capsys) -> None:
    cecum = next(twin_copy.glob("labeled-images/**/cecum"))
    (cecum / "[bold]scan 1.jpg").write_bytes(b"\xff\xd8\xff not a picture")
    assert main(["validate", str(twin_copy), "--workers", "0"]) == 1
    assert "[bold]scan 1.jpg" in capsys.readouterr().out


def test_a_usage_error_is_one_line_naming_the_help(tiny_twin, capsys) -> None:
    assert main(["index", str(tiny_twin.root), "--workers", "many"]) == 2
    err = capsys.readouterr().err
    line = _error_line(err)
    assert "'--workers'" in line and "hyperkvasir index --help" in line and len(err.splitlines()) == 1


# --- errors raised in workers -----------------------------------------------------------------------------------


def test_a_toolkit_error_in_a_loader_worker_is_its_own_line(faulty_twin, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "segment",
            str(faulty_twin.root),
            "--no-pretrained",
            "--epochs",
            "1",
            "--size",
            "32",
            "--workers",
            "1",
            "--out",
            str(run),
        ]
    )
    line = _error_line(capsys.readouterr().err)
    assert code == 1 and "mask is" in line and "segmented-images/masks/" in line and "Caught" not in line
    assert not run.exists(), "a run that failed before its first checkpoint leaves no folder"


def _refuse_row(number: int) -> int:
    if number == 40:
        raise ReleaseFormatError("labels.csv", "expected 2 fields, found 3", 41)
    return number


def test_a_format_error_in_a_pool_worker_reaches_the_command_whole() -> None:
    from hyperkvasir.parallel import process_pool

    with pytest.raises(ReleaseFormatError) as raised, process_pool(2, 64) as pool:
        list(pool.map(_refuse_row, range(64)))
    assert str(raised.value) == "labels.csv:41: expected 2 fields, found 3" and raised.value.line == 41


class _Refusing(torch.utils.data.Dataset):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int):
        raise self.error


@pytest.mark.parametrize(
    "error, line, code",
    [
        (
            ReleaseFormatError("labels.csv", "expected 2 fields, found 3", 41),
            "labels.csv:41: expected 2 fields, found 3",
            1,
        ),
        (ValueError("bad pixel value"), "unexpected ValueError in DataLoader worker process 0: bad pixel value", 1),
    ],
)
def test_the_line_of_an_error_torch_copied_from_a_worker(error: Exception, line: str, code: int) -> None:
    from hyperkvasir.cli import _line

    with pytest.raises(Exception) as raised:  # torch re-raises a copy: a RuntimeError when the type needs arguments
        next(iter(torch.utils.data.DataLoader(_Refusing(error), num_workers=1)))
    found, exit_code, _ = _line(raised.value)
    assert found.startswith(line) and exit_code == code and "\n" not in found


# --- a checkpoint that cannot be resumed ------------------------------------------------------------------------


def _config(task: str, root: Path, out: Path) -> dict:
    if task == "classify":
        from hyperkvasir.classify.config import ClassifyConfig as Config

        extra = {"model": "test_efficientnet", "input_size": 32}
    elif task == "segment":
        from hyperkvasir.segment.config import SegmentConfig as Config

        extra = {"size": 32}
    else:
        from hyperkvasir.video.config import VideoConfig as Config

        extra = {"size": 32, "select_on_train": True}
    return dataclasses.asdict(Config(root=str(root), out=str(out), epochs=1, workers=0, pretrained=False, **extra))


def _damage(last: Path, kind: str, task: str) -> None:
    checkpoint = {"hyper_parameters": {"task": task, "config": {}}, "state_dict": {"w": torch.zeros(4096)}}
    if kind == "empty":
        last.write_bytes(b"")
    elif kind == "truncated":
        torch.save(checkpoint, last)
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif kind == "zip of something else":
        with zipfile.ZipFile(last, "w") as archive:
            archive.writestr("notes.txt", "not a checkpoint")
    else:
        other = {"classify": "segment", "segment": "video", "video": "classify"}[task]
        torch.save(checkpoint | {"hyper_parameters": {"task": other, "config": {}}}, last)


def _state(run: Path) -> dict[Path, int]:
    """Each file of a run folder with its change time; the lock a training holds on the folder aside."""
    return {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != ".run.lock"}


@pytest.mark.parametrize("task", ["classify", "segment", "video"])
@pytest.mark.parametrize("kind", ["empty", "truncated", "zip of something else", "another task's"])
def test_a_last_checkpoint_that_cannot_be_resumed_is_named_with_what_to_do(
    tiny_twin, tmp_path: Path, capsys, task: str, kind: str
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(_config(task, tiny_twin.root, run)))
    _damage(run / "last.ckpt", kind, task)
    before = _state(run)
    assert main(["train", task, str(tiny_twin.root), "--out", str(run), "--resume"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert str(run / "last.ckpt") in line and "delete it and pass --resume again" in line
    assert _state(run) == before, "the run folder is left as it was"


# --- Ctrl-C -----------------------------------------------------------------------------------------------------


def test_ctrl_c_during_training_is_one_line_and_gives_ctrl_c_back(
    tiny_twin, tmp_path: Path, capsys, monkeypatch
) -> None:
    from hyperkvasir.engine.callbacks import EpochHistory

    def press_ctrl_c(self, trainer, module) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(EpochHistory, "on_train_epoch_end", press_ctrl_c, raising=False)
    code = main(
        [
            "train",
            "classify",
            str(tiny_twin.root),
            *_TRAIN,
            "--model",
            "test_efficientnet",
            "--input-size",
            "32",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 130 and _error_line(capsys.readouterr().err) == "error: interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "Lightning left Ctrl-C ignored"
    assert (tmp_path / "run" / "last.ckpt").is_file(), "the epoch saved before Ctrl-C is kept for --resume"


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ctrl_c_during_a_pooled_index_is_one_line_and_stops_every_worker(twin_copy: Path) -> None:
    images = sorted(twin_copy.glob("labeled-images/**/*.jpg"))
    for number in range(1500):  # enough work that the workers are busy when Ctrl-C comes
        os.link(images[number % len(images)], images[0].parent / f"copy{number:04d}.jpg")
    command = subprocess.Popen(
        [sys.executable, "-m", "hyperkvasir", "index", str(twin_copy), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while len(workers := _children(command.pid)) < 2 and time.monotonic() < deadline and command.poll() is None:
        time.sleep(0.02)
    assert len(workers) == 2, "the index started no worker processes"
    time.sleep(0.2)
    os.killpg(command.pid, signal.SIGINT)  # what a terminal does: every process of the job gets it
    _, err = command.communicate(timeout=60)
    assert command.returncode == 130 and _error_line(err) == "error: interrupted"
    assert len(err.strip().splitlines()) == 1, err
    assert not any(_alive(worker) for worker in workers), "a worker outlived the command"


def test_a_command_killed_outright_leaves_no_worker_behind(twin_copy: Path) -> None:
    images = sorted(twin_copy.glob("labeled-images/**/*.jpg"))
    for number in range(1500):
        os.link(images[number % len(images)], images[0].parent / f"copy{number:04d}.jpg")
    command = subprocess.Popen(
        [sys.executable, "-m", "hyperkvasir", "index", str(twin_copy), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(workers := _children(command.pid)) < 2 and time.monotonic() < deadline and command.poll() is None:
        time.sleep(0.02)
    assert len(workers) == 2, "the index started no worker processes"
    time.sleep(0.2)
    command.kill()  # as the out-of-memory killer or a bus error ends it: no clean-up runs
    command.wait()
    deadline = time.monotonic() + 10
    while any(_alive(worker) for worker in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [worker for worker in workers if _alive(worker)]
    for worker in left:
        os.kill(worker, signal.SIGKILL)
    assert not left, "workers outlived the command that started them"


# --- what the machine runs out of ------------------------------------------------------------------------------


def test_a_full_disk_is_named_with_what_to_do(tiny_twin, small_disk, capsys) -> None:
    small = small_disk("12k")
    assert main(["index", str(tiny_twin.root), "--out", str(small / "m.parquet")]) == 1
    line = _error_line(capsys.readouterr().err)
    assert "m.parquet: No space left on device; free space there" in line and "unexpected" not in line


def test_a_file_name_that_is_not_utf8_prints_on_a_strict_utf8_stream(tiny_twin, tmp_path: Path) -> None:
    out = tmp_path / "split\udcff.csv"  # the byte 0xff, as Python carries it
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hyperkvasir",
            "splits",
            str(tiny_twin.root),
            "--scheme",
            "segmentation",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONIOENCODING": "utf-8"},
    )
    assert done.returncode == 0 and "split\\xff.csv" in done.stdout, done.stderr
