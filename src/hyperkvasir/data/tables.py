"""Strict readers of the release's CSV and JSON tables, and the plain records they return.

Facts and variants come from docs/dataset.md (§1.3 image labels, §2 split files, §1.4 boxes, §1.7/§7 videos).
Readers return plain dataclasses (no torch, no pandas) and reject a malformed file with a one-line
:class:`ReleaseFormatError` naming the file, the line and what is wrong. Split CSVs are joined on the file name,
never on the class name, because the split CSVs use a different naming (taxonomy.py). Where each table lives in
the tree is layout.py's concern.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hyperkvasir.data.layout import VIDEO_SUFFIXES
from hyperkvasir.data.taxonomy import (
    CATEGORIES,
    ClassInfo,
    Tract,
    lookup,
    tract_of_organ,
)
from hyperkvasir.errors import HyperKvasirError, ReleaseFormatError

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
