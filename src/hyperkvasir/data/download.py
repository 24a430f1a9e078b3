"""Fetch the release safely: resumable, verified download and extraction that cannot be abused.

Archives come from the current official location (datasets.simula.no/downloads/hyper-kvasir/, since
2022-03-02), then the older locations as fallbacks; the split CSVs and the video metadata come from the
official repository simula/hyper-kvasir (dataset.md §5). A partial download continues with an HTTP range
request; a server that refuses ranges gets a clean restart. SHA-256 is computed while downloading and compared
with the hashes seen for each archive (no official ones exist and the archives were re-packed in 2022, so an
unknown hash is a warning, an error only when ``strict``); every observed hash goes to
``ROOT/.hyperkvasir/downloads.json``. Extraction refuses absolute paths, ``..``, links and archive bombs, checks
disk space first and is atomic per archive (a temp folder, then a rename).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import ssl
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hyperkvasir.data.imaging import atomic_write
from hyperkvasir.data.index import CACHE_DIR, work_dir
from hyperkvasir.data.layout import Release
from hyperkvasir.errors import DatasetNotFoundError, HyperKvasirError

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


ARCHIVES = {a.part: a for a in (
    Archive("labeled", "hyper-kvasir-labeled-images.zip", "labeled-images", 3_900_000_000),
    Archive("segmented", "hyper-kvasir-segmented-images.zip", "segmented-images", 46_179_365),
    Archive("unlabeled", "hyper-kvasir-unlabeled-images.zip", "unlabeled-images", 29_400_000_000),
    Archive("videos", "hyper-kvasir-videos.zip", "labeled-videos", 25_200_000_000),
)}
# Official files that are not archives: (relative URL in the repository, path under ROOT)
REPOSITORY_FILES = {"splits": (("official_splits/2_fold_split.csv", "official_splits/2_fold_split.csv"),
                               ("official_splits/5_fold_split.csv", "official_splits/5_fold_split.csv"),
                               ("hyper-kvasir-video-metadata.csv", "hyper-kvasir-video-metadata.csv"))}
PARTS = (*ARCHIVES, "splits")
# SHA-256 seen for the archives in third-party records (dataset.md §5); several per archive are expected.
KNOWN_SHA256: dict[str, set[str]] = {
    "hyper-kvasir-segmented-images.zip": {"4463011f991dcdc74ec56399788b1a93822593f17ed18a662bdeb7392ffcdd9a"},
    "hyper-kvasir-labeled-images.zip": {"c603449b1bc0be86948b11d9aea8b2002058a11e6f5499e2a384b9ae9c8dbd3f"},
}
MAX_RATIO = 200  # uncompressed / compressed beyond this is treated as an archive bomb
MAX_UNCOMPRESSED = 80 * 10**9  # no HyperKvasir archive unpacks to more
_TRANSIENT = (ConnectionError, TimeoutError, socket.timeout, http.client.IncompleteRead,
              http.client.RemoteDisconnected)


class DownloadError(HyperKvasirError):
    exit_code = 1


def _downloads_dir(root: Path) -> Path:
    return work_dir(root) / "downloads"


def _context(ca_bundle: str | Path | None) -> ssl.SSLContext:
    """Certificate verification stays on; a CA bundle can be added for hosts with incomplete chains."""
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


def _tls_error(url: str, error: Exception) -> DownloadError:
    return DownloadError(
        f"{url}: TLS certificate verification failed ({error}); the host has been reported to serve an "
        "incomplete certificate chain. Download its intermediate certificate and pass it with --ca-bundle FILE "
        "(verification is never turned off), or fetch the archive with curl into ROOT and rerun"
    )


def fetch(url: str, target: Path, *, context: ssl.SSLContext | None = None, retries: int = 4,
          backoff: float = 0.5, progress: Callable[[int, int], None] | None = None, timeout: float = 30) -> str:
    """Download ``url`` to ``target`` resuming ``target.part``; return the SHA-256 of the whole file.

    Transient errors (dropped connections, timeouts, 5xx) are retried with exponential back-off, each retry
    resuming where the file stopped. A 404 raises :class:`FileNotFoundError` so callers try the next location.
    """
    partial = target.with_name(target.name + ".part")
    partial.parent.mkdir(parents=True, exist_ok=True)
    attempt = 0
    while True:
        have = partial.stat().st_size if partial.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
                if have and response.status != 206:  # the server ignores ranges: start again cleanly
                    log.warning("%s: server does not resume; restarting the download", url)
                    have = 0
                total = have + int(response.headers.get("Content-Length") or 0)
                digest = hashlib.sha256()
                if have:
                    with open(partial, "rb") as done:
                        while block := done.read(1 << 20):
                            digest.update(block)
                with open(partial, "ab" if have else "wb") as out:
                    while block := response.read(1 << 20):
                        out.write(block)
                        digest.update(block)
                        have += len(block)
                        if progress:
                            progress(have, total)
                if total and have < total:
                    raise http.client.IncompleteRead(b"", total - have)
            os.replace(partial, target)
            return digest.hexdigest()
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise FileNotFoundError(url) from None
            if error.code == 416:  # range past the end: the part file is stale
                partial.unlink(missing_ok=True)
            elif error.code < 500:
                raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
            problem: Exception = error
        except urllib.error.URLError as error:
            if isinstance(error.reason, ssl.SSLCertVerificationError):
                raise _tls_error(url, error.reason) from None
            problem = error
        except ssl.SSLCertVerificationError as error:
            raise _tls_error(url, error) from None
        except _TRANSIENT as error:
            problem = error
        attempt += 1
        if attempt > retries:
            raise DownloadError(f"{url}: gave up after {retries} retries ({problem}); rerun to resume "
                                f"from {partial.stat().st_size if partial.exists() else 0:,} bytes")
        log.warning("%s: %s; retrying in %.1f s", url, problem, backoff * 2 ** (attempt - 1))
        time.sleep(backoff * 2 ** (attempt - 1))


# ------------------------------------------------------------------------------------------------ extraction
def _members(archive: Path) -> list[tuple[str, int, str | None]]:
    """(name, uncompressed size, link target or None) of every entry of a zip or tar archive."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as handle:
            out = []
            for info in handle.infolist():
                is_link = stat.S_ISLNK(info.external_attr >> 16)
                out.append((info.filename, info.file_size, handle.read(info).decode() if is_link else None))
            return out
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as handle:
            return [(m.name, m.size, m.linkname if (m.issym() or m.islnk()) else None) for m in handle.getmembers()
                    if not (m.isdev() or m.isfifo())]
    raise DownloadError(f"{archive}: neither a zip nor a tar archive; delete it and download again")


