"""What the grouped evidence means for folds and labels: pairs across folds (leakage), split units too large to
place, duplicate sets that carry two labels, and sets that straddle Kvasir-SEG's official split."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from hyperkvasir.data.audit.groups import DuplicateGroup, pair_components
from hyperkvasir.data.kvasir_seg_lists import kvasir_seg_official_ids

# A labeled split unit larger than this share of a class cannot be placed without skewing that class's folds;
# the audit and `splits` name it rather than cut it.
LARGE_UNIT_SHARE = 0.05


def leakage(pairs: Iterable[Sequence[str]], fold_of: Mapping[str, int | None]) -> dict:
    """Leakage of a fold assignment, counted per confirmed pair: ``pairs`` whose two images lie in different folds
    (``fold_pairs``: how many between each two folds), the ``images`` they touch, and the duplicate ``groups``
    (connected components of those pairs' evidence) that span folds."""
    listed = [tuple(pair) for pair in pairs]
    across: Counter[str] = Counter()
    images: set[str] = set()
    for a, b in listed:
        fa, fb = fold_of.get(a), fold_of.get(b)
        if fa is not None and fb is not None and fa != fb:
            across[f"{min(fa, fb)}-{max(fa, fb)}"] += 1
            images.update((a, b))
    return {
        "pairs": sum(across.values()),
        "images": len(images),
        "groups": _spanning_units(listed, fold_of),
        "fold_pairs": dict(sorted(across.items())),
    }


def _spanning_units(pairs: list[tuple[str, ...]], fold_of: Mapping[str, int | None]) -> int:
    """How many connected components of ``pairs`` hold images of more than one fold."""
    names = sorted({name for pair in pairs for name in pair})
    if not names:
        return 0
    number = {name: i for i, name in enumerate(names)}
    indices = np.asarray([[number[a], number[b]] for a, b in pairs], dtype=np.int64)
    spanning = 0
    for members in pair_components(len(names), indices):
        folds = {fold_of.get(names[i]) for i in members} - {None}
        spanning += len(folds) > 1
    return spanning


def large_units(units: list[DuplicateGroup], class_sizes: Counter) -> list[dict]:
    """Labeled split units of more than two images that hold over :data:`LARGE_UNIT_SHARE` of a class, largest
    first."""
    found = []
    for unit in units:
        counts = Counter(unit.classes[i] for i in unit.labeled_files())
        worst = max(counts, key=lambda c: counts[c] / class_sizes[c])
        if len(unit.files) > 2 and counts[worst] > LARGE_UNIT_SHARE * class_sizes[worst]:
            found.append(
                {"files": len(unit.files), "class": worst, "class_images": class_sizes[worst], "first": unit.files[0]}
            )
    return sorted(found, key=lambda u: -u["files"])


def label_conflicts(merged: list[DuplicateGroup]) -> list[dict]:
    """Duplicate sets whose labeled members carry more than one class: the benchmark's truth contradicts itself."""
    conflicts = []
    for g in merged:
        labeled = g.labeled_files()
        if len({g.classes[i] for i in labeled}) > 1:
            conflicts.append(
                {
                    "files": [g.files[i] for i in labeled],
                    "classes": [g.classes[i] for i in labeled],
                    "fold2": [g.fold2[i] for i in labeled],
                    "fold5": [g.fold5[i] for i in labeled],
                }
            )
    return conflicts


def kvasir_seg_straddle(merged: list[DuplicateGroup], segmented: list[dict]) -> dict:
    """Duplicate sets of segmented images with members on both sides of Kvasir-SEG's official 880/120 split."""
    side = {stem: subset for subset, stems in kvasir_seg_official_ids().items() for stem in stems}
    listed = sum(1 for r in segmented if Path(r["path"]).stem in side)
    straddling = [
        g
        for g in merged
        if len({side.get(Path(f).stem) for f, p in zip(g.files, g.parts) if p == "segmented"} - {None}) > 1
    ]
    return {
        "segmented_images": len(segmented),
        "in_official_lists": listed,
        "groups_straddling": len(straddling),
        "images_straddling": sum(1 for g in straddling for p in g.parts if p == "segmented"),
    }
