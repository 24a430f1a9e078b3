"""Fold assignment: the official k-fold algorithm of simula/hyper-kvasir and the schemes built on it.

Schemes (``SCHEMES``):

* ``official-2fold`` / ``official-5fold``: the folds of the official split CSVs, joined on file name.
* ``grouped-2fold``: two folds, stratified by class, that keep every exact/near-duplicate group of the audit
  in one fold (scikit-learn's ``StratifiedGroupKFold``), so no test image has a copy in training.

Every function that needs the audit takes its ``report``: a command obtains it once (:func:`audit`, computed by one
process under the work dir's lock and read by the others) and passes it on; without one, the function asks the
audit itself, which rescans the tree for the report's key.

Every scheme carves a validation subset out of each fold (stratified per class, seeded). When fold *t* is the
test fold, training uses the other folds minus their validation parts and model selection uses those
validation parts only: no checkpoint is ever chosen on its test fold (the paper did, dataset.md §3.1).

The splits of the segmented images are in segmentation_splits.py.
"""

from __future__ import annotations

import csv
import random
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hyperkvasir.data.audit import AuditReport, audit, leakage
from hyperkvasir.data.layout import Release
from hyperkvasir.data.tables import SPLIT_HEADER, read_split_csv
from hyperkvasir.data.taxonomy import ClassInfo, lookup
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.outputs import atomic_write

SCHEMES = ("official-2fold", "official-5fold", "grouped-2fold")
DEFAULT_VALIDATION_FRACTION = 0.1


