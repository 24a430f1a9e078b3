"""Fold assignment: the official k-fold algorithm of simula/hyper-kvasir and the schemes built on it."""

from __future__ import annotations

from collections.abc import Sequence


def official_chunk_folds(names: Sequence[str], k: int) -> list[int]:
    """Fold of each name as ``scripts/split_images_into_k_folds.py`` assigns it within one class.

    The files of a class, in listing order, are cut into ``k`` contiguous chunks of ``len // k``; the last
    fold takes the remainder (dataset.md §2), so a class of 9 images splits 1/1/1/1/5 in five folds.
    """
    chunk = len(names) // k
    return [min(i // chunk, k - 1) if chunk else k - 1 for i in range(len(names))]
