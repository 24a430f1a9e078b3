"""Kvasir-SEG's official 880 train / 120 test image IDs, shipped with the package (``kvasir_seg/SOURCE.md``).

A floor below the audit and the splits: the audit counts duplicate groups that straddle this split, the splits
build it, and neither imports the other for it.
"""

from __future__ import annotations

from importlib import resources


def kvasir_seg_official_ids() -> dict[str, frozenset[str]]:
    """``train`` and ``test`` → the ``cju…`` image IDs of each (file stems, no extension)."""
    folder = resources.files("hyperkvasir.data") / "kvasir_seg"
    return {subset: frozenset((folder / f"{subset}.txt").read_text().split()) for subset in ("train", "test")}
