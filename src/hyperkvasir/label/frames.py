"""Video frames as an embeddable part: the JPEG frames ``hyperkvasir video frames ROOT DIR`` extracted, read
through its ``DIR/frames.parquet``. Each frame is named by its video (relative to the release root) and its frame
index, e.g. ``labeled-videos/lower-gi-tract/…/x.avi#frame=000120``: `similar` then answers with a video and a
moment of the release, whatever folder the frames were extracted to (``image_of`` gives the JPEG).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hyperkvasir.errors import DataError, HyperKvasirError

MARK = "#frame="
MANIFEST = "frames.parquet"


def frame_name(video: str, index: int) -> str:
    """The name of frame ``index`` (decoded order, from 0) of ``video`` (a path relative to the release root)."""
    return f"{video}{MARK}{index:06d}"


def is_frame_name(name: str) -> bool:
    return MARK in name


@dataclass(frozen=True)
class Frames:
    """The frames of one ``video frames`` folder that belong to the tree: names and their JPEG files."""

    folder: Path
    names: list[str]
    files: list[Path]

    def key_rows(self) -> list[tuple[str, str]]:
        """(name, size and modification time of its file) per frame: a re-extracted folder is a new embedding
        key without reading every JPEG (``video frames`` renames a video's frames into place whole)."""
        rows = []
        for name, file in zip(self.names, self.files):
            try:
                stat = file.stat()
                rows.append((name, f"{stat.st_size}:{stat.st_mtime_ns}"))
            except OSError:
                rows.append((name, "missing"))
        return sorted(rows)

    def image_of(self) -> dict[str, str]:
        return {name: str(file) for name, file in zip(self.names, self.files)}


def read_frames(folder: str | Path, root: str | Path, videos: set[str]) -> Frames:
    """The frames listed in ``folder/frames.parquet``, each of a video of the tree (``videos``: their paths
    relative to ``root``) and inside ``folder`` (a listed path leaving it, or a link out of it, is refused)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    listing = folder / MANIFEST
    if not listing.is_file():
        raise HyperKvasirError(
            f"--frames {folder}: no {MANIFEST}; extract the frames first with `hyperkvasir video "
            f"frames {root} {folder}`"
        )
    try:
        table = pq.read_table(listing, columns=["video", "frame_index", "path"]).to_pylist()
    except (OSError, pa.ArrowException, KeyError) as error:
        raise DataError(
            f"{listing}: not a frames listing of `hyperkvasir video frames` ({error}); extract the "
            f"frames again into an empty folder"
        ) from None
    if not table:
        raise DataError(
            f"{listing}: lists no frame; extract the frames again with `hyperkvasir video frames {root} {folder}`"
        )
    stranger = next((row["video"] for row in table if row["video"] not in videos), None)
    if stranger is not None:
        raise DataError(
            f"--frames {folder}: holds frames of {stranger}, which is not a video of {root}; give the "
            f"frames folder extracted from this tree"
        )
    inside = os.path.realpath(folder)
    names, files = [], []
    for row in table:
        file = folder / row["path"]
        if os.path.commonpath([os.path.realpath(file), inside]) != inside:
            raise DataError(
                f"{listing}: the frame {row['path']} lies outside {folder} (a link or a path leaving "
                f"it); extract the frames again into an empty folder"
            )
        names.append(frame_name(row["video"], int(row["frame_index"])))
        files.append(file)
    return Frames(folder, names, files)
