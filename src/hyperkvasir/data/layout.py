"""Where each part of a HyperKvasir release lives, and strict readers for its CSV and JSON files.

Facts and variants come from docs/dataset.md (§1 layout, §2 split files, §1.4 boxes, §1.7/§7 videos). Readers
return plain dataclasses (no torch, no pandas) and reject a malformed file with a one-line
:class:`ReleaseFormatError` naming the file, the line and what is wrong. Split CSVs are joined on the file
name, never on the class name, because the split CSVs use a different naming (taxonomy.py).
"""

from __future__ import annotations

import csv
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hyperkvasir.data.taxonomy import (
    CATEGORIES,
    ClassInfo,
    Tract,
    lookup,
    tract_of_organ,
)
from hyperkvasir.errors import (
    DatasetNotFoundError,
    HyperKvasirError,
    ReleaseFormatError,
)

PARTS = ("labeled", "segmented", "unlabeled", "videos", "splits")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg"})
VIDEO_SUFFIXES = frozenset({".avi", ".mpg", ".mp4"})
SPLIT_FILES = {2: "2_fold_split.csv", 5: "5_fold_split.csv"}
SPLIT_HEADER = ("file-name", "class-name", "split-index")
IMAGE_LABELS_HEADER = ("Video file", "Organ", "Finding", "Classification")
VIDEO_METADATA_HEADER = (
    "file-name",
    "finding",
    "width",
    "height",
    "number-of-frames",
    "fps",
    "length",
    "kilobytes",
)
# Files that copies made on macOS/Windows carry and that are never part of the release.
_ROGUE_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})


def is_rogue(relpath: Path) -> bool:
    """Operating-system litter (``.DS_Store``, ``__MACOSX/``, ``._x.jpg``) that must be ignored.

    ``relpath`` is relative to the part's folder, so only the release's own folders are looked at.
    """
    return any(_rogue_name(part) for part in relpath.parts)


