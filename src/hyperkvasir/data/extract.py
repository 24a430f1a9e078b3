"""Safe extraction of a release archive: every entry checked before anything is written, then an atomic move.

Refused, naming the entry: absolute paths, ``..``, links (even ones that stay inside: they can be chained to
climb out), devices, pipes, duplicate names, entries below a file, and archive bombs (too many entries, too many
bytes, too high a ratio). Disk space is checked first; entries go to a staging folder beside the target and are
renamed into place only when all are out and no name is taken.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hyperkvasir.data.fetch import DownloadError
from hyperkvasir.outputs import CACHE_DIR

MAX_RATIO = 200  # uncompressed / compressed beyond this is treated as an archive bomb
MAX_UNCOMPRESSED = 80 * 10**9  # no HyperKvasir archive unpacks to more
MAX_MEMBERS = 250_000  # the largest archive (unlabeled) holds about 100,000 files


@dataclass(frozen=True)
class Member:
    """An entry of an archive: its name, uncompressed size and kind (file, folder, link or other)."""

    name: str
    size: int
    kind: str


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "link"
    if info.is_dir() or stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_IFMT(mode) in (0, stat.S_IFREG) else "other"  # 0: made on DOS/Windows, no type


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.issym() or member.islnk():
        return "link"
    return "folder" if member.isdir() else "file" if member.isreg() else "other"


def _members(archive: Path) -> list[Member]:
    """Every entry of a zip or tar archive, read from its directory (nothing is extracted)."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                return [Member(i.filename, i.file_size, _zip_kind(i)) for i in handle.infolist()]
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as handle:
                return [Member(m.name, m.size, _tar_kind(m)) for m in handle.getmembers()]
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as error:
        raise DownloadError(f"{archive}: damaged archive ({error}); delete it and download again") from None
    raise DownloadError(f"{archive}: neither a zip nor a tar archive; delete it and download again")


def _check_members(archive: Path, members: list[Member]) -> int:
    """Refuse, naming the entry, anything but plain files and folders inside the extraction folder (the release's
    archives hold no links: a link, even one that stays inside, can be chained to climb out); return the
    uncompressed total."""
    if len(members) > MAX_MEMBERS:
        raise DownloadError(
            f"{archive}: refused: {len(members):,} entries, no release archive holds more than "
            f"{MAX_MEMBERS:,}; looks like an archive bomb"
        )
    seen: set[tuple[str, ...]] = set()
    files: set[tuple[str, ...]] = set()
    for member in members:
        name = member.name
        path = PurePosixPath(name.replace("\\", "/"))
        if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
            raise DownloadError(f"{archive}: refused: entry {name!r} has an absolute path")
        if ".." in path.parts:
            raise DownloadError(f"{archive}: refused: entry {name!r} climbs out with '..'")
        if member.kind == "link":
            raise DownloadError(
                f"{archive}: refused: entry {name!r} is a link; release archives hold only files and folders"
            )
        if member.kind == "other":
            raise DownloadError(f"{archive}: refused: entry {name!r} is a device, pipe or socket, not a file")
        if path.parts in seen:
            raise DownloadError(f"{archive}: refused: entry {name!r} appears twice; which copy is right is unknown")
        below = next((path.parts[:n] for n in range(1, len(path.parts)) if path.parts[:n] in files), None)
        if below is not None:
            raise DownloadError(f"{archive}: refused: entry {name!r} lies below the file {'/'.join(below)!r}")
        seen.add(path.parts)
        if member.kind == "file":
            files.add(path.parts)
    total = sum(member.size for member in members)
    compressed = max(archive.stat().st_size, 1)
    if total > MAX_UNCOMPRESSED or total / compressed > MAX_RATIO:
        raise DownloadError(
            f"{archive}: refused: {total:,} bytes uncompressed from {compressed:,} "
            f"(ratio {total / compressed:.0f}); looks like an archive bomb"
        )
    return total


def extract(archive: Path, root: Path, *, free_bytes: int | None = None) -> list[Path]:
    """Extract safely into ``root``: checked entries, disk space first, atomic per archive (a staging folder beside
    the target, renamed into place only when every entry is out and no name is taken)."""
    needed = _check_members(archive, _members(archive))
    free = shutil.disk_usage(root).free if free_bytes is None else free_bytes
    if needed > free:
        raise DownloadError(
            f"{archive}: needs {needed / 1e9:.2f} GB to extract, {free / 1e9:.2f} GB free "
            f"under {root}; free space or choose another ROOT"
        )
    staging = root / CACHE_DIR / f"extract-{archive.stem}.tmp"  # beside its target: the rename stays on one disk
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _unpack(archive, staging, root)
        entries = [e for e in sorted(staging.iterdir()) if e.name != "__MACOSX"]
        taken = [root / e.name for e in entries if os.path.lexists(root / e.name)]
        if taken:
            raise DownloadError(f"{taken[0]}: already exists; remove it to extract {archive.name} again")
        for entry in entries:
            os.replace(entry, root / entry.name)
        return [root / e.name for e in entries]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(archive: Path, staging: Path, root: Path) -> None:
    """Every (checked) entry into ``staging``; a damaged archive or a full disk is one line, not a traceback."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                handle.extractall(staging)
        else:
            with tarfile.open(archive) as handle:
                handle.extractall(staging, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as error:
        raise DownloadError(f"{archive}: damaged archive ({error}); delete it and download again") from None
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DownloadError(
                f"{archive}: cannot extract under {root} ({error.strerror}); free space or choose another ROOT"
            ) from None
        entry = os.path.relpath(error.filename, staging) if error.filename else "an entry"
        raise DownloadError(
            f"{archive}: cannot extract {entry} ({error.strerror or error}); the archive does not "
            "hold the release as released: delete it and download again"
        ) from None
