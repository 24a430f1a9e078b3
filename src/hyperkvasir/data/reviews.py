"""``reviews.csv``: an expert's decisions on labels (keep, relabel, exclude, skip), as ``hyperkvasir review``
writes them and ``train``/``benchmark --reviews`` apply them.

One row per decision: ``file`` (path relative to the release root), ``old`` (the label the reviewer saw),
``new`` (the class decided; empty for exclude and skip), ``decision``, ``time`` (UTC, ISO 8601), ``reviewer``.
Rows are only ever appended; a file's latest keep/relabel/exclude is its decision (skip decides nothing). The
release itself is never modified: a relabel changes the label a run trains and validates on, and the test label
only when the run says so (``--reviews-on-test``).
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hyperkvasir.data.taxonomy import lookup
from hyperkvasir.errors import DataError, HyperKvasirError, ReleaseFormatError, UnknownClassError

REVIEWS_NAME = "reviews.csv"
REVIEW_COLUMNS = ("file", "old", "new", "decision", "time", "reviewer")
DECISIONS = ("keep", "relabel", "exclude", "skip")
DECIDING = {"keep": "kept", "relabel": "relabeled", "exclude": "excluded"}  # decision → its count in provenance
APPLIED_PARTS = ("train", "val")  # test labels stay as released unless the run asks otherwise


@dataclass(frozen=True)
class Review:
    file: str
    old: str
    new: str
    decision: str
    time: str
    reviewer: str
    line: int = 0  # where it stands in the file (for the one-line refusals)


def review_row(file: str, old: str | None, decision: str, new: str | None, reviewer: str) -> Review:
    """A checked decision, stamped now: relabel needs a class (any of its names; stored as its folder name), keep
    repeats the old label, exclude and skip carry none."""
    if decision not in DECISIONS:
        raise HyperKvasirError(f"unknown decision {decision!r}; choose one of {', '.join(DECISIONS)}")
    if decision == "relabel":
        if not new:
            raise HyperKvasirError(f"{file}: relabel needs the new class")
        new = lookup(new).folder
    else:
        new = (old or "") if decision == "keep" else ""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    return Review(file=file, old=old or "", new=new, decision=decision, time=stamp, reviewer=reviewer)


def append_review(path: Path, review: Review) -> None:
    """Append one row under an exclusive lock and fsync it: two reviewers (or two tabs) never interleave a line, a
    crash loses at most the row being written, and a write that fails (a full disk) is cut back off."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = _whole_rows(fd)
        if size == 0:
            writer.writerow(REVIEW_COLUMNS)
        writer.writerow([getattr(review, column) for column in REVIEW_COLUMNS])
        data = buffer.getvalue().encode()
        try:
            if os.write(fd, data) != len(data):  # a nearly full disk takes part of the row without an error
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)  # never leave half a row for the next reader
            raise
    finally:
        os.close(fd)


def _whole_rows(fd: int) -> int:
    """The size of the file's whole rows, a row cut short by a killed writer cut off (it was never acknowledged;
    left, the next row would be glued to it)."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        size = os.pread(fd, size, 0).rfind(b"\n") + 1
        os.ftruncate(fd, size)
    return size


def read_reviews(path: str | Path) -> list[Review]:
    """Every row of a reviews file, checked: the columns, a known decision, a class for relabel."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a file saved again by a spreadsheet starts with a BOM
    except FileNotFoundError:
        raise HyperKvasirError(
            f"{path}: no such reviews file; `hyperkvasir review ROOT` writes one in the work dir"
        ) from None
    except IsADirectoryError:
        raise HyperKvasirError(f"{path} is a folder; give the reviews.csv file") from None
    except UnicodeDecodeError:
        raise ReleaseFormatError(path, "not a UTF-8 CSV; give a reviews.csv written by `hyperkvasir review`") from None
    if not text:  # created, but its first row never made it to the disk (full): no decision yet
        return []
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("file", "old", "new", "decision") if c not in (reader.fieldnames or ())]
    if missing:
        raise ReleaseFormatError(
            path, f"no {', '.join(missing)} column; a reviews file has the columns {','.join(REVIEW_COLUMNS)}", line=1
        )
    return [_checked(path, reader.line_num, row) for row in reader]


