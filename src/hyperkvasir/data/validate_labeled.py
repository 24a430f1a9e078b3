"""The checks of the labeled part: class folders and counts, decodability, ``image-labels.csv``, the official
split CSVs and the audit's duplicates and label conflicts, each appending its findings to a :class:`Collector`.

validate.py runs them (:func:`check_labeled`) with the checks of the other parts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from hyperkvasir.data.audit import AuditReport
from hyperkvasir.data.layout import Release
from hyperkvasir.data.tables import read_image_labels, read_split_csv
from hyperkvasir.data.taxonomy import CLASSES, RELEASED_TOTAL, lookup
from hyperkvasir.data.validate_report import Collector
from hyperkvasir.errors import HyperKvasirError, ReleaseFormatError


def check_labeled(found: Collector, release: Release, labeled: list[dict], report: AuditReport) -> None:
    """Every check of ``labeled-images/`` (``labeled``: its index rows), in the order validate runs them."""
    _check_counts(found, labeled)
    _check_files(found, labeled, report)
    _check_image_labels(found, release, labeled)
    _check_splits(found, release, labeled)
    _check_duplicates(found, report)


def _check_counts(found: Collector, labeled: list[dict]) -> None:
    per_class = Counter(r["class"] for r in labeled)
    for folder in sorted(per_class):
        try:
            lookup(folder)
        except HyperKvasirError:
            found.add(
                "error",
                "unknown-class",
                f"labeled-images/.../{folder}/",
                f"{per_class[folder]} images in a folder that is no HyperKvasir class",
                "rename it to a released class folder or move it out of labeled-images/",
            )
    total = len(labeled)
    over = [c for c in CLASSES if per_class.get(c.folder, 0) > c.released_count]
    for cls in over:
        found.add(
            "warning",
            "count-above-release",
            f"labeled-images/{cls.path}/",
            f"{per_class[cls.folder]} images, the release has {cls.released_count}",
            "files were added to this class; check for copies",
        )
    missing = [c.folder for c in CLASSES if per_class.get(c.folder, 0) == 0]
    if total < RELEASED_TOTAL or missing:
        classes = sum(1 for c in CLASSES if per_class.get(c.folder))
        found.add(
            "info",
            "partial-copy",
            "labeled-images/",
            f"partial copy: {total:,} of {RELEASED_TOTAL:,} released images, {classes} of 23 classes present"
            + (f" (absent: {', '.join(missing)})" if missing else ""),
            "fine for a subset; compare results with the paper only on the full release",
        )


def _check_files(found: Collector, labeled: list[dict], report: AuditReport) -> None:
    for row in labeled:
        if not row["decodes"]:
            found.add(
                "error",
                "undecodable-image",
                row["path"],
                row["error"] or "does not decode",
                "re-extract the archive or drop the file from the split",
            )
    pixel_errors = set(report.unreadable) - {r["path"] for r in labeled if not r["decodes"]}
    for path in sorted(pixel_errors):
        found.add(
            "error",
            "undecodable-image",
            path,
            "JPEG data is corrupt (decoder error)",
            "re-extract the archive or drop the file from the split",
        )
    by_name: dict[str, list[str]] = defaultdict(list)
    for row in labeled:
        by_name[Path(row["path"]).name].append(row["class"])
    for name, classes in sorted(by_name.items()):
        if len(set(classes)) > 1:
            found.add(
                "error",
                "file-in-two-classes",
                name,
                f"the same file name is in {', '.join(sorted(set(classes)))}",
                "keep it in the class the split CSV names",
            )


def _check_image_labels(found: Collector, release: Release, labeled: list[dict]) -> None:
    csv_path = release.image_labels_csv
    rel_csv = "labeled-images/image-labels.csv"
    if csv_path is None:
        if not (release.root / rel_csv).is_symlink():  # a link is reported as one (broken or leaving the tree)
            found.add(
                "error", "image-labels-missing", rel_csv, "file not found", "re-extract hyper-kvasir-labeled-images.zip"
            )
        return
    try:
        rows = read_image_labels(csv_path)
    except ReleaseFormatError as error:
        found.add("error", "image-labels-malformed", rel_csv, str(error), "restore the released file")
        return
    on_disk = {Path(r["path"]).stem: r for r in labeled}
    listed = {row.stem: row for row in rows}
    for stem, row in sorted(listed.items()):
        disk = on_disk.get(stem)
        if disk is None:
            found.add(
                "error",
                "labeled-row-without-file",
                f"{rel_csv}:{row.line}",
                f"row {stem} names a file that is not on disk",
                "re-extract the archive",
            )
        elif disk["class"] != row.cls.folder or disk["tract"] != row.tract or disk["category"] != row.category:
            found.add(
                "error",
                "labeled-row-disagrees",
                disk["path"],
                f"image-labels.csv line {row.line} files it under {row.relpath}",
                "move the file or correct the row",
            )
    for stem, disk in sorted(on_disk.items()):
        if stem not in listed:
            found.add(
                "error",
                "labeled-file-without-row",
                disk["path"],
                "image has no row in image-labels.csv",
                "add its row or remove the file",
            )


def _check_splits(found: Collector, release: Release, labeled: list[dict]) -> None:
    by_name = {Path(r["path"]).name: r for r in labeled}
    for k in (2, 5):
        csv_path = release.split_csv(k)
        if csv_path is None:
            continue
        rel = str(csv_path.relative_to(release.root))
        try:
            rows = read_split_csv(csv_path)
        except ReleaseFormatError as error:
            found.add("error", "split-malformed", rel, str(error), "restore the official file")
            continue
        listed = set()
        outside = [row for row in rows if not 0 <= row.fold < k]
        if outside:
            found.add(
                "error",
                "split-fold-outside",
                rel,
                f"{len(outside)} rows give a split index outside 0–{k - 1} (first: line {outside[0].line}, "
                f"{outside[0].file_name}: {outside[0].fold}); they would train in every direction and never "
                f"be tested",
                "restore the official file (`hyperkvasir download ROOT --parts splits`)",
            )
        for row in rows:
            listed.add(row.file_name)
            disk = by_name.get(row.file_name)
            if disk is None:
                continue  # a partial copy; counted below
            if disk["class"] != row.cls.folder:
                found.add(
                    "error",
                    "split-class-disagrees",
                    disk["path"],
                    f"{rel} line {row.line} says {row.cls.split_name} ({row.cls.folder})",
                    "the split CSV is joined on file name; move the file or fix the row",
                )
        absent = [name for name in listed if name not in by_name]
        if absent and len(by_name) > 0:
            found.add(
                "info",
                "split-rows-without-file",
                rel,
                f"{len(absent):,} of {len(rows):,} rows name files not in this copy",
                "expected for a partial copy; those rows are skipped",
            )
        for name, disk in sorted(by_name.items()):
            if name not in listed:
                found.add(
                    "error",
                    "file-not-in-split",
                    disk["path"],
                    f"not in {rel}",
                    "it gets no fold; add it to the split or remove it",
                )


def _check_duplicates(found: Collector, report: AuditReport) -> None:
    """A warning per duplicate group of labeled images; a group whose labels disagree is one label conflict."""
    conflicting = {f for conflict in report.label_conflicts for f in conflict["files"]}
    for group in report.exact_groups + report.labeled_near_groups:  # evidence between labeled images only
        files = [group.files[i] for i in group.labeled_files()]
        if len(files) < 2 or conflicting.issuperset(files):
            continue
        folds = {group.fold2[i] for i in group.labeled_files()}
        where = "across folds of the 2-fold split" if len(folds) > 1 else "within one fold"
        kind = "byte-identical" if group.kind == "exact" else f"near-identical (pHash ≤ {group.max_distance} bits)"
        found.add(
            "warning",
            f"{group.kind}-duplicate",
            files[0],
            f"{kind} to {', '.join(files[1:])} {where}",
            "use the grouped-2fold split (`hyperkvasir splits --scheme grouped-2fold`) to keep them together",
        )
    for conflict in report.label_conflicts:
        members = "; ".join(
            f"{f} is {c} (2-fold {f2}, 5-fold {f5})"
            for f, c, f2, f5 in zip(conflict["files"], conflict["classes"], conflict["fold2"], conflict["fold5"])
        )
        found.add(
            "warning",
            "label-conflict",
            conflict["files"][0],
            f"the same picture carries {len(set(conflict['classes']))} classes: {members}",
            "train with --exclude-conflicts, or keep them together with `--scheme grouped-2fold`",
        )