def _rogue_name(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX" or name.lower() in _ROGUE_NAMES


# ----------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class ImageLabel:
    """A row of ``labeled-images/image-labels.csv``; ``Video file`` is really the image stem (§1.3)."""

    stem: str
    tract: Tract
    category: str
    cls: ClassInfo
    line: int

    @property
    def file_name(self) -> str:
        return f"{self.stem}.jpg"

    @property
    def relpath(self) -> str:
        """Path relative to ``labeled-images/``, as the row says it should be."""
        return f"{self.tract}/{self.category}/{self.cls.folder}/{self.file_name}"


@dataclass(frozen=True)
class SplitRow:
    """A row of an official split CSV (``file-name;class-name;split-index``)."""

    file_name: str
    cls: ClassInfo
    fold: int
    line: int


@dataclass(frozen=True)
class Box:
    """A box of ``bounding-boxes.json``: integer pixels, origin top-left, max inclusive as released."""

    label: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int


@dataclass(frozen=True)
class BoxEntry:
    """The boxes of one segmented image, with the image size the file claims."""

    stem: str
    width: int
    height: int
    boxes: tuple[Box, ...]

    def scaled(self, width: int, height: int) -> list[tuple[float, float, float, float]]:
        """(xmin, ymin, xmax, ymax) of each non-empty box in the pixels of an image of ``width`` × ``height``
        (a resized copy's), clipped to it: the one place boxes are rescaled."""
        sx, sy = width / self.width, height / self.height
        return [
            (
                max(0.0, b.xmin * sx),
                max(0.0, b.ymin * sy),
                min(float(width), b.xmax * sx),
                min(float(height), b.ymax * sy),
            )
            for b in self.boxes
            if b.xmax > b.xmin and b.ymax > b.ymin
        ]


@dataclass(frozen=True)
class VideoLabel:
    """A row of ``video-labels.csv``: main finding first, then secondary findings (§7)."""

    stem: str
    tract: Tract
    findings: tuple[tuple[str, str], ...]  # (classification, finding) pairs, raw strings
    line: int

    @property
    def main_finding(self) -> str:
        return self.findings[0][1] if self.findings else ""


@dataclass(frozen=True)
class VideoMetadata:
    """A row of ``hyper-kvasir-video-metadata.csv`` (official repository)."""

    file_name: str
    finding: str | None  # "None" in the file for the three .mpg videos
    width: int
    height: int
    frames: int
    fps: int
    length_s: int
    kilobytes: int
    line: int


# ------------------------------------------------------------------------------------------------ tables
def _read_table(
    path: Path, delimiter: str, required: tuple[str, ...], exact: bool = False
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a delimited file after checking its header and each row's width."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ReleaseFormatError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReleaseFormatError(path, f"cannot read as UTF-8 text ({error})") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ReleaseFormatError(path, f"file is empty; expected header {delimiter.join(required)!r}", 1)
    header = [h.strip() for h in next(csv.reader([lines[0]], delimiter=delimiter))]
    if len(header) == 1 and len(required) > 1:
        other = ";" if delimiter == "," else ","
        found = f"found {other!r}" if other in lines[0] else "found no delimiter"
        raise ReleaseFormatError(path, f"wrong delimiter: expected {delimiter!r}, {found} in the header", 1)
    folded = {h.lower(): h for h in header}
    missing = [name for name in required if name.lower() not in folded]
    if missing or (exact and len(header) != len(required)):
        raise ReleaseFormatError(path, f"unexpected header {lines[0]!r}; expected {delimiter.join(required)!r}", 1)
    for number, row in enumerate(csv.reader(lines[1:], delimiter=delimiter), start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ReleaseFormatError(path, f"expected {len(header)} fields, found {len(row)}", number)
        yield number, {key.lower(): value.strip() for key, value in zip(header, row)}


def _class_at(path: Path, number: int, name: str) -> ClassInfo:
    try:
        return lookup(name)
    except HyperKvasirError as error:
        raise ReleaseFormatError(path, str(error), number) from None


def _int_at(path: Path, number: int, column: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ReleaseFormatError(path, f"column {column!r} is not an integer: {value!r}", number) from None


def read_split_csv(path: str | Path) -> list[SplitRow]:
    """An official split CSV: ``;``-separated, header ``file-name;class-name;split-index``, unique file names."""
    path = Path(path)
    rows: list[SplitRow] = []
    first_seen: dict[str, int] = {}
    for number, row in _read_table(path, ";", SPLIT_HEADER, exact=True):
        name = row["file-name"]
        if not name:
            raise ReleaseFormatError(path, "empty file-name", number)
        if name in first_seen:
            raise ReleaseFormatError(path, f"file {name!r} repeated (first on line {first_seen[name]})", number)
        first_seen[name] = number
        fold = _int_at(path, number, "split-index", row["split-index"])
        if fold < 0:
            raise ReleaseFormatError(path, f"negative split-index {fold}", number)
        rows.append(SplitRow(name, _class_at(path, number, row["class-name"]), fold, number))
    if not rows:
        raise ReleaseFormatError(path, "no data rows after the header")
    return rows


def read_image_labels(path: str | Path) -> list[ImageLabel]:
    """``image-labels.csv``: ``Video file,Organ,Finding,Classification`` (comma-separated, §1.3)."""
    path = Path(path)
    rows: list[ImageLabel] = []
    first_seen: dict[str, int] = {}
    for number, row in _read_table(path, ",", IMAGE_LABELS_HEADER):
        stem = row["video file"].removesuffix(".jpg")
        if not stem:
            raise ReleaseFormatError(path, "empty 'Video file'", number)
        if stem in first_seen:
            raise ReleaseFormatError(path, f"image {stem!r} repeated (first on line {first_seen[stem]})", number)
        first_seen[stem] = number
        try:
            tract = tract_of_organ(row["organ"])
        except HyperKvasirError as error:
            raise ReleaseFormatError(path, str(error), number) from None
        category = row["classification"].lower()
        if category not in CATEGORIES:
            raise ReleaseFormatError(
                path,
                f"unknown Classification {row['classification']!r}; expected one of {', '.join(CATEGORIES)}",
                number,
            )
        rows.append(ImageLabel(stem, tract, category, _class_at(path, number, row["finding"]), number))
    return rows


def read_bounding_boxes(path: str | Path) -> dict[str, BoxEntry]:
    """``bounding-boxes.json``: ``{stem: {"height", "width", "bbox": [{"label", "xmin", …}]}}`` (§1.4)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseFormatError(path, "file not found") from None
    except json.JSONDecodeError as error:
        raise ReleaseFormatError(path, f"not valid JSON: {error.msg} (column {error.colno})", error.lineno) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReleaseFormatError(path, f"cannot read ({error})") from None
    if not isinstance(data, dict):
        raise ReleaseFormatError(path, "top level must be an object keyed by image stem")
    entries: dict[str, BoxEntry] = {}
    for stem, entry in data.items():
        where = f"entry {stem!r}"
        if not isinstance(entry, dict) or not isinstance(entry.get("bbox"), list):
            raise ReleaseFormatError(path, f"{where}: expected an object with a 'bbox' list")
        width, height = _json_ints(path, where, entry, ("width", "height"))
        boxes = []
        for number, box in enumerate(entry["bbox"]):
            if not isinstance(box, dict):
                raise ReleaseFormatError(path, f"{where}: box {number} is not an object")
            coords = _json_ints(path, f"{where} box {number}", box, ("xmin", "ymin", "xmax", "ymax"))
            boxes.append(Box(str(box.get("label", "polyp")), *coords))
        entries[stem.removesuffix(".jpg")] = BoxEntry(stem.removesuffix(".jpg"), width, height, tuple(boxes))
    return entries


def _json_ints(path: Path, where: str, obj: dict, keys: tuple[str, ...]) -> list[int]:
    values = []
    for key in keys:
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ReleaseFormatError(path, f"{where}: {key!r} must be an integer, found {value!r}")
        values.append(int(value))
    return values


def read_video_labels(path: str | Path) -> list[VideoLabel]:
    """``video-labels.csv``: ``Video file,Organ,Classification 1,Finding 1[,Classification N,Finding N…]``."""
    path = Path(path)
    rows: list[VideoLabel] = []
    for number, row in _read_table(path, ",", ("Video file", "Organ", "Classification 1", "Finding 1")):
        try:
            tract = tract_of_organ(row["organ"])
        except HyperKvasirError as error:
            raise ReleaseFormatError(path, str(error), number) from None
        findings = []
        index = 1
        while f"finding {index}" in row:
            finding, classification = row[f"finding {index}"], row.get(f"classification {index}", "")
            if finding:
                findings.append((classification, finding))
            index += 1
        if not findings:
            raise ReleaseFormatError(path, "no finding in 'Finding 1'", number)
        stem = row["video file"]
        for suffix in VIDEO_SUFFIXES:
            stem = stem.removesuffix(suffix)
        rows.append(VideoLabel(stem, tract, tuple(findings), number))
    return rows


def read_video_metadata(path: str | Path) -> list[VideoMetadata]:
    """``hyper-kvasir-video-metadata.csv`` of the official repository (``;``-separated, §1.7)."""
    path = Path(path)
    rows = []
    for number, row in _read_table(path, ";", VIDEO_METADATA_HEADER, exact=True):
        width, height, frames, fps, length_s, kilobytes = (
            _int_at(path, number, key, row[key]) for key in VIDEO_METADATA_HEADER[2:]
        )
        finding = None if row["finding"] in ("", "None") else row["finding"]
        rows.append(VideoMetadata(row["file-name"], finding, width, height, frames, fps, length_s, kilobytes, number))
    return rows


# ---------------------------------------------------------------------------------------------- release
@dataclass(frozen=True)
class Release:
    """A release tree on disk: finds each part, tolerating the documented layout variants.

    ``Release(root)`` accepts the folder that holds ``labeled-images/`` etc., or the single top-level folder
    the full archive extracts to. Parts that are absent are ``None``; :meth:`require` turns that into an
    actionable error.
    """

    root: Path

    def __init__(self, root: str | Path) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(
                f"{root}: not a folder; pass the folder that holds labeled-images/ "
                f"(or create one with `hyperkvasir download {root}`)"
            )
        children = [c for c in root.iterdir() if not is_rogue(Path(c.name))]
        if (
            len(children) == 1
            and children[0].is_dir()
            and (children[0] / "labeled-images").is_dir()
            and within(os.path.realpath(children[0]), os.path.realpath(root))
        ):
            root = children[0]  # the full archive's single top-level folder
        object.__setattr__(self, "root", root)
        if not any(self.part(name) for name in PARTS):
            tree = os.path.realpath(root)
            outside = [c for c in children if c.is_symlink() and not within(os.path.realpath(c), tree)]
            raise DatasetNotFoundError(
                f"{root}: not a HyperKvasir release (no labeled-images/, segmented-images/, unlabeled-images/, "
                f"labeled-videos/ or official_splits/); get it with `hyperkvasir download {root}`"
                + (
                    f" ({outside[0].name} is a link to {os.path.realpath(outside[0])}, outside the tree, and nothing "
                    f"is read through such a link: pass the folder it points at as ROOT)"
                    if outside
                    else ""
                )
            )

    # -- part locations: a folder or file reached through a link that leaves the tree counts as absent
    def inside(self, path: Path) -> bool:
        """Whether ``path``, links resolved, lies in the tree: nothing is read through a link that leaves it."""
        return within(os.path.realpath(path), os.path.realpath(self.root))

    def _dir(self, path: Path) -> Path | None:
        return path if path.is_dir() and self.inside(path) else None

    def _file(self, path: Path) -> Path | None:
        return path if path.is_file() and self.inside(path) else None

    @property
    def labeled_dir(self) -> Path | None:
        return self._dir(self.root / "labeled-images")

    @property
    def image_labels_csv(self) -> Path | None:
        return self._file(self.root / "labeled-images" / "image-labels.csv")

    @property
    def segmented_dir(self) -> Path | None:
        path = self.root / "segmented-images"
        return path if self._dir(path / "images") else None

    @property
    def bounding_boxes_json(self) -> Path | None:
        return self._file(self.root / "segmented-images" / "bounding-boxes.json")

    @property
    def unlabeled_dir(self) -> Path | None:
        # current archives: unlabeled-images/images/; the paper's wording: a subfolder of the image folder
        for path in (self.root / "unlabeled-images" / "images", self.root / "unlabeled-images"):
            if self._dir(path):
                with os.scandir(path) as entries:  # stops at the first image: the folder holds ~100k
                    if any(os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES for e in entries):
                        return path
        return None

    @property
    def videos_dir(self) -> Path | None:
        return self._dir(self.root / "labeled-videos")

    @property
    def video_labels_csv(self) -> Path | None:
        if self.videos_dir is None:
            return None
        found = [p for p in sorted(self.videos_dir.rglob("video-label*.csv")) if self._file(p)]  # or -labeling.csv
        return found[0] if found else None

    @property
    def splits_dir(self) -> Path | None:
        for name in ("official_splits", "splits"):
            path = self.root / name
            if any(self._file(path / f) for f in SPLIT_FILES.values()):
                return path
        return None

    def split_csv(self, k: int) -> Path | None:
        """The official ``k``-fold split CSV (k = 2 or 5) when present."""
        if k not in SPLIT_FILES:
            raise HyperKvasirError(f"no official {k}-fold split; the release has {sorted(SPLIT_FILES)}")
        if self.splits_dir is None:
            return None
        return self._file(self.splits_dir / SPLIT_FILES[k])

    def part(self, name: str) -> Path | None:
        """Folder of a part (one of :data:`PARTS`), or None when absent."""
        return {
            "labeled": lambda: self.labeled_dir,
            "segmented": lambda: self.segmented_dir,
            "unlabeled": lambda: self.unlabeled_dir,
            "videos": lambda: self.videos_dir,
            "splits": lambda: self.splits_dir,
        }[name]()

    def present_parts(self) -> list[str]:
        return [name for name in PARTS if self.part(name) is not None]

    def require(self, name: str) -> Path:
        path = self.part(name)
        if path is None:
            raise DatasetNotFoundError(
                f"{self.root}: the {name} part is missing; get it with "
                f"`hyperkvasir download {self.root} --parts {name}`"
            )
        return path

    # -- file listings (sorted, rogue files skipped)
    def scan(self, part: str, skipped: list[Skipped] | None = None) -> list[tuple[str, os.stat_result]]:
        """(path relative to the root, stat) of every file of a part, by ``os.scandir`` (no Path per file).

        ``part`` is ``labeled``, ``segmented-images``, ``segmented-masks``, ``unlabeled`` or ``videos``. Links that
        stay in the tree are followed (a class folder may be one); links that leave it, point nowhere or loop, and
        entries that are no regular file, are left out and named in ``skipped``.
        """
        where = {
            "labeled": (self.labeled_dir, 4, IMAGE_SUFFIXES),
            "segmented-images": (self.segmented_dir and self.segmented_dir / "images", 1, IMAGE_SUFFIXES),
            "segmented-masks": (self.segmented_dir and self.segmented_dir / "masks", 1, IMAGE_SUFFIXES),
            "unlabeled": (self.unlabeled_dir, 1, IMAGE_SUFFIXES),
            "videos": (self.videos_dir, None, VIDEO_SUFFIXES),
        }
        base, depth, suffixes = where[part]
        if base is None or not self._dir(base):
            return []
        tree = os.path.realpath(self.root)
        above = frozenset(os.path.realpath(p) for p in (base, *base.parents) if within(os.path.realpath(p), tree))
        return sorted(
            _scan(
                str(base),
                str(base.relative_to(self.root)),
                depth,
                suffixes,
                tree,
                [],
                [] if skipped is None else skipped,
                above,
            )
        )

    def skipped(self) -> list[Skipped]:
        """Entries every listing and reader leaves out: links that point nowhere, loop or leave the tree (the
        release's folders and files included), and files that are not regular files."""
        found: list[Skipped] = []
        tree = os.path.realpath(self.root)
        for rel in _RELEASE_ENTRIES:
            path = self.root / rel
            if path.is_symlink():
                target = os.path.realpath(path)
                if not path.exists():
                    found.append(Skipped("broken-link", rel, target))
                elif not within(target, tree):
                    found.append(Skipped("link-outside-tree", rel, target))
        for listing in ("labeled", "segmented-images", "segmented-masks", "unlabeled", "videos"):
            self.scan(listing, found)
        return sorted(set(found), key=lambda s: s.path)

    def labeled_files(self) -> list[Path]:
        """Every image under ``labeled-images/<tract>/<category>/<class>/``."""
        return [self.root / rel for rel, _ in self.scan("labeled")]

    def segmented_pairs(self) -> tuple[list[Path], list[Path]]:
        """(images, masks) under ``segmented-images/`` (either naming: ``cju…`` or UUID)."""
        return (
            [self.root / rel for rel, _ in self.scan("segmented-images")],
            [self.root / rel for rel, _ in self.scan("segmented-masks")],
        )

    def segmented_masks(self) -> dict[str, Path]:
        """Image stem → its mask: a mask pairs with the image of the same file stem (the release's rule)."""
        return {mask.stem: mask for mask in self.segmented_pairs()[1]}

    def unlabeled_files(self) -> list[Path]:
        return [self.root / rel for rel, _ in self.scan("unlabeled")]

    def video_files(self) -> list[Path]:
        return [self.root / rel for rel, _ in self.scan("videos")]


@dataclass(frozen=True)
class Skipped:
    """An entry no listing holds, and why: ``broken-link`` (points nowhere or loops), ``link-outside-tree``,
    ``not-a-file`` (a pipe, socket or device under an image's name) or ``undecodable-name`` (a name that is no
    UTF-8; ``path`` shows its bytes escaped)."""

    code: str
    path: str  # relative to the release root
    target: str  # where the link leads ("" for not-a-file)


# What the release holds at fixed places (relative to the root): a link there that leaves the tree is reported.
_RELEASE_ENTRIES = (
    "labeled-images",
    "labeled-images/image-labels.csv",
    "segmented-images",
    "segmented-images/images",
    "segmented-images/masks",
    "segmented-images/bounding-boxes.json",
    "unlabeled-images",
    "unlabeled-images/images",
    "labeled-videos",
    "official_splits",
    "splits",
    *(f"{folder}/{name}" for folder in ("official_splits", "splits") for name in SPLIT_FILES.values()),
)


def escaped(name: str) -> str:
    """``name`` with the bytes of a file name that are no UTF-8 written as ``\\xff`` (Python carries them as lone
    surrogates, which no UTF-8 writer — Parquet, JSON, a terminal — accepts)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def within(path: str, tree: str) -> bool:
    """Whether the resolved ``path`` is the resolved ``tree`` or lies below it."""
    return path == tree or path.startswith(tree.rstrip(os.sep) + os.sep)


def _scan(
    base: str,
    prefix: str,
    depth: int | None,
    suffixes: frozenset[str],
    tree: str,
    found: list,
    skipped: list,
    ancestors: frozenset[str],
) -> list[tuple[str, os.stat_result]]:
    """Files ``depth`` levels below ``base`` (any depth when None) with a wanted suffix, litter skipped, links
    followed while they stay in ``tree``; what is left out goes to ``skipped``."""
    with os.scandir(base) as entries:
        for entry in entries:
            name = entry.name
            wanted = depth in (None, 1) and name[name.rfind(".") :].lower() in suffixes
            if _rogue_name(name) or not (wanted or depth != 1):
                continue
            rel = f"{prefix}/{name}"
            try:
                info = entry.stat()
            except OSError:  # a dangling or looping link
                skipped.append(Skipped("broken-link", rel, os.path.realpath(entry.path)))
                continue
            descend = depth != 1 and stat.S_ISDIR(info.st_mode)
            if not (descend or wanted):
                continue
            if escaped(name) != name:  # bytes that are no UTF-8: no manifest, CSV or label can hold the name
                skipped.append(Skipped("undecodable-name", escaped(rel), ""))
                continue
            real = os.path.realpath(entry.path) if entry.is_symlink() or descend else ""
            if entry.is_symlink() and not within(real, tree):
                skipped.append(Skipped("link-outside-tree", rel, real))
            elif descend and real in ancestors:  # a folder link back to where the walk came from
                skipped.append(Skipped("broken-link", rel, real))
            elif descend:
                _scan(
                    entry.path,
                    rel,
                    None if depth is None else depth - 1,
                    suffixes,
                    tree,
                    found,
                    skipped,
                    ancestors | {real},
                )
            elif stat.S_ISREG(info.st_mode):
                found.append((rel, info))
            else:
                skipped.append(Skipped("not-a-file", rel, ""))
    return found