def official_chunk_folds(names: Sequence[str], k: int) -> list[int]:
    """Fold of each name as ``scripts/split_images_into_k_folds.py`` assigns it within one class.

    The files of a class, in listing order, are cut into ``k`` contiguous chunks of ``len // k``; the last
    fold takes the remainder (dataset.md §2), so a class of 9 images splits 1/1/1/1/5 in five folds.
    """
    chunk = len(names) // k
    return [min(i // chunk, k - 1) if chunk else k - 1 for i in range(len(names))]


@dataclass(frozen=True)
class SplitAssignment:
    """Fold and validation flag of every labeled image under one scheme."""

    scheme: str
    k: int
    files: dict[str, tuple[ClassInfo, int, bool]]  # file name -> (class, fold, validation)

    def subsets(self, test_fold: int) -> dict[str, list[str]]:
        """``train``/``val``/``test`` file names when ``test_fold`` is held out."""
        if not 0 <= test_fold < self.k:
            raise HyperKvasirError(f"fold {test_fold} does not exist in {self.scheme}; choose 0 to {self.k - 1}")
        out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for name, (_, fold, validation) in sorted(self.files.items()):
            out["test" if fold == test_fold else "val" if validation else "train"].append(name)
        return out

    def write_csv(self, path: str | Path) -> None:
        """The official format (``file-name;class-name;split-index``) plus a ``validation`` column (0/1)."""
        with atomic_write(path, "w") as handle:
            writer = csv.writer(handle, delimiter=";", lineterminator="\n")
            writer.writerow((*SPLIT_HEADER, "validation"))
            for name, (cls, fold, validation) in sorted(self.files.items(), key=lambda kv: (kv[1][0].index, kv[0])):
                writer.writerow((name, cls.split_name, fold, int(validation)))


def carve_validation(
    files: dict[str, tuple[ClassInfo, int]],
    fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = 0,
    groups: dict[str, int] | None = None,
) -> set[str]:
    """A seeded, per-class-stratified validation subset of each fold that keeps every split unit (``groups``:
    name → unit id) whole within its fold, across classes: a copy of a validation image never trains.

    Each (fold, class) cell aims at ``round(n * fraction)`` images, at least one when it has two or more, and
    never gives its last image, so rare classes stay in training; a unit that would empty a cell stays in training.
    """
    rng = random.Random(seed)
    cells: dict[tuple[int, int], list[str]] = defaultdict(list)
    for name, (cls, fold) in sorted(files.items()):
        cells[(fold, cls.index)].append(name)
    groups = groups or {}
    members: dict[tuple[int, int], list[str]] = defaultdict(list)  # (fold, unit) → names, any class
    for name, (_, fold) in sorted(files.items()):
        if name in groups:
            members[(fold, groups[name])].append(name)
    chosen: set[str] = set()
    taken: Counter[tuple[int, int]] = Counter()
    for key in sorted(cells):
        names = cells[key]
        rng.shuffle(names)
        want = min(len(names) - 1, max(1 if len(names) >= 2 else 0, round(len(names) * fraction)))
        for name in names:
            if taken[key] >= want:
                break
            if name in chosen:
                continue
            batch = members[(key[0], groups[name])] if name in groups else [name]
            cell_of = [(files[n][1], files[n][0].index) for n in batch]
            if any(taken[c] + cell_of.count(c) >= len(cells[c]) for c in set(cell_of)):
                continue  # the unit would take a cell's last image
            chosen.update(batch)
            taken.update(cell_of)
    return chosen


def official_assignment(
    release: Release,
    k: int,
    *,
    fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = 0,
    present_only: bool = True,
    report: AuditReport | None = None,
) -> SplitAssignment:
    """The official ``k``-fold split of the release (rows of files not on disk dropped when ``present_only``)."""
    path = release.split_csv(k)
    if path is None:
        raise HyperKvasirError(
            f"{release.root}: no official {k}-fold split CSV in official_splits/ or splits/; "
            f"get it with `hyperkvasir download {release.root} --parts splits`"
        )
    rows = read_split_csv(path)
    outside = next((row for row in rows if not 0 <= row.fold < k), None)
    if outside is not None:
        raise DataError(
            f"{path}:{outside.line}: split index {outside.fold} of {outside.file_name} is not a fold "
            f"of a {k}-fold split (0 to {k - 1}); restore the official CSV with `hyperkvasir download "
            f"{release.root} --parts splits`"
        )
    on_disk = {p.name for p in release.labeled_files()} if present_only else None
    files = {r.file_name: (r.cls, r.fold) for r in rows if on_disk is None or r.file_name in on_disk}
    groups = split_units(release.root, report) if on_disk else {}
    validation = carve_validation(files, fraction, seed, groups)
    return SplitAssignment(f"official-{k}fold", k, {n: (c, f, n in validation) for n, (c, f) in files.items()})


def split_units(root: Path, report: AuditReport | None = None) -> dict[str, int]:
    """File name → split-unit id for labeled images linked to another labeled image by the audit's evidence
    between labeled images: connected components of every byte copy and confirmed near pair, however long the
    chain, so no confirmed pair can be split (a frame of another part that resembles two labeled images does
    not join them)."""
    ids: dict[str, int] = {}
    for number, unit in enumerate(_report(root, report).labeled_split_units()):
        for name in unit.files:
            ids[Path(name).name] = number
    return ids


def _report(root: str | Path, report: AuditReport | None) -> AuditReport:
    """``report``, or the audit of ``root`` when the caller has none."""
    return report if report is not None else audit(root)


def ambiguous_files(release: Release) -> dict[str, list[Path]]:
    """File name → its paths, for names found under more than one class folder of ``labeled-images/``."""
    paths: dict[str, list[Path]] = defaultdict(list)
    for path in release.labeled_files():
        paths[path.name].append(path)
    return {name: sorted(found) for name, found in sorted(paths.items()) if len({p.parent.name for p in found}) > 1}


def drop_label_conflicts(
    root: str | Path, subsets: dict[str, list[str]], report: AuditReport | None = None
) -> dict[str, int]:
    """Leave the audit's label-conflict images (and names under two class folders) out of training and
    validation, in place; the test part keeps every image, so the score stays comparable. Returns how many left
    ``train`` and ``val``, and how many conflicting images ``test`` holds (``test_conflicting``)."""
    conflicting = {Path(f).name for c in _report(root, report).label_conflicts for f in c["files"]}
    conflicting |= set(ambiguous_files(Release(root)))
    dropped = {}
    for name in ("train", "val"):
        kept = [f for f in subsets[name] if f not in conflicting]
        dropped[name] = len(subsets[name]) - len(kept)
        subsets[name][:] = kept
    dropped["test_conflicting"] = sum(f in conflicting for f in subsets["test"])
    return dropped


# test: score the test fold once (what results report); dev: score the validation carve-out of the training folds
# with a second carve-out for selection, never opening the test fold (how recipes and options are chosen).
PROTOCOLS = ("test", "dev")


def protocol_subsets(
    root: str | Path,
    split: SplitAssignment,
    test_fold: int,
    protocol: str,
    *,
    fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = 0,
    report: AuditReport | None = None,
) -> dict[str, list[str]]:
    """``train``/``val``/``test`` file names of one fold under ``protocol``, ``test`` being the part scored.
    Under ``dev`` the validation carve-out is scored and a second seeded carve-out of the training part (split
    units whole) selects the checkpoint, so the test fold is never opened while a recipe is chosen."""
    subsets = split.subsets(test_fold)
    if protocol == "test":
        return subsets
    if protocol != "dev":
        raise HyperKvasirError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    training = {name: split.files[name][:2] for name in subsets["train"]}
    inner = carve_validation(training, fraction, seed + 1, split_units(Path(root), report))
    return {"train": [n for n in subsets["train"] if n not in inner], "val": sorted(inner), "test": subsets["val"]}


def assignment_leakage(root: str | Path, split: SplitAssignment, report: AuditReport | None = None) -> dict:
    """The audit's leakage figures (:func:`hyperkvasir.data.audit.leakage`) for ``split``: confirmed pairs of
    labeled images in different folds, and the audit's split units too large to place without skewing a class."""
    report = _report(root, report)
    fold_of = {
        path: split.files[Path(path).name][1]
        for pair in report.labeled_pairs
        for path in pair
        if Path(path).name in split.files
    }
    return {**leakage(report.labeled_pairs, fold_of), "large_units": report.large_units}


def grouped_assignment(
    release: Release,
    *,
    k: int = 2,
    fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = 0,
    report: AuditReport | None = None,
) -> SplitAssignment:
    """Leakage-free folds: duplicate groups stay in one fold, classes stay stratified."""
    from sklearn.model_selection import StratifiedGroupKFold

    files = sorted(release.labeled_files(), key=lambda p: p.name)
    if not files:
        raise HyperKvasirError(f"{release.root}: no labeled images to split")
    classes = [lookup(p.parent.name) for p in files]
    groups = split_units(release.root, report)
    group_ids = np.asarray([groups.get(p.name, 1_000_000 + i) for i, p in enumerate(files)])
    labels = np.asarray([c.index for c in classes])
    folds = np.zeros(len(files), dtype=int)
    with warnings.catch_warnings():  # rare classes have fewer members than folds, as in the release
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for fold, (_, test) in enumerate(splitter.split(np.zeros(len(files)), labels, group_ids)):
            folds[test] = fold
    assigned = {p.name: (c, int(f)) for p, c, f in zip(files, classes, folds)}
    validation = carve_validation(assigned, fraction, seed, groups)
    return SplitAssignment(f"grouped-{k}fold", k, {n: (c, f, n in validation) for n, (c, f) in assigned.items()})


def assignment(
    root: str | Path,
    scheme: str,
    *,
    fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = 0,
    allow_ambiguous: bool = False,
    report: AuditReport | None = None,
) -> SplitAssignment:
    """The fold assignment of ``scheme`` (one of :data:`SCHEMES`) for the tree at ``root``. A file name under two
    class folders has no single class: refused unless ``allow_ambiguous`` (the caller then leaves it out of
    training and validation with :func:`drop_label_conflicts`)."""
    release = Release(root)
    clashes = ambiguous_files(release)
    if clashes and not allow_ambiguous:
        name, paths = next(iter(clashes.items()))
        raise DataError(
            f"{' and '.join(map(str, paths))}: one file name under {len(paths)} class folders "
            f"({len(clashes)} such names), so its class is ambiguous; keep one copy, or train with "
            f"--exclude-conflicts"
        )
    if scheme == "official-2fold":
        return official_assignment(release, 2, fraction=fraction, seed=seed, report=report)
    if scheme == "official-5fold":
        return official_assignment(release, 5, fraction=fraction, seed=seed, report=report)
    if scheme == "grouped-2fold":
        return grouped_assignment(release, fraction=fraction, seed=seed, report=report)
    raise HyperKvasirError(f"unknown split scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
