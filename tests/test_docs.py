"""The documentation cannot go stale: every fenced ``hyperkvasir …`` line names real commands and options, and
the tour runs, line by line, on a tiny twin."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from hyperkvasir.cli import main
from hyperkvasir.cli.commands import app

ROOT = Path(__file__).parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
_FENCE = re.compile(r"^(`{3,})(\w*)\n(.*?)^\1\s*$", re.M | re.S)
_GLOBAL = {"--work-dir", "--version", "--debug", "--help"}


def commands(page: Path) -> list[list[str]]:
    """The ``hyperkvasir`` command lines of a page's fenced blocks, continuation lines joined, comments dropped."""
    lines = []
    for _, language, block in _FENCE.findall(page.read_text()):
        if language not in ("", "bash", "sh", "console"):
            continue
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("hyperkvasir "):
                lines.append(shlex.split(line, comments=True)[1:])
    return lines


def _unknown_options(words: list[str]) -> list[str]:
    """Options a command line uses that its command does not declare."""
    command = typer.main.get_command(app)
    known, rest = set(_GLOBAL), list(words)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        if rest[0] not in command.commands:
            return [f"no command {rest[0]!r}"]
        command = command.commands[rest.pop(0)]
    known |= {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    return [word for word in rest if word.startswith("--") and word.split("=")[0] not in known]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_documented_command_exists_with_its_options(page: Path) -> None:
    wrong = {" ".join(words): bad for words in commands(page) if (bad := _unknown_options(words))}
    assert not wrong, wrong


def test_the_readme_links_lead_to_files() -> None:
    """The README is the front page outside the site (mkdocs checks the site's own links)."""
    links = re.findall(r"\]\((?!https?:|#)([^)#\s]+)", (ROOT / "README.md").read_text())
    assert links and not [link for link in links if not (ROOT / link).exists()]


def test_the_tour_runs_on_a_tiny_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Each line of docs/tour.md, in order, in one empty folder, through the real CLI."""
    monkeypatch.chdir(tmp_path)
    tour = commands(ROOT / "docs" / "tour.md")
    assert len(tour) >= 10 and ["synth", "twin", "--scale", "tiny", "--seed", "0"] in tour
    for words in tour:
        assert main(words) == 0, f"hyperkvasir {' '.join(words)}: {capsys.readouterr().err[-1500:]}"
    assert (tmp_path / "report.html").is_file() and (tmp_path / "model-onnx" / "model.onnx").is_file()
