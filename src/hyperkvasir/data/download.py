"""Fetch the release safely: the parts ladder (present → archive → download), verified and recorded.

Archives come from the current official location (datasets.simula.no/downloads/hyper-kvasir/, since
2022-03-02), then the older locations as fallbacks; the split CSVs and the video metadata come from the
official repository simula/hyper-kvasir (dataset.md §5); each file by :mod:`hyperkvasir.data.fetch`
(resumable, HTTPS unless allowed). SHA-256 is computed while downloading and compared with the hashes seen for
each archive (no official ones exist and the archives were re-packed in 2022, so an unknown hash is a warning,
an error only when ``strict``); every observed hash goes to ``ROOT/.hyperkvasir/downloads.json``. An archive
found on disk is extracted only when its hash is known, the toolkit downloaded it, or the user vouches for it;
extraction itself, checked and atomic per archive, is :mod:`hyperkvasir.data.extract`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import filelock

from hyperkvasir.data.extract import extract
from hyperkvasir.data.fetch import DownloadError, fetch, require_https, ssl_context
from hyperkvasir.data.layout import Release
from hyperkvasir.errors import DatasetNotFoundError, HyperKvasirError
from hyperkvasir.outputs import atomic_write, work_dir

log = logging.getLogger(__name__)

BASE_URLS = (
    "https://datasets.simula.no/downloads/hyper-kvasir/",  # current (since 2022-03-02)
    "https://datasets.simula.no/hyper-kvasir/downloads/",  # older, reported 404 since
    "https://datasets.simula.no/hyper-kvasir/",  # oldest
)
REPOSITORY_URL = "https://raw.githubusercontent.com/simula/hyper-kvasir/master/"


@dataclass(frozen=True)
class Archive:
    part: str
    name: str
    folder: str  # top-level folder it extracts to
    listed_bytes: int  # size listed on the dataset page, for the disk-space estimate


ARCHIVES = {
    a.part: a
    for a in (
        Archive("labeled", "hyper-kvasir-labeled-images.zip", "labeled-images", 3_900_000_000),
        Archive("segmented", "hyper-kvasir-segmented-images.zip", "segmented-images", 46_179_365),
        Archive("unlabeled", "hyper-kvasir-unlabeled-images.zip", "unlabeled-images", 29_400_000_000),
        Archive("videos", "hyper-kvasir-videos.zip", "labeled-videos", 25_200_000_000),
    )
}
# Official files that are not archives: (relative URL in the repository, path under ROOT)
REPOSITORY_FILES = {
    "splits": (
        ("official_splits/2_fold_split.csv", "official_splits/2_fold_split.csv"),
        ("official_splits/5_fold_split.csv", "official_splits/5_fold_split.csv"),
        ("hyper-kvasir-video-metadata.csv", "hyper-kvasir-video-metadata.csv"),
    )
}
PARTS = (*ARCHIVES, "splits")
# SHA-256 seen for the archives in third-party records (dataset.md §5); several per archive are expected.
KNOWN_SHA256: dict[str, set[str]] = {
    "hyper-kvasir-segmented-images.zip": {"4463011f991dcdc74ec56399788b1a93822593f17ed18a662bdeb7392ffcdd9a"},
    "hyper-kvasir-labeled-images.zip": {"c603449b1bc0be86948b11d9aea8b2002058a11e6f5499e2a384b9ae9c8dbd3f"},
}


def _downloads_dir(root: Path) -> Path:
    return work_dir(root) / "downloads"


def _records(root: Path) -> dict:
    """What ``downloads.json`` says the toolkit fetched; a damaged record vouches for nothing."""
    path = work_dir(root) / "downloads.json"
    try:
        records = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def _record(root: Path, name: str, entry: dict) -> None:
    records = _records(root)
    records[name] = entry
    with atomic_write(work_dir(root) / "downloads.json", "w") as handle:
        json.dump(records, handle, indent=2)


@contextlib.contextmanager
def _one_at_a_time(root: Path) -> Iterator[None]:
    """One download or extraction into a tree at a time: two would append to one part file and empty each other's
    staging folder; the second waits, then finds the part in place."""
    work_dir(root).mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(work_dir(root) / "download.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.warning("%s: another download into this tree is running; waiting for it to finish", root)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _require_trusted(root: Path, path: Path, archive: Archive) -> None:
    """An archive the toolkit did not fetch is extracted only when its hash is one seen for it: anything could
    have put it there."""
    with open(path, "rb") as handle:
        sha = hashlib.file_digest(handle, "sha256").hexdigest()
    recorded = _records(root).get(archive.name)
    if sha in KNOWN_SHA256.get(archive.name, set()) or (isinstance(recorded, dict) and recorded.get("sha256") == sha):
        return
    raise DownloadError(
        f"{path}: SHA-256 {sha} is not a known hash of {archive.name} and the toolkit did not "
        f"download it, so it is not extracted unasked; if you trust where it came from, run "
        f"`hyperkvasir download {root} --parts {archive.part} --trust-archive`"
    )


def download(
    root: str | Path,
    parts: tuple[str, ...] = PARTS,
    *,
    base_url: str | None = None,
    extract_archives: bool = True,
    strict: bool = False,
    ca_bundle: str | Path | None = None,
    free_bytes: int | None = None,
    progress: Callable[[str], Callable[[int, int], None]] | None = None,
    retries: int = 4,
    backoff: float = 0.5,
    allow_http: bool = False,
    trust_archive: bool = False,
) -> dict[str, str]:
    """Fetch ``parts`` into ``root`` (the torchvision/torchgeo ladder: present → archive → download).

    ``base_url`` replaces every official location (mirrors, tests): archives at ``BASE/<archive>``, the
    official files at ``BASE/<path in the repository>``; a plain ``http://`` one needs ``allow_http``. An archive
    found on disk is extracted only when its hash is known, the toolkit downloaded it, or ``trust_archive``.
    Returns part → what was done.
    """
    root = Path(root)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:  # before anything is created
        raise HyperKvasirError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if base_url:
        require_https(base_url, allow_http)
    root.mkdir(parents=True, exist_ok=True)
    fetching = {"context": ssl_context(ca_bundle), "retries": retries, "backoff": backoff, "allow_http": allow_http}
    with _one_at_a_time(root):
        return {
            part: _get_part(
                root,
                part,
                base_url,
                fetching,
                extract_archives=extract_archives,
                strict=strict,
                trust_archive=trust_archive,
                free_bytes=free_bytes,
                progress=progress,
            )
            for part in parts
        }


def _get_part(
    root: Path,
    part: str,
    base_url: str | None,
    fetching: dict,
    *,
    extract_archives: bool,
    strict: bool,
    trust_archive: bool,
    free_bytes: int | None,
    progress,
) -> str:
    """One part up the ladder (present → archive → download, then extract); returns what was done."""
    if part == "splits":
        for remote, local in REPOSITORY_FILES["splits"]:
            if not (root / local).is_file():
                _fetch_first([(base_url or REPOSITORY_URL).rstrip("/") + "/" + remote], root / local, **fetching)
        return "official files present"
    archive = ARCHIVES[part]
    if (root / archive.folder).is_dir():
        return "already extracted"
    target = root / archive.name
    if not target.is_file():
        target = _downloads_dir(root) / archive.name
    if not target.is_file():
        urls = [b.rstrip("/") + "/" + archive.name for b in ([base_url] if base_url else BASE_URLS)]
        sha, url = _fetch_first(urls, target, progress=progress(archive.name) if progress else None, **fetching)
        known = sha in KNOWN_SHA256.get(archive.name, set())
        _record(
            root,
            archive.name,
            {
                "url": url,
                "sha256": sha,
                "bytes": target.stat().st_size,
                "known_hash": known,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        if not known:
            message = (
                f"{archive.name}: SHA-256 {sha} is not among the hashes seen for this archive "
                "(archives were re-packed before); recorded in .hyperkvasir/downloads.json"
            )
            if strict:
                raise DownloadError(message + "; without --strict this is a warning")
            log.warning(message)
        done = "downloaded"
    else:
        if extract_archives and not trust_archive:
            _require_trusted(root, target, archive)
        done = "archive present"
    if extract_archives:
        extract(target, root, free_bytes=free_bytes)
        done += ", extracted"
    return done


def _fetch_first(urls: list[str], target: Path, **fetching) -> tuple[str, str]:
    tried = []
    for url in urls:
        try:
            return fetch(url, target, **fetching), url
        except FileNotFoundError:
            tried.append(url)
            log.warning("%s: not found (404); trying the next location", url)
    raise DownloadError(f"{target.name}: not found at {', '.join(tried)}; pass --base-url for a mirror")


def ensure_parts(
    root: str | Path, parts: tuple[str, ...], *, download_missing: bool = False, trust_archive: bool = False, **options
) -> Release:
    """The dataset ladder: extracted tree present → archive present (extract, when its hash is known, the
    toolkit downloaded it or ``trust_archive``) → download allowed → error."""
    root = Path(root)
    missing = []
    for part in parts:
        if _present(root, part):
            continue
        archive = ARCHIVES.get(part)
        places = (root / archive.name, _downloads_dir(root) / archive.name) if archive else ()
        local = [p for p in places if p.is_file()]
        if archive is not None and local:
            with _one_at_a_time(root):
                if not _present(root, part):  # another run may have extracted it meanwhile
                    if not trust_archive:
                        _require_trusted(root, local[0], archive)
                    extract(local[0], root)
        elif download_missing:
            download(root, (part,), trust_archive=trust_archive, **options)
        else:
            missing.append(part)
    if missing:
        raise DatasetNotFoundError(
            f"{root}: {', '.join(missing)} not found; run `hyperkvasir download {root} --parts {','.join(missing)}` "
            "or pass download=True"
        )
    return Release(root)


def _present(root: Path, part: str) -> bool:
    """Whether the part is extracted in ``root``."""
    try:
        return Release(root).part(part) is not None
    except DatasetNotFoundError:  # an empty folder, or one holding only archives
        return False
