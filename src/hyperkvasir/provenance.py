"""How a result was made, recorded beside it: the toolkit's version and git revision, a key of the tree, a hash of
the resolved config, the weights actually loaded and the batch as the devices saw it.

Two results can be compared only when their tree keys agree (``hyperkvasir compare``); a benchmark folder holds
one config hash, so a rerun with other options never mixes with what is there.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from hyperkvasir.version import __version__

# Config keys that name where a run goes or how it is scheduled, not what it computes.
NOT_HASHED = frozenset({"out", "fold", "model", "workers", "device", "root", "cache"})


def git_revision() -> str | None:
    """The commit of the checkout the package runs from (None for an installed wheel)."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "."],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout.strip()
    return done.stdout.strip() + ("+changes" if dirty else "")


def tree_key(root: str | Path, parts: tuple[str, ...] = ("labeled",)) -> str:
    """A key of the ``parts`` of the tree at ``root``: every file's path, content hash and official folds."""
    from hyperkvasir.data.index import build_index

    rows = sorted(
        (r["path"], r["sha256"], r["fold2"], r["fold5"]) for r in build_index(root).to_pylist() if r["part"] in parts
    )
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def config_hash(config: dict) -> str:
    """A hash of the options that decide what a run computes (not where it goes: :data:`NOT_HASHED`)."""
    decisive = {key: value for key, value in sorted(config.items()) if key not in NOT_HASHED}
    return hashlib.sha256(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()[:16]


def differing_keys(a: dict, b: dict) -> list[str]:
    """The decisive config keys whose values differ between ``a`` and ``b`` (for the one-line refusal)."""
    keys = (set(a) | set(b)) - NOT_HASHED
    return sorted(key for key in keys if a.get(key) != b.get(key))


def weights_record(weights_from: str | None) -> dict:
    """What ``weights_from`` says, with the SHA-256 of a local weights file, and whether the network was
    pretrained at all (a random start must never sit beside the paper's "pre-trained" rows unnamed)."""
    record = {"source": weights_from, "pretrained": bool(weights_from) and weights_from != "random"}
    if weights_from and weights_from.startswith("file:"):
        path = Path(weights_from[5:].split(" (")[0])
        if path.is_file():
            from hyperkvasir.data.imaging import sha256_file

            record["sha256"] = sha256_file(path)
    return record


def provenance(
    config: dict, *, root: str | Path, weights_from: str | None, world_size: int, per_device_batch: int
) -> dict:
    """The ``provenance`` record of a run's metrics file."""
    return {
        "version": __version__,
        "git_revision": git_revision(),
        "tree_key": tree_key(root),
        "config_hash": config_hash(config),
        "weights": weights_record(weights_from),
        "world_size": world_size,
        "per_device_batch": per_device_batch,
        "effective_batch": per_device_batch * world_size,
    }
