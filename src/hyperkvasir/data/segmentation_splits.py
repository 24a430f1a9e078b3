"""Train/val/test splits of the segmented images (polyps): a seeded, duplicate-aware 80/10/10 and Kvasir-SEG's
official 880/120 lists, with the schemes a segmenter trains under (``SEGMENTATION_SCHEMES``).

Apart from splits.py, whose k-fold schemes assign the labeled images; both keep the audit's duplicate sets whole
(a function given no ``report`` asks the audit itself) and this module takes the shared validation share from there.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from hyperkvasir.data.audit import AuditReport, audit
from hyperkvasir.data.kvasir_seg_lists import kvasir_seg_official_ids
from hyperkvasir.data.layout import Release
from hyperkvasir.data.splits import DEFAULT_VALIDATION_FRACTION
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.outputs import atomic_write


@dataclass(frozen=True)
class SegmentationSplit:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def write_csv(self, path: str | Path) -> None:
        with atomic_write(path, "w") as handle:
            writer = csv.writer(handle, delimiter=";", lineterminator="\n")
            writer.writerow(("file-name", "subset"))
            for subset in ("train", "val", "test"):
                writer.writerows((name, subset) for name in getattr(self, subset))


def segmentation_split(
    root: str | Path,
    *,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    report: AuditReport | None = None,
) -> SegmentationSplit:
    """Seeded train/val/test split of the segmented images; every duplicate set stays in one subset, found among
    the segmented images themselves and through labeled copies, whether or not the labeled part is present."""
    release = Release(root)
    images, _ = release.segmented_pairs()
    if not images:
        raise HyperKvasirError(
            f"{release.root}: no segmented images; get them with "
            f"`hyperkvasir download {release.root} --parts segmented`"
        )
    buckets = _segmented_buckets(release.root, [p.name for p in images], report)
    keys = sorted(buckets)
    random.Random(seed).shuffle(keys)
    total = len(images)
    subsets: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    target_test, target_val = round(total * fractions[2]), round(total * fractions[1])
    for key in keys:
        subset = (
            "test" if len(subsets["test"]) < target_test else "val" if len(subsets["val"]) < target_val else "train"
        )
        subsets[subset] += sorted(buckets[key])
    return SegmentationSplit(*(tuple(sorted(subsets[s])) for s in ("train", "val", "test")))


def _segmented_buckets(root: Path, names: list[str], report: AuditReport | None) -> dict[str, list[str]]:
    """Segmented file names grouped by the audit's split units (a name alone is its own bucket)."""
    report = report if report is not None else audit(root)  # the caller's report, or the audit's own
    set_of: dict[str, str] = {}
    for group in report.split_units():
        for path, part in zip(group.files, group.parts):
            if part == "segmented":
                set_of[Path(path).name] = group.files[0]
    buckets: dict[str, list[str]] = defaultdict(list)
    for name in names:
        buckets[set_of.get(name, name)].append(name)
    return buckets


def kvasir_seg_official_split(root: str | Path) -> SegmentationSplit:
    """The official 880/120 split for the segmented images present, matched by their ``cju…`` names.

    The split has no validation part; a trainer carves one out of ``train``. A UUID-named tree (the archive
    re-packed in 2022, dataset.md §6.9) cannot be matched and is refused with that reason.
    """
    release = Release(root)
    images, _ = release.segmented_pairs()
    if not images:
        raise HyperKvasirError(
            f"{release.root}: no segmented images; get them with "
            f"`hyperkvasir download {release.root} --parts segmented`"
        )
    ids = kvasir_seg_official_ids()
    train = sorted(p.name for p in images if p.stem in ids["train"])
    test = sorted(p.name for p in images if p.stem in ids["test"])
    if not train and not test:
        raise DataError(
            f"{release.root}/segmented-images: none of {len(images)} file names is a Kvasir-SEG ID (cju…); this "
            f"copy uses the newer UUID names, which the official 880/120 lists cannot name — use "
            f"`--scheme segmentation` (duplicate-aware 80/10/10) instead"
        )
    return SegmentationSplit(tuple(train), (), tuple(test))


SEGMENTATION_SCHEMES = ("segmentation", "kvasir-seg-official")


def segmentation_scheme_split(
    root: str | Path,
    scheme: str,
    *,
    fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = 0,
    report: AuditReport | None = None,
) -> SegmentationSplit:
    """Train/val/test for training a segmenter under ``scheme``; the official split gets a seeded validation
    carve-out of its training part (duplicate sets kept whole), so selection never sees its test part."""
    if scheme == "segmentation":
        return segmentation_split(root, seed=seed, report=report)
    if scheme != "kvasir-seg-official":
        raise HyperKvasirError(
            f"unknown segmentation scheme {scheme!r}; choose one of {', '.join(SEGMENTATION_SCHEMES)}"
        )
    official = kvasir_seg_official_split(root)
    buckets = _segmented_buckets(Release(root).root, list(official.train), report)
    keys = sorted(buckets)
    random.Random(seed).shuffle(keys)
    val: list[str] = []
    for key in keys:
        if len(val) >= round(len(official.train) * fraction):
            break
        val += buckets[key]
    train = sorted(set(official.train) - set(val))
    return SegmentationSplit(tuple(train), tuple(sorted(val)), official.test)