def _check_members(archive: Path, members: list[tuple[str, int, str | None]]) -> int:
    """Refuse entries that would land outside the extraction folder; return the uncompressed total."""
    for name, _, link in members:
        path = PurePosixPath(name.replace("\\", "/"))
        if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise DownloadError(f"{archive}: refused: entry {name!r} has an absolute path")
        if ".." in path.parts:
            raise DownloadError(f"{archive}: refused: entry {name!r} climbs out with '..'")
        if link is not None:
            target = PurePosixPath(link)
            resolved = (path.parent / target).parts
            depth = 0
            for part in resolved:
                depth += -1 if part == ".." else (0 if part == "." else 1)
                if depth < 0:
                    break
            if target.is_absolute() or depth < 0:
                raise DownloadError(f"{archive}: refused: link {name!r} points outside the tree ({link!r})")
    total = sum(size for _, size, _ in members)
    compressed = max(archive.stat().st_size, 1)
    if total > MAX_UNCOMPRESSED or total / compressed > MAX_RATIO:
        raise DownloadError(f"{archive}: refused: {total:,} bytes uncompressed from {compressed:,} "
                            f"(ratio {total / compressed:.0f}); looks like an archive bomb")
    return total


def extract(archive: Path, root: Path, *, free_bytes: int | None = None) -> list[Path]:
    """Extract safely into ``root``: checked entries, disk space first, atomic per archive."""
    members = _members(archive)
    needed = _check_members(archive, members)
    free = shutil.disk_usage(root).free if free_bytes is None else free_bytes
    if needed > free:
        raise DownloadError(f"{archive}: needs {needed / 1e9:.2f} GB to extract, {free / 1e9:.2f} GB free "
                            f"under {root}; free space or choose another ROOT")
    staging = root / CACHE_DIR / f"extract-{archive.stem}.tmp"  # beside its target: the rename stays on one disk
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                for info in handle.infolist():
                    if stat.S_ISLNK(info.external_attr >> 16):
                        (staging / info.filename).parent.mkdir(parents=True, exist_ok=True)
                        os.symlink(handle.read(info).decode(), staging / info.filename)
                    else:
                        handle.extract(info, staging)
        else:
            with tarfile.open(archive) as handle:
                handle.extractall(staging, filter="data")
        moved = []
        for entry in sorted(staging.iterdir()):
            if entry.name == "__MACOSX":
                continue
            target = root / entry.name
            if target.exists():
                raise DownloadError(f"{target}: already exists; remove it to extract {archive.name} again")
            os.replace(entry, target)
            moved.append(target)
        return moved
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- download
def _record(root: Path, name: str, entry: dict) -> None:
    path = work_dir(root) / "downloads.json"
    records = json.loads(path.read_text()) if path.is_file() else {}
    records[name] = entry
    with atomic_write(path, "w") as handle:
        json.dump(records, handle, indent=2)


