from __future__ import annotations

import json
from pathlib import Path

from hyperkvasir.cli import main


def test_help_lists_commands(capsys) -> None:
    assert main(["--help"]) == 0
    assert "synth" in capsys.readouterr().out


def test_synth_json_summary(tmp_path: Path, capsys) -> None:
    assert main(["synth", str(tmp_path / "t"), "--seed", "5", "--json", "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["labeled"] == 72 and summary["videos"] == 3 and summary["bytes"] > 0


def test_usage_errors_are_one_line_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["synth", str(tmp_path / "t"), "--scale", "huge"]) == 2
    assert "unknown scale 'huge'" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["synth", str(tmp_path / "full")]) == 2
    error = capsys.readouterr().err
    assert "not empty" in error and "Traceback" not in error
