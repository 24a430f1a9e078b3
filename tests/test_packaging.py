"""The package as a user installs it: ranges in the metadata, exact pins only in constraints.txt, and the built
wheel (not the checkout) running the main commands from another folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import hyperkvasir
from hyperkvasir.cli import main

ROOT = Path(__file__).parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins() -> dict[str, Version]:
    """constraints.txt as {name: exact version}."""
    from packaging.utils import canonicalize_name

    lines = (line.split("#")[0].strip() for line in (ROOT / "constraints.txt").read_text().splitlines())
    return {
        canonicalize_name(r.name): Version(str(next(iter(r.specifier)).version))
        for r in map(Requirement, filter(None, lines))
    }


def test_version_flag_names_the_package_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"hyperkvasir {hyperkvasir.__version__}" == "hyperkvasir 0.2.0"


def test_metadata_states_ranges_and_the_constraints_pin_inside_them() -> None:
    """A library installs beside anything its ranges admit: no upper cap on Python, no exact pin of a dependency;
    the exact set-up `make` installs lies inside every range, so `make test` tests what the metadata promises."""
    assert SpecifierSet(PROJECT["requires-python"]) == SpecifierSet(">=3.11")
    pins = _pins()
    for requirement in map(Requirement, PROJECT["dependencies"]):
        assert all(s.operator == ">=" for s in requirement.specifier), f"{requirement}: state a range, not a pin"
        assert requirement.specifier.contains(pins[requirement.name]), f"constraints.txt leaves {requirement}"


def test_the_changelog_has_a_section_for_this_version() -> None:
    """Keep a Changelog: a version raised without its section is a release nobody can read about."""
    assert f"## [{hyperkvasir.__version__}] - " in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.packaging
def test_the_wheel_runs_the_main_commands_from_another_folder(tmp_path: Path) -> None:
    """Build sdist and wheel, install the wheel into a fresh venv outside the repository (the heavy libraries come
    from this venv through a .pth, never downloaded), then run synth → index → validate → the Kvasir-SEG lists →
    train (a packaged recipe by name) → predict → export-model → report from an empty folder."""
    venv = _install_wheel(_build(tmp_path), tmp_path / "venv")
    work = tmp_path / "elsewhere"
    work.mkdir()
    command = venv / "bin" / "hyperkvasir"

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(command), *args],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
            env=os.environ | {"OMP_NUM_THREADS": "1", "PYTHONSAFEPATH": "1"},
        )
        assert done.returncode == 0, f"hyperkvasir {' '.join(args)}: {done.stderr[-1500:]}"
        return done.stdout

    assert run("--version").strip() == f"hyperkvasir {hyperkvasir.__version__}"
    installed = run_python(venv, "import hyperkvasir; print(hyperkvasir.__file__)")
    assert Path(installed).is_relative_to(venv), f"imported from {installed}, not the wheel"
    run("synth", "twin", "--scale", "tiny", "--seed", "0")
    run("index", "twin")
    run("validate", "twin")
    lists = run_python(
        venv,
        "from hyperkvasir.data.kvasir_seg_lists import kvasir_seg_official_ids as ids; "
        "print(sorted(len(v) for v in ids().values()))",
    )
    assert lists == "[120, 880]"  # the Kvasir-SEG lists, read from the installed package
    run(
        "train",
        "classify",
        "twin",
        "--config",
        "imbalanced-cpu",
        "--model",
        "test_efficientnet",
        "--epochs",
        "1",
        "--input-size",
        "32",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--no-pretrained",
        "--out",
        "run",
    )
    run("predict", "run/best.ckpt", "twin", "--part", "unlabeled", "--out", "predicted.parquet", "--workers", "0")
    run("export-model", "run/best.ckpt", "--format", "onnx", "--out", "onnx")
    run("report", "twin", "--out", "report.html")
    assert (work / "onnx" / "model.onnx").is_file() and "<html" in (work / "report.html").read_text()[:2000].lower()


@pytest.mark.packaging
def test_the_wheel_carries_every_data_file_of_the_package(tmp_path: Path) -> None:
    """Every non-Python file under src/hyperkvasir (recipes, templates, the Kvasir-SEG lists, py.typed) is in
    the wheel: a file left out of package-data fails here, not on a user's machine."""
    import zipfile

    wheel = next(_build(tmp_path).glob("*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    source = ROOT / "src"
    data = {
        p.relative_to(source).as_posix()
        for p in (source / "hyperkvasir").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }
    assert data and not data - shipped, sorted(data - shipped)


def run_python(venv: Path, code: str) -> str:
    return _run([str(venv / "bin" / "python"), "-c", code], cwd=venv)


def _run(args: list[str], cwd: Path | None = None) -> str:
    """A build or install step; a failure shows the step's own error (a full disk, a missing tool)."""
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args[:4])} …: {(done.stderr or done.stdout)[-2000:]}"
    return done.stdout.strip()


def _build(tmp_path: Path) -> Path:
    """sdist, then the wheel from the sdist (what ``python -m build`` does), from a copy of what the sdist is made
    of, so the build writes nothing into the repository and no stray file of the checkout slips in; returns the
    folder holding both."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)])
    assert len(list(dist.glob("*.tar.gz"))) == 1
    return dist


def _install_wheel(dist: Path, venv: Path) -> Path:
    """A fresh venv that sees this venv's libraries through a .pth line (a path only: the .pth files there, such
    as the editable checkout's, are not run) and gets the package from the wheel alone."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    site = Path(run_python(venv, "import sysconfig; print(sysconfig.get_path('purelib'))"))
    (site / "libraries.pth").write_text(sysconfig.get_path("purelib") + "\n")
    wheel = next(dist.glob("*.whl"))
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            "--no-deps",
            "--ignore-installed",
            "--no-index",
            str(wheel),
        ]
    )
    return venv
