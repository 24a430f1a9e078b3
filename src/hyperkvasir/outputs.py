"""The one home for files and folders the toolkit writes, and the only code that may delete or replace one.

A single file is written by :func:`atomic_write` (a temp file beside it, renamed into place).

Every multi-file output (an export, predicted masks, a model and its card, report figures, a video's frames) is
written into a staging folder beside its target and renamed into place whole, so an error, a full disk or Ctrl-C
leaves the target as it was. Each such folder carries a marker file naming the command that made it; a folder is
replaced only when it is empty or carries that command's marker, and never when it is, contains or lies inside a
release root, a work dir, or a folder the command reads. Each refusal is one line naming the folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from hyperkvasir.errors import DataError, HyperKvasirError

MARKER = ".hyperkvasir-output.json"
CACHE_DIR = ".hyperkvasir"  # a tree's default work dir, inside the tree
WORK_DIR_VARIABLE = "HYPERKVASIR_WORK_DIR"  # set by `--work-dir`: this tree's work dir itself
HOME_VARIABLE = "HYPERKVASIR_HOME"  # a home for many trees' work dirs, one subfolder per tree


def work_dir(root: str | Path) -> Path:
    """Where the toolkit writes for the tree at ``root`` (manifest, pixel table, caches, downloads): ``--work-dir``,
    else ``$HYPERKVASIR_HOME/<tree>-<hash of its path>``, else ``ROOT/.hyperkvasir``. The first two keep a
    read-only or shared release untouched."""
    explicit = os.environ.get(WORK_DIR_VARIABLE)
    if explicit:
        return Path(explicit)
    home = os.environ.get(HOME_VARIABLE)
    if home:
        home_dir = Path(home).expanduser().absolute()
        if home_dir.exists() and not home_dir.is_dir():
            raise HyperKvasirError(
                f"{HOME_VARIABLE}={home} is a file; point it at a folder (new or existing) or unset it"
            )
        resolved = Path(root).resolve()
        return home_dir / f"{resolved.name}-{hashlib.sha1(str(resolved).encode()).hexdigest()[:10]}"
    return Path(root) / CACHE_DIR


# What makes a folder a release root (or a tree's work dir): any of these entries as a folder.
RELEASE_ENTRIES = (
    "labeled-images",
    "segmented-images",
    "unlabeled-images",
    "labeled-videos",
    "official_splits",
    CACHE_DIR,
)
# Errors of the place written to, not of the data: each becomes one line naming the folder.
_PLACE_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def mark(folder: Path, command: str) -> None:
    """Record that ``command`` made ``folder`` (and may therefore replace it later)."""
    (folder / MARKER).write_text(json.dumps({"created_by": command}) + "\n", encoding="utf-8")


def made_by(folder: Path) -> str | None:
    """The command whose marker ``folder`` carries, or None (no marker, or one that does not read)."""
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8")).get("created_by")
    except (OSError, ValueError, AttributeError):
        return None


def is_release_root(folder: Path) -> bool:
    return any((folder / entry).is_dir() for entry in RELEASE_ENTRIES)


def protected_folders(*roots: str | Path) -> list[Path]:
    """The folders no output may replace: each root a command reads, its work dir, and the work dirs the
    environment names (``--work-dir`` / ``HYPERKVASIR_HOME``)."""
    folders = [Path(r) for r in roots] + [work_dir(r) for r in roots]
    folders += [Path(os.environ[v]) for v in (WORK_DIR_VARIABLE, HOME_VARIABLE) if os.environ.get(v)]
    return folders


def _nested_release_root(folder: Path) -> Path | None:
    """A release root or work dir strictly below ``folder`` (links are not followed, as a delete would not)."""
    for parent, dirs, _ in os.walk(folder):
        if Path(parent) != folder and any(name in RELEASE_ENTRIES for name in dirs):
            return Path(parent)
        if Path(parent) == folder:
            dirs[:] = [name for name in dirs if name not in RELEASE_ENTRIES]  # the folder's own release parts
    return None


def refuse_replacing(
    folder: Path, command: str, option: str, *, reads: Iterable[str | Path] = (), owner: Path | None = None
) -> None:
    """Raise unless ``command`` may delete ``folder``: see the module docstring. A missing or empty folder
    is always fine. ``owner`` is the folder whose marker counts (default ``folder``): the demo marks its
    ``--out`` once and so owns the folders its steps make there."""
    if folder.is_symlink():
        raise HyperKvasirError(f"{option} {folder} is a link; give a real folder (the link is not replaced)")
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    resolved = folder.resolve()
    for kept in protected_folders(*reads):
        kept = kept.resolve()
        if resolved == kept or kept in resolved.parents or resolved in kept.parents:
            raise HyperKvasirError(
                f"{option} {folder}: {'is' if resolved == kept else 'overlaps'} {kept}, which "
                f"this command reads or keeps its work in; nothing was deleted, choose another "
                f"folder"
            )
    outer = next((p for p in resolved.parents if is_release_root(p)), None)
    if outer is not None:
        raise HyperKvasirError(
            f"{option} {folder} lies inside the release root {outer}; nothing was deleted, "
            f"choose a folder outside the release"
        )
    owner = made_by(owner or folder)
    if is_release_root(folder) and owner != command:
        raise HyperKvasirError(f"{option} {folder} is a release root; nothing was deleted, choose another folder")
    if owner != command:
        made = f"was made by `hyperkvasir {owner}`" if owner else "holds files the toolkit did not create"
        raise HyperKvasirError(
            f"{option} {folder} {made} (no {MARKER} of `hyperkvasir {command}`); nothing was "
            f"deleted, empty it yourself or choose another folder"
        )
    nested = _nested_release_root(folder)  # walked last: only a folder the command made is walked
    if nested is not None:
        raise HyperKvasirError(
            f"{option} {folder} holds the release root or work dir {nested}; nothing was deleted, choose another folder"
        )


def remove_folder(folder: Path, command: str, option: str, *, owner: Path | None = None) -> None:
    """Delete a folder ``command`` made earlier (checked by :func:`refuse_replacing` first)."""
    refuse_replacing(folder, command, option, owner=owner)
    if folder.is_dir():
        shutil.rmtree(folder)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Write to a temp file beside ``path`` and rename it into place, so a reader never sees half a file. The
    file gets the permissions any tool would give it under the umask (temp files start private)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError) and not error.filename:  # a failed write names no file: name the target
            error.filename = str(target)
        raise


def _swap_in(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; a previous ``target`` is renamed aside first and deleted after."""
    if not target.exists():
        os.replace(staging, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, aside / "old")
    os.replace(staging, target)
    shutil.rmtree(aside, ignore_errors=True)


