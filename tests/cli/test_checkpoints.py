"""An untrusted checkpoint cannot run code: every loader uses ``torch.load(weights_only=True)``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hyperkvasir.cli import main


class _Payload:
    """Pickles as a call to ``os.system``: loading it with weights_only=False would run a command."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("task", ["classify", "segment", "video"])
def test_a_checkpoint_carrying_a_pickled_callable_is_refused(tmp_path: Path, monkeypatch, task: str) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"task": task, "config": {}}, "state_dict": {}, "x": _Payload()}, bad)
    if task == "classify":
        from hyperkvasir.classify.module import ClassifyModule

        load = ClassifyModule.from_checkpoint
    elif task == "segment":
        from hyperkvasir.segment.module import SegmentModule

        load = SegmentModule.from_checkpoint
    else:
        from hyperkvasir.video.module import VideoModule

        load = VideoModule.from_checkpoint
    from hyperkvasir.errors import HyperKvasirError

    with pytest.raises(HyperKvasirError, match="not a hyperkvasir checkpoint that loads safely"):
        load(bad)
    assert not (tmp_path / "PWNED").exists()


def test_predict_refuses_unsafe_and_foreign_files_with_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"x": _Payload()}, tmp_path / "evil.pt")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    image = tmp_path / "x.jpg"
    image.write_bytes(b"\xff\xd8\xff")
    for checkpoint in ("evil.pt", "table.csv"):
        assert main(["predict", str(tmp_path / checkpoint), str(image), "--out", str(tmp_path / "p.parquet")]) == 2
        err = capsys.readouterr().err
        assert checkpoint in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "p.parquet").exists()


def test_resume_refuses_a_last_checkpoint_that_carries_code(tiny_twin, tmp_path: Path, monkeypatch) -> None:
    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.classify.train import train_classify

    monkeypatch.chdir(tmp_path)
    config = ClassifyConfig(
        root=str(tiny_twin.root),
        out=str(tmp_path / "run"),
        model="test_efficientnet",
        epochs=2,
        input_size=32,
        workers=0,
        pretrained=False,
    )
    train_classify(config)
    last = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)
    last["x"] = _Payload()
    last["epoch"] = 0
    torch.save(last, tmp_path / "run" / "last.ckpt")
    from hyperkvasir.errors import HyperKvasirError

    with pytest.raises(HyperKvasirError, match="not a hyperkvasir checkpoint that loads safely"):
        train_classify(ClassifyConfig(root=str(tiny_twin.root), out=str(tmp_path / "run")), resume=True)
    assert not (tmp_path / "PWNED").exists()
