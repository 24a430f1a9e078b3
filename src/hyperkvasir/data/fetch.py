"""Fetch one file over HTTPS: resumable, hashed while it arrives, retried with back-off, never unauthenticated.

A partial download continues with an HTTP range request; a server that refuses ranges gets a clean restart.
Certificate verification stays on (a CA bundle can be added), plain HTTP, also by a redirect, is refused unless
allowed, and a full disk or a dead host is one line saying how to resume. :class:`DownloadError`, which
extraction and the download ladder raise too, lives here.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from hyperkvasir.errors import HyperKvasirError

log = logging.getLogger(__name__)

_TRANSIENT = (ConnectionError, TimeoutError, socket.timeout, http.client.IncompleteRead, http.client.RemoteDisconnected)


class DownloadError(HyperKvasirError):
    exit_code = 1


def ssl_context(ca_bundle: str | Path | None) -> ssl.SSLContext:
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