def download(root: str | Path, parts: tuple[str, ...] = PARTS, *, base_url: str | None = None,
             extract_archives: bool = True, strict: bool = False, ca_bundle: str | Path | None = None,
             free_bytes: int | None = None, progress: Callable[[str], Callable[[int, int], None]] | None = None,
             retries: int = 4, backoff: float = 0.5) -> dict[str, str]:
    """Fetch ``parts`` into ``root`` (the torchvision/torchgeo ladder: present → archive → download).

    ``base_url`` replaces every official location (mirrors, tests): archives at ``BASE/<archive>``, the
    official files at ``BASE/<path in the repository>``. Returns part → what was done.
    """
    root = Path(root)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:  # before anything is created
        raise HyperKvasirError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    root.mkdir(parents=True, exist_ok=True)
    context = _context(ca_bundle)
    done: dict[str, str] = {}
    for part in parts:
        if part == "splits":
            for remote, local in REPOSITORY_FILES["splits"]:
                if (root / local).is_file():
                    continue
                urls = [(base_url or REPOSITORY_URL).rstrip("/") + "/" + remote]
                _fetch_first(urls, root / local, context, retries, backoff, None)
            done[part] = "official files present"
            continue
        archive = ARCHIVES[part]
        if (root / archive.folder).is_dir():
            done[part] = "already extracted"
            continue
        target = root / archive.name
        if not target.is_file():
            target = _downloads_dir(root) / archive.name
        if not target.is_file():
            bases = [base_url] if base_url else list(BASE_URLS)
            urls = [b.rstrip("/") + "/" + archive.name for b in bases]
            sha, url = _fetch_first(urls, target, context, retries, backoff,
                                    progress(archive.name) if progress else None)
            known = sha in KNOWN_SHA256.get(archive.name, set())
            _record(root, archive.name, {"url": url, "sha256": sha, "bytes": target.stat().st_size,
                                         "known_hash": known, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            if not known:
                message = (f"{archive.name}: SHA-256 {sha} is not among the hashes seen for this archive "
                           "(archives were re-packed before); recorded in .hyperkvasir/downloads.json")
                if strict:
                    raise DownloadError(message + "; without --strict this is a warning")
                log.warning(message)
            done[part] = "downloaded"
        else:
            done[part] = "archive present"
        if extract_archives:
            extract(target, root, free_bytes=free_bytes)
            done[part] += ", extracted"
    return done


def _fetch_first(urls: list[str], target: Path, context, retries: int, backoff: float, progress):
    tried = []
    for url in urls:
        try:
            return fetch(url, target, context=context, retries=retries, backoff=backoff, progress=progress), url
        except FileNotFoundError:
            tried.append(url)
            log.warning("%s: not found (404); trying the next location", url)
    raise DownloadError(f"{target.name}: not found at {', '.join(tried)}; pass --base-url for a mirror")


def ensure_parts(root: str | Path, parts: tuple[str, ...], *, download_missing: bool = False, **options) -> Release:
    """The dataset ladder: extracted tree present → archive present (extract) → download allowed → error."""
    root = Path(root)
    missing = []
    for part in parts:
        try:
            if Release(root).part(part) is not None:
                continue
        except DatasetNotFoundError:
            pass  # an empty folder, or one holding only archives
        archive = ARCHIVES.get(part)
        local = [p for p in ((root / archive.name), _downloads_dir(root) / archive.name) if p.is_file()] if archive else []
        if local:
            extract(local[0], root)
        elif download_missing:
            download(root, (part,), **options)
        else:
            missing.append(part)
    if missing:
        raise DatasetNotFoundError(
            f"{root}: {', '.join(missing)} not found; run `hyperkvasir download {root} --parts {','.join(missing)}` "
            "or pass download=True")
    return Release(root)