def promote(staging: Path, target: Path, command: str, option: str, *, reads: Iterable[str | Path] = ()) -> None:
    """Give a finished ``staging`` folder ``command``'s marker and put it in place of ``target`` (checked again:
    another run may have put something there meanwhile)."""
    mark(staging, command)
    refuse_replacing(target, command, option, reads=reads)
    _swap_in(staging, target)


@contextlib.contextmanager
def exclusive(folder: Path, command: str, option: str) -> Iterator[None]:
    """Hold ``folder`` (created if new) for one run of ``command`` at a time, by a lock file in it: two runs
    writing the same folder would rename each other's work away."""
    import filelock

    folder.mkdir(parents=True, exist_ok=True)
    try:
        with filelock.FileLock(folder / ".hyperkvasir.lock", timeout=0):
            yield
    except filelock.Timeout:
        raise HyperKvasirError(
            f"{option} {folder}: another `hyperkvasir {command}` is writing there; wait for it "
            f"to finish or choose another folder"
        ) from None


def _reraise_place_error(error: OSError, folder: Path, option: str) -> None:
    """Raise an error of the place written to (full disk, read-only, no permission) as one line naming
    ``folder``; re-raise anything else as it is."""
    reason = _PLACE_ERRORS.get(error.errno)
    if reason is None:
        raise error
    raise DataError(f"{option} {folder}: {reason}; nothing was kept, free space or choose another folder") from None


def _refuse_filled(target: Path, option: str, overwrite: bool) -> None:
    if not overwrite and target.is_dir() and any(target.iterdir()):
        raise HyperKvasirError(f"{option} {target}: exists and is not empty; pass --overwrite or choose another folder")


def _release_part_above(target: Path) -> Path | None:
    """The release folder (``labeled-images/`` …, ``.hyperkvasir/``) that ``target`` would lie inside, if any."""
    for folder in target.resolve().parents:
        if folder.name in RELEASE_ENTRIES and is_release_root(folder.parent):
            return folder
    return None


@contextlib.contextmanager
def staged_folder(
    target: str | Path, command: str, *, option: str = "--out", overwrite: bool = True, reads: Iterable[str | Path] = ()
) -> Iterator[Path]:
    """Yield a staging folder beside ``target``; on success it gets ``command``'s marker and replaces ``target``
    whole, on any error or interrupt it is removed. ``overwrite=False`` refuses a non-empty ``target`` outright
    (the caller's ``--overwrite`` is named); ``reads`` are the release roots the command reads (they and their
    work dirs are never replaced)."""
    target, reads = Path(target), list(reads)
    _refuse_filled(target, option, overwrite)
    refuse_replacing(target, command, option, reads=reads)
    part = _release_part_above(target)
    if part is not None:  # a new (or empty) folder there: nothing to replace, but still no place for an output
        raise HyperKvasirError(
            f"{option} {target} lies inside {part}, a folder of the release; outputs never go "
            f"into the release's own folders (the index would take them for release files) — "
            f"choose a folder outside them"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as error:
        _reraise_place_error(error, target, option)
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())  # a temp folder starts private; the output should not
        _refuse_filled(target, option, overwrite)  # another run may have filled it meanwhile
        promote(staging, target, command, option, reads=reads)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        _reraise_place_error(error, target, option)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