def _checked(path: Path, line: int, row: dict) -> Review:
    if None in row or any(row.get(c) is None for c in ("file", "old", "new", "decision")):
        raise ReleaseFormatError(path, "a row with another number of cells than the header", line=line)
    if row["decision"] not in DECISIONS:
        raise ReleaseFormatError(
            path, f"unknown decision {row['decision']!r}; one of {', '.join(DECISIONS)}", line=line
        )
    if not row["file"].strip():
        raise ReleaseFormatError(path, "a row without a file", line=line)
    for column in ("old", "new") if row["decision"] == "relabel" else ():
        try:
            lookup(row[column])
        except UnknownClassError as error:
            raise ReleaseFormatError(path, f"{column}: {error}", line=line) from None
    return Review(**{c: row.get(c) or "" for c in REVIEW_COLUMNS}, line=line)


def decided(reviews: list[Review]) -> dict[str, Review]:
    """Each file's latest decision that decides something (keep, relabel, exclude): a later row overrides an
    earlier one, a skip overrides nothing."""
    latest: dict[str, Review] = {}
    for review in reviews:
        if review.decision != "skip":
            latest[review.file] = review
    return latest


def apply_reviews(
    path: str | Path,
    root: str | Path,
    subsets: dict[str, list[str]],
    manifest: list[dict],
    *,
    on_test: bool = False,
    sha256: str | None = None,
) -> tuple[dict[str, dict[str, int]], dict]:
    """Apply a reviews file to a fold's ``subsets`` (file names; excluded names are removed in place): the
    relabels of each part (name → class index) and the record of what was applied, for the run's provenance.

    Only ``train`` and ``val`` change unless ``on_test``. A decision made on another label than the tree's (the
    tree changed since the review) or on a file the tree lacks stops the run: applied blindly, it would train on
    a label nobody chose; so does a file whose content is no longer ``sha256`` (the hash the run was started with:
    a resumed run or a benchmark's next fold would otherwise train on other decisions than its first)."""
    from hyperkvasir.data.imaging import sha256_file

    path = Path(path)
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256:
        raise DataError(
            f"{path}: the reviews file changed since this run started (SHA-256 {digest[:12]}…, was "
            f"{sha256[:12]}…); restore it, or start a new run (--out elsewhere, or benchmark --force)"
        )
    reviews = read_reviews(path)
    rows = {r["path"]: r for r in manifest}
    parts = (*APPLIED_PARTS, "test") if on_test else APPLIED_PARTS
    where = {name: part for part in parts for name in subsets.get(part, [])}
    relabels: dict[str, dict[str, int]] = {part: {} for part in subsets}
    counts = {decision: dict.fromkeys(subsets, 0) for decision in DECIDING}
    not_labeled = 0
    for review in decided(reviews).values():
        row = rows.get(review.file)
        if row is None:
            raise DataError(
                f"{path}:{review.line}: {review.file} is not in the tree {root}; give "
                "the reviews of this tree, or remove the row"
            )
        if row["part"] != "labeled":  # an unlabeled or segmented image reviewed from the to-label queue
            not_labeled += 1
            continue
        _require_same_label(path, review, row)
        name = Path(review.file).name
        part = where.get(name)
        if part is None:  # in a part the run leaves as released (test), or outside this fold's split
            continue
        counts[review.decision][part] += 1
        if review.decision == "relabel":
            relabels[part][name] = lookup(review.new).index
        elif review.decision == "exclude":
            subsets[part].remove(name)
    record = {
        "file": str(path),
        "sha256": digest,
        "rows": len(reviews),
        "on_test": on_test,
        "test_labels": "reviewed" if on_test else "as released",
        **{DECIDING[decision]: count for decision, count in counts.items()},
        "not_labeled": not_labeled,
    }
    return relabels, record


def _require_same_label(path: Path, review: Review, row: dict) -> None:
    if review.decision == "exclude" or not review.old:
        return
    current = lookup(row["class"]).folder
    try:
        seen = lookup(review.old).folder
    except UnknownClassError as error:
        raise ReleaseFormatError(path, f"old: {error}", line=review.line) from None
    if seen != current:
        raise DataError(
            f"{path}:{review.line}: {review.file} was reviewed as {seen} but the tree files it under "
            f"{current}; review it again or remove the row"
        )


__all__ = [
    "REVIEWS_NAME",
    "REVIEW_COLUMNS",
    "DECISIONS",
    "Review",
    "review_row",
    "append_review",
    "read_reviews",
    "decided",
    "apply_reviews",
]
