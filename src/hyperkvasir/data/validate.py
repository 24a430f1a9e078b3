"""Check a tree against the release: each finding has a severity, a file, what is wrong and what to do.

Severity ``error`` makes results computed on the tree wrong (exit 1); ``warning`` is a property worth knowing
that does not break a run (duplicates across folds, which the release itself has); ``info`` describes the
copy (a partial copy is reported as partial, not as broken).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from scipy import ndimage

from hyperkvasir.data.audit import AuditReport, audit
from hyperkvasir.data.imaging import MIN_POLYP_COMPONENT, binarise_mask, decode_mask, mask_problem
from hyperkvasir.data.index import build_index
from hyperkvasir.data.layout import Release
from hyperkvasir.data.tables import read_bounding_boxes, read_image_labels, read_split_csv, read_video_labels
from hyperkvasir.data.taxonomy import CLASSES, RELEASED_TOTAL, lookup
from hyperkvasir.errors import HyperKvasirError, ReleaseFormatError

_BOX_SLACK = 3  # px a mask component may stick out of its box (boxes are 1–2 px larger than masks)


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning | info
    code: str
    file: str  # relative to the release root
    message: str
    hint: str

    def line(self) -> str:
        return f"{self.severity}: {self.file}: {self.message} ({self.hint})"


@dataclass
class ValidationReport:
    root: str
    findings: list[Finding]

    @property
    def exit_code(self) -> int:
        return 1 if any(f.severity == "error" for f in self.findings) else 0

    def counts(self) -> dict[str, int]:
        return dict(Counter(f.severity for f in self.findings))

    def to_json(self) -> dict:
        return {
            "root": self.root,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "findings": [asdict(f) for f in self.findings],
        }


class _Collector(list):
    def add(self, severity: str, code: str, file: str | Path, message: str, hint: str) -> None:
        self.append(Finding(severity, code, str(file), message, hint))


def validate(
    root: str | Path, *, workers: int | None = None, audit_report: AuditReport | None = None, progress=None
) -> ValidationReport:
    """Validate the tree at ``root`` (indexing it incrementally first)."""
    release = Release(root)
    manifest = build_index(release.root, workers=workers).to_pylist()
    report = audit_report or audit(release.root, workers=workers, progress=progress)
    found = _Collector()
    labeled = [r for r in manifest if r["part"] == "labeled"]
    if release.labeled_dir is not None:
        _check_counts(found, labeled)
        _check_files(found, labeled, report)
        _check_image_labels(found, release, labeled)
        _check_splits(found, release, labeled)
        _check_duplicates(found, report)
    if release.segmented_dir is not None:
        _check_segmented(found, release, [r for r in manifest if r["part"] == "segmented"])
    if release.videos_dir is not None:
        _check_videos(found, release, [r for r in manifest if r["part"] == "videos"])
    for entry in release.skipped():
        found.add("error", *_SKIPPED[entry.code](entry))
    for part in ("labeled", "segmented", "unlabeled", "videos", "splits"):
        if release.part(part) is None:
            found.add(
                "info",
                "part-absent",
                ".",
                f"the {part} part is not in this copy",
                f"`hyperkvasir download {release.root} --parts {part}` fetches it",
            )
    order = {"error": 0, "warning": 1, "info": 2}
    return ValidationReport(str(release.root), sorted(found, key=lambda f: (order[f.severity], f.code, f.file)))


# Why an entry is left out of every listing: (code, file, message, hint) of its finding.
_SKIPPED = {
    "broken-link": lambda e: (
        "broken-link",
        e.path,
        f"a symbolic link that points nowhere or loops ({e.target})",
        "remove the link or point it at the file",
    ),
    "link-outside-tree": lambda e: (
        "link-outside-tree",
        e.path,
        f"a link to {e.target}, outside the tree: nothing is read through it",
        "copy what it points at into the tree, or remove the link",
    ),
    "not-a-file": lambda e: ("not-a-file", e.path, "a pipe, socket or device, not a file", "replace it with the file"),
    "undecodable-name": lambda e: (
        "undecodable-name",
        e.path,
        "a name whose bytes are no UTF-8 (shown as \\xNN): it is left out of every listing",
        "rename it (e.g. `convmv -f latin1 -t utf8`)",
    ),
}


def _check_counts(found: _Collector, labeled: list[dict]) -> None:
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


def _check_files(found: _Collector, labeled: list[dict], report: AuditReport) -> None:
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


def _check_image_labels(found: _Collector, release: Release, labeled: list[dict]) -> None:
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


def _check_splits(found: _Collector, release: Release, labeled: list[dict]) -> None:
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


def _check_duplicates(found: _Collector, report: AuditReport) -> None:
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


def _check_segmented(found: _Collector, release: Release, rows: list[dict]) -> None:
    images = {Path(r["path"]).stem: r for r in rows if r["kind"] == "image"}
    masks = {Path(r["path"]).stem: r for r in rows if r["kind"] == "mask"}
    for stem in sorted(set(images) ^ set(masks)):
        row = images.get(stem) or masks[stem]
        other = "mask" if stem in images else "image"
        found.add(
            "error",
            f"segmented-without-{other}",
            row["path"],
            f"no {other} named {stem}",
            "re-extract hyper-kvasir-segmented-images.zip",
        )
    for row in rows:
        if not row["decodes"]:
            found.add(
                "error",
                "undecodable-image",
                row["path"],
                row["error"] or "does not decode",
                "re-extract hyper-kvasir-segmented-images.zip",
            )
    sizes_ok = set()
    for stem in sorted(set(images) & set(masks)):
        image, mask = images[stem], masks[stem]
        if not (image["decodes"] and mask["decodes"]):
            continue
        if (image["width"], image["height"]) != (mask["width"], mask["height"]):
            found.add(
                "error",
                "mask-size-mismatch",
                mask["path"],
                f"mask is {mask['width']}x{mask['height']}, image is {image['width']}x{image['height']}",
                "resize the mask with nearest-neighbour to the image size or restore it",
            )
        else:
            sizes_ok.add(stem)
    boxes_path = release.bounding_boxes_json
    rel = "segmented-images/bounding-boxes.json"
    boxes = {}
    if boxes_path is None:
        if not (release.root / rel).is_symlink():  # a link is reported as one (broken or leaving the tree)
            found.add("error", "boxes-missing", rel, "file not found", "re-extract hyper-kvasir-segmented-images.zip")
    else:
        try:
            boxes = read_bounding_boxes(boxes_path)
        except ReleaseFormatError as error:
            found.add("error", "boxes-malformed", rel, str(error), "restore the released file")
    for stem in sorted(set(boxes) - set(images)):
        found.add(
            "error",
            "box-without-image",
            rel,
            f"key {stem} matches no segmented image",
            "boxes are keyed by image stem; restore matching files",
        )
    for stem in sorted(set(images) - set(boxes)) if boxes else []:
        found.add(
            "error",
            "image-without-box",
            images[stem]["path"],
            "no entry in bounding-boxes.json",
            "restore the released bounding-boxes.json",
        )
    for stem in sorted(set(boxes) & set(images)):
        _check_boxes(found, release, rel, boxes[stem], images[stem], masks.get(stem), stem in sizes_ok)


def _check_boxes(
    found: _Collector, release: Release, rel: str, entry, image: dict, mask: dict | None, size_ok: bool
) -> None:
    width, height = image["width"], image["height"]
    if width is None:
        return
    if (entry.width, entry.height) != (width, height):
        found.add(
            "warning",
            "box-size-disagrees",
            rel,
            f"{entry.stem}: boxes are for {entry.width}x{entry.height}, image is {width}x{height}",
            "boxes must be rescaled with the image (a resized copy?)",
        )
    for number, box in enumerate(entry.boxes):
        if not (0 <= box.xmin < box.xmax <= entry.width and 0 <= box.ymin < box.ymax <= entry.height):
            found.add(
                "error",
                "box-out-of-bounds",
                rel,
                f"{entry.stem} box {number} ({box.xmin},{box.ymin})-({box.xmax},{box.ymax}) leaves its "
                f"{entry.width}x{entry.height} image",
                "clip or restore the box",
            )
    if mask is None or not mask["decodes"] or not size_ok:
        return
    gray = decode_mask(release.root / mask["path"])
    problem = mask_problem(gray)
    if problem:
        found.add(
            "error",
            "mask-not-binary",
            mask["path"],
            f"not a binary mask ({problem})",
            "masks are white polyp on black; restore the released mask",
        )
        return
    labels, count = ndimage.label(binarise_mask(gray))
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None or (labels[region] == index).sum() < MIN_POLYP_COMPONENT:
            continue
        ys, xs = region
        covered = any(
            x0 - _BOX_SLACK <= xs.start
            and xs.stop - 1 <= x1 + _BOX_SLACK
            and y0 - _BOX_SLACK <= ys.start
            and ys.stop - 1 <= y1 + _BOX_SLACK
            for x0, y0, x1, y1 in entry.scaled(width, height)
        )
        if not covered:
            found.add(
                "warning",
                "mask-component-without-box",
                mask["path"],
                f"polyp region at x {xs.start}-{xs.stop - 1}, y {ys.start}-{ys.stop - 1} is in no box",
                "detection metrics will count it as missed; check bounding-boxes.json",
            )


def _check_videos(found: _Collector, release: Release, rows: list[dict]) -> None:
    csv_path = release.video_labels_csv
    if csv_path is None:
        found.add(
            "error",
            "video-labels-missing",
            "labeled-videos/video-labels.csv",
            "file not found",
            "re-extract hyper-kvasir-videos.zip",
        )
        return
    rel = str(csv_path.relative_to(release.root))
    try:
        labels = {row.stem: row for row in read_video_labels(csv_path)}
    except ReleaseFormatError as error:
        found.add("error", "video-labels-malformed", rel, str(error), "restore the released file")
        return
    on_disk = {Path(r["path"]).stem: r for r in rows}
    for stem in sorted(set(labels) - set(on_disk)):
        found.add(
            "error",
            "video-row-without-file",
            f"{rel}:{labels[stem].line}",
            f"video {stem} is not on disk",
            "re-extract hyper-kvasir-videos.zip",
        )
    for stem in sorted(set(on_disk) - set(labels)):
        found.add(
            "error",
            "video-file-without-row",
            on_disk[stem]["path"],
            f"no row in {rel}",
            "add its row or remove the file",
        )
    for row in rows:
        if not row["decodes"]:
            found.add(
                "error",
                "undecodable-video",
                row["path"],
                row["error"] or "does not open",
                "re-extract hyper-kvasir-videos.zip",
            )


__all__ = ["Finding", "ValidationReport", "validate"]
