"""Pseudo-labels: confident teacher predictions on unlabeled images that a student adds to its training set.

A student may use them only when nothing of its own test fold reached the teacher: the teacher's provenance
(``<csv stem>.teacher.json``) records everything that decides its training images — scheme, test fold, seed,
validation share and a key of the labeled part of the tree — and the student's run must match each. Rows must
name existing files under ``unlabeled-images/`` of the student's tree; anything else is refused with its line.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq

from hyperkvasir.classify.module import ClassifyModule
from hyperkvasir.data.audit import audit
from hyperkvasir.data.layout import Release
from hyperkvasir.data.taxonomy import CLASSES, lookup
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.outputs import atomic_write
from hyperkvasir.provenance import tree_key

# What decides a teacher's training images; a student must match every one.
PROVENANCE = ("scheme", "test_fold", "seed", "val_fraction", "labeled_key")


def pseudo_labels(
    predictions: str | Path,
    out: str | Path,
    *,
    threshold: float = 0.9,
    per_class: dict[str, float] | None = None,
    max_per_class: int | None = None,
) -> dict[str, int]:
    """Keep predictions whose top probability reaches its class threshold; write ``path,label`` CSV.

    ``per_class`` overrides the threshold by class name (any naming), so rare classes can be taken at a lower
    confidence; ``max_per_class`` keeps the most confident images of each class. Returns the count per class.
    """
    table = pq.read_table(predictions).to_pylist()
    thresholds = {c.folder: threshold for c in CLASSES}
    thresholds |= {lookup(name).folder: value for name, value in (per_class or {}).items()}
    chosen: dict[str, list[tuple[float, str]]] = {c.folder: [] for c in CLASSES}
    for row in table:
        confidence = row[row["label"]]
        if confidence >= thresholds[row["label"]]:
            chosen[row["label"]].append((confidence, row["path"]))
    with atomic_write(out, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "label"])
        counts = {}
        for folder, items in chosen.items():
            items.sort(reverse=True)
            kept = items[:max_per_class] if max_per_class else items
            writer.writerows((path, folder) for _, path in kept)
            counts[folder] = len(kept)
    return counts


def teacher_path(pseudo_label_csv: str | Path) -> Path:
    """Where the teacher's provenance lives beside a pseudo-label CSV (``pl.csv`` → ``pl.teacher.json``)."""
    path = Path(pseudo_label_csv)
    return path.with_name(f"{path.stem}.teacher.json")


def write_teacher(checkpoint: str | Path, pseudo_label_csv: str | Path) -> dict:
    """Record the teacher's run and everything that decided its training images beside its pseudo-labels."""
    config = dataclasses.asdict(ClassifyModule.from_checkpoint(checkpoint)[0].config)
    record = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "run": str(Path(checkpoint).resolve().parent),
        "model": config["model"],
        "scheme": config["scheme"],
        "test_fold": config["fold"],
        "seed": config["seed"],
        "val_fraction": config["val_fraction"],
        "labeled_key": tree_key(config["root"]),
    }
    with atomic_write(teacher_path(pseudo_label_csv), "w") as handle:
        json.dump(record, handle, indent=2)
    return record


def _check_teacher(path: Path, student: dict) -> dict:
    sidecar = teacher_path(path)
    if not sidecar.is_file():
        raise HyperKvasirError(
            f"{path}: no {sidecar.name} beside it, so the teacher's training folds are unknown; "
            f"write pseudo-labels with `hyperkvasir predict … --part unlabeled --pseudo-labels`"
        )
    try:
        teacher = json.loads(sidecar.read_text())
    except (OSError, ValueError) as error:
        raise HyperKvasirError(f"{sidecar}: not readable JSON ({error}); write the pseudo-labels again") from None
    differ = [
        f"{name} {teacher.get(name)!r} (this run: {student[name]!r})"
        for name in PROVENANCE
        if teacher.get(name) != student[name]
    ]
    if differ:
        raise HyperKvasirError(
            f"{path}: the teacher ({teacher.get('run')}) was trained with another {', '.join(differ)}, so it may "
            f"have trained on images of this run's test fold; use a teacher trained with the same scheme, fold, "
            f"seed, validation share and labeled images"
        )
    return teacher


def usable_pseudo_labels(
    path: str | Path, root: str | Path, *, scheme: str, fold: int, seed: int, val_fraction: float, test_files: list[str]
) -> tuple[list[tuple[str, int]], dict]:
    """Pseudo-labels a student may train on: the teacher's provenance must match the student's run, every row
    must name an unlabeled image of this tree, and unlabeled images the audit links to a test image are dropped
    (counted in the report)."""
    path, root = Path(path), Path(root)
    student = {
        "scheme": scheme,
        "test_fold": fold,
        "seed": seed,
        "val_fraction": val_fraction,
        "labeled_key": tree_key(root),
    }
    teacher = _check_teacher(path, student)
    rows = read_pseudo_labels(path, root)
    test = set(test_files)
    linked = {
        f
        for group in audit(root).split_units()
        if any(Path(f).name in test for f, p in zip(group.files, group.parts) if p == "labeled")
        for f, p in zip(group.files, group.parts)
        if p != "labeled"
    }
    kept = [(relpath, label) for relpath, label in rows if relpath not in linked]
    return kept, {
        "file": str(path),
        "teacher": teacher["run"],
        "rows": len(rows),
        "used": len(kept),
        "dropped_duplicates_of_test_images": len(rows) - len(kept),
    }


def read_pseudo_labels(path: str | Path, root: str | Path) -> list[tuple[str, int]]:
    """(path relative to the release root, class index) rows of a pseudo-label CSV; a row naming anything but an
    existing file under ``unlabeled-images/`` of ``root`` (``..``, an absolute path, a labeled image, a link
    leaving the tree) is refused with its line."""
    release = Release(root)
    unlabeled = release.unlabeled_dir
    allowed = unlabeled.resolve() if unlabeled is not None else None
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != ["path", "label"]:
            raise HyperKvasirError(f"{path}: expected header 'path,label', found {reader.fieldnames}")
        for number, row in enumerate(reader, start=2):
            name = row["path"] or ""
            target = (release.root / name).resolve()
            if (
                allowed is None
                or Path(name).is_absolute()
                or ".." in Path(name).parts
                or not target.is_relative_to(allowed)
                or not target.is_file()
            ):
                raise DataError(
                    f"{path}:{number}: {name!r} is not an image under unlabeled-images/ of "
                    f"{release.root}; pseudo-labels may name unlabeled images of this tree only"
                )
            try:
                rows.append((name, lookup(row["label"]).index))
            except HyperKvasirError as error:
                raise HyperKvasirError(f"{path}:{number}: {error}") from None
    return rows
