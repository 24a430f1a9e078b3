"""Fetch the release safely: resumable, verified download and extraction that cannot be abused.

Archives come from the current official location (datasets.simula.no/downloads/hyper-kvasir/, since
2022-03-02), then the older locations as fallbacks; the split CSVs and the video metadata come from the
official repository simula/hyper-kvasir (dataset.md §5). A partial download continues with an HTTP range
request; a server that refuses ranges gets a clean restart. SHA-256 is computed while downloading and compared
with the hashes seen for each archive (no official ones exist and the archives were re-packed in 2022, so an
unknown hash is a warning, an error only when ``strict``); every observed hash goes to
``ROOT/.hyperkvasir/downloads.json``; plain HTTP is refused unless allowed. An archive found on disk is extracted
only when its hash is known, the toolkit downloaded it, or the user vouches for it. Extraction refuses absolute
paths, ``..``, links, devices and archive bombs, checks disk space first and is atomic per archive (a temp
folder, then a rename).
"""

from __future__ import annotations

import contextlib
import errno
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
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import filelock

from hyperkvasir.data.layout import Release
from hyperkvasir.errors import DatasetNotFoundError, HyperKvasirError
from hyperkvasir.outputs import CACHE_DIR, atomic_write, work_dir

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
MAX_RATIO = 200  # uncompressed / compressed beyond this is treated as an archive bomb
MAX_UNCOMPRESSED = 80 * 10**9  # no HyperKvasir archive unpacks to more
MAX_MEMBERS = 250_000  # the largest archive (unlabeled) holds about 100,000 files
_TRANSIENT = (ConnectionError, TimeoutError, socket.timeout, http.client.IncompleteRead, http.client.RemoteDisconnected)


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
        "(verification is never turned off), or fetch the archive with curl into ROOT and rerun with "
        "--trust-archive"
    )


def require_https(url: str, allow_http: bool) -> None:
    """Plain HTTP is refused unless asked for: unknown archive hashes are only warnings, so nothing would
    authenticate what arrives."""
    if urllib.parse.urlparse(url).scheme == "http" and not allow_http:
        raise HyperKvasirError(
            f"{url}: plain HTTP is unauthenticated (an unknown archive hash is only a warning), "
            "so anyone on the way could swap the archive; use https:// or pass --allow-http"
        )


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Redirects are followed, except from HTTPS down to plain HTTP unless that was allowed."""

    def __init__(self, allow_http: bool) -> None:
        super().__init__()
        self.allow_http = allow_http

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlparse(newurl).scheme == "http" and not self.allow_http:
            raise DownloadError(
                f"{req.full_url}: redirected to plain HTTP ({newurl}), which is unauthenticated; "
                "use an https:// mirror or pass --allow-http"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(
    url: str,
    target: Path,
    *,
    context: ssl.SSLContext | None = None,
    retries: int = 4,
    backoff: float = 0.5,
    progress: Callable[[int, int], None] | None = None,
    timeout: float = 30,
    allow_http: bool = False,
) -> str:
    """Download ``url`` to ``target`` resuming ``target.part``; return the SHA-256 of the whole file.

    Transient errors (dropped connections, timeouts, 5xx) are retried with exponential back-off, each retry
    resuming where the file stopped. A 404 raises :class:`FileNotFoundError` so callers try the next location.
    Plain HTTP, also by a redirect, needs ``allow_http``.
    """
    require_https(url, allow_http)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _Redirects(allow_http))
    partial = target.with_name(target.name + ".part")
    partial.parent.mkdir(parents=True, exist_ok=True)
    attempt = 0
    while True:
        have = partial.stat().st_size if partial.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with opener.open(request, timeout=timeout) as response:
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
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            have = partial.stat().st_size if partial.exists() else 0
            raise DownloadError(
                f"{partial}: the disk is full ({error.strerror}); free space under {partial.parent} "
                f"and rerun to resume from {have:,} bytes"
            ) from None
        attempt += 1
        if attempt > retries:
            raise DownloadError(
                f"{url}: gave up after {retries} retries ({problem}); rerun to resume "
                f"from {partial.stat().st_size if partial.exists() else 0:,} bytes"
            )
        log.warning("%s: %s; retrying in %.1f s", url, problem, backoff * 2 ** (attempt - 1))
        time.sleep(backoff * 2 ** (attempt - 1))


# ------------------------------------------------------------------------------------------------ extraction
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


# ------------------------------------------------------------------------------------------------- download
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
    fetching = {"context": _context(ca_bundle), "retries": retries, "backoff": backoff, "allow_http": allow_http}
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
