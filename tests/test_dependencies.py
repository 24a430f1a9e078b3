"""The declared dependency floors admit no version that lacks what the toolkit calls."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
from packaging.requirements import Requirement
from packaging.version import Version


def test_the_numpy_floor_has_bitwise_count() -> None:
    """``np.bitwise_count`` (the near-duplicate search) arrived in NumPy 2.0; 1.26 must not satisfy the floor."""
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    numpy = next(r for r in map(Requirement, project["dependencies"]) if r.name == "numpy")
    assert not numpy.specifier.contains(Version("1.26.4"))
    assert numpy.specifier.contains(np.__version__) and hasattr(np, "bitwise_count")
