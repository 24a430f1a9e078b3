"""Check a tree against the release: each finding has a severity, a file, what is wrong and what to do.

Severity ``error`` makes results computed on the tree wrong (exit 1); ``warning`` is a property worth knowing
that does not break a run (duplicates across folds, which the release itself has); ``info`` describes the
copy (a partial copy is reported as partial, not as broken). :func:`validate` runs every check; the checks of
the segmented and video parts are here, those of the labeled part in validate_labeled.py, and the finding and
report types in validate_report.py.
"""

from __future__ import annotations

from pathlib import Path

from scipy import ndimage

from hyperkvasir.data.audit import AuditReport, audit
from hyperkvasir.data.imaging import MIN_POLYP_COMPONENT, binarise_mask, decode_mask, mask_problem
from hyperkvasir.data.index import build_index
from hyperkvasir.data.layout import Release
from hyperkvasir.data.tables import read_bounding_boxes, read_video_labels
from hyperkvasir.data.validate_labeled import check_labeled
from hyperkvasir.data.validate_report import Collector, ValidationReport
from hyperkvasir.errors import ReleaseFormatError

_BOX_SLACK = 3  # px a mask component may stick out of its box (boxes are 1–2 px larger than masks)


def validate(
    root: str | Path, *, workers: int | None = None, audit_report: AuditReport | None = None, progress=None
) -> ValidationReport:
    """Validate the tree at ``root`` (indexing it incrementally first)."""
    release = Release(root)
    manifest = build_index(release.root, workers=workers).to_pylist()
    report = audit_report or audit(release.root, workers=workers, progress=progress)
    found = Collector()
    labeled = [r for r in manifest if r["part"] == "labeled"]
    if release.labeled_dir is not None:
        check_labeled(found, release, labeled, report)
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


def _check_segmented(found: Collector, release: Release, rows: list[dict]) -> None:
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
    found: Collector, release: Release, rel: str, entry, image: dict, mask: dict | None, size_ok: bool
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


def _check_videos(found: Collector, release: Release, rows: list[dict]) -> None:
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


__all__ = ["validate"]
