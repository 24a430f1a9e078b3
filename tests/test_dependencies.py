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


def test_every_library_the_toolkit_imports_is_declared() -> None:
    """A library imported by ``src/`` but only installed as another package's dependency can vanish with it."""
    import ast
    import importlib.metadata
    import sys

    from packaging.utils import canonicalize_name

    root = Path(__file__).parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    declared = {canonicalize_name(Requirement(r).name) for r in requirements}
    distributions = importlib.metadata.packages_distributions()
    undeclared = set()
    for source in (root / "src" / "hyperkvasir").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names} - set(sys.stdlib_module_names) - {"hyperkvasir"}:
                if not declared & {canonicalize_name(d) for d in distributions.get(top, [])}:
                    undeclared.add(f"{top} ({source.relative_to(root)})")
    assert not undeclared, sorted(undeclared)
