"""Download against a real HTTP server on 127.0.0.1 serving archives of a synthetic twin; no internet."""

from __future__ import annotations

import io
import json
import logging
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hyperkvasir.cli import main
from hyperkvasir.data import download as dl
from hyperkvasir.data.layout import Release
from hyperkvasir.errors import DatasetNotFoundError


class Server:
    """Serves ``files`` (path → bytes) with optional quirks: no range support, a dropped first transfer, 404s."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ranges = True
        self.drop_first_after: int | None = None
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                header = self.headers.get("Range")
                if header and server.ranges:
                    start = int(header.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.drop_first_after is not None:
                    body, server.drop_first_after = body[: server.drop_first_after], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def server():
    instance = Server()
    yield instance
    instance.close()


def _zip_of(folder: Path, arcroot: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{arcroot}/{path.relative_to(folder)}")
    return buffer.getvalue()


@pytest.fixture
def segmented_zip(tiny_twin) -> bytes:
    return _zip_of(tiny_twin.root / "segmented-images", "segmented-images")


def test_full_download_verifies_records_and_extracts(server, segmented_zip, tiny_twin, tmp_path: Path) -> None:
    server.files["/hyper-kvasir-segmented-images.zip"] = segmented_zip
    for remote, _ in dl.REPOSITORY_FILES["splits"]:
        source = tiny_twin.root / remote if (tiny_twin.root / remote).exists() else None
        server.files["/" + remote] = source.read_bytes() if source else b"file-name;finding\n"
    done = dl.download(tmp_path, ("segmented", "splits"), base_url=server.url)
    assert done == {"segmented": "downloaded, extracted", "splits": "official files present"}
    release = Release(tmp_path)
    assert len(release.segmented_pairs()[0]) == len(tiny_twin.segmented)
    record = json.loads((tmp_path / ".hyperkvasir" / "downloads.json").read_text())
    import hashlib

    assert record["hyper-kvasir-segmented-images.zip"]["sha256"] == hashlib.sha256(segmented_zip).hexdigest()
    assert record["hyper-kvasir-segmented-images.zip"]["known_hash"] is False
    assert not list(tmp_path.glob(".hyperkvasir/extract-*"))
    again = dl.download(tmp_path, ("segmented",), base_url=server.url)
    assert again == {"segmented": "already extracted"}


def test_resume_after_the_server_drops_the_connection(server, segmented_zip, tmp_path: Path) -> None:
    server.files["/a.zip"] = segmented_zip
    server.drop_first_after = len(segmented_zip) // 3
    sha = dl.fetch(server.url + "/a.zip", tmp_path / "a.zip", backoff=0.01)
    assert (tmp_path / "a.zip").read_bytes() == segmented_zip
    assert server.requests[1] == ("/a.zip", f"bytes={len(segmented_zip) // 3}-")
    import hashlib

    assert sha == hashlib.sha256(segmented_zip).hexdigest()


def test_server_without_ranges_restarts_cleanly(server, segmented_zip, tmp_path: Path) -> None:
    server.files["/a.zip"] = segmented_zip
    server.ranges = False
    (tmp_path / "a.zip.part").write_bytes(segmented_zip[:1000])
    dl.fetch(server.url + "/a.zip", tmp_path / "a.zip", backoff=0.01)
    assert (tmp_path / "a.zip").read_bytes() == segmented_zip


def test_wrong_hash_warns_and_strict_fails(server, segmented_zip, tmp_path: Path, monkeypatch, caplog) -> None:
    server.files["/hyper-kvasir-segmented-images.zip"] = segmented_zip
    monkeypatch.setitem(dl.KNOWN_SHA256, "hyper-kvasir-segmented-images.zip", {"0" * 64})
    with pytest.raises(dl.DownloadError, match="is not among the hashes seen"):
        dl.download(tmp_path / "strict", ("segmented",), base_url=server.url, strict=True)
    with caplog.at_level(logging.WARNING):
        dl.download(tmp_path / "lenient", ("segmented",), base_url=server.url)
    assert "is not among the hashes seen" in caplog.text


def test_404_then_fallback_location(server, segmented_zip, tmp_path: Path, monkeypatch) -> None:
    server.files["/old/hyper-kvasir-segmented-images.zip"] = segmented_zip
    monkeypatch.setattr(dl, "BASE_URLS", (server.url + "/new/", server.url + "/old/"))
    assert dl.download(tmp_path, ("segmented",))["segmented"] == "downloaded, extracted"
    assert [path for path, _ in server.requests][:2] == ["/new/hyper-kvasir-segmented-images.zip",
                                                         "/old/hyper-kvasir-segmented-images.zip"]
    monkeypatch.setattr(dl, "BASE_URLS", (server.url + "/none/",))
    with pytest.raises(dl.DownloadError, match="not found at"):
        dl.download(tmp_path / "x", ("segmented",))


def _zip(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            archive.writestr(info, target)
    return buffer.getvalue()


def _tar(name: str, link: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, link
        archive.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize(("payload", "message"), [
    (_zip({"../evil.txt": b"x"}), "climbs out with '..'"),
    (_zip({"/etc/evil.txt": b"x"}), "absolute path"),
    (_zip({"segmented-images/a.txt": b"x"}, {"segmented-images/link": "../../etc/passwd"}), "points outside"),
    (_tar("segmented-images/link", "/etc/passwd"), "points outside"),
    (_zip({"segmented-images/bomb.bin": b"\0" * 50_000_000}), "archive bomb"),
])
def test_malicious_archives_are_refused(tmp_path: Path, payload: bytes, message: str) -> None:
    archive = tmp_path / "bad.archive"
    archive.write_bytes(payload)
    (tmp_path / "root").mkdir()
    with pytest.raises(dl.DownloadError, match=message):
        dl.extract(archive, tmp_path / "root")
    assert [p.name for p in (tmp_path / "root").iterdir()] == []  # nothing half-extracted


def test_no_disk_space_says_how_much(tmp_path: Path, segmented_zip) -> None:
    archive = tmp_path / "seg.zip"
    archive.write_bytes(segmented_zip)
    (tmp_path / "root").mkdir()
    with pytest.raises(dl.DownloadError, match=r"needs 0.0\d GB to extract, 0.00 GB free"):
        dl.extract(archive, tmp_path / "root", free_bytes=1000)


def test_dataset_ladder(server, segmented_zip, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="--parts segmented"):
        dl.ensure_parts(tmp_path / "a", ("segmented",))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "hyper-kvasir-segmented-images.zip").write_bytes(segmented_zip)
    assert dl.ensure_parts(tmp_path / "b", ("segmented",)).segmented_dir is not None  # archive present
    server.files["/hyper-kvasir-segmented-images.zip"] = segmented_zip
    release = dl.ensure_parts(tmp_path / "c", ("segmented",), download_missing=True, base_url=server.url)
    assert release.segmented_dir is not None


def test_cli_download(server, segmented_zip, tmp_path: Path) -> None:
    server.files["/hyper-kvasir-segmented-images.zip"] = segmented_zip
    assert main(["download", str(tmp_path), "--parts", "segmented", "--base-url", server.url]) == 0
    assert main(["download", str(tmp_path), "--parts", "everything"]) == 2


def test_tls_failure_explains_and_ca_bundle_fixes_it(tmp_path: Path, segmented_zip) -> None:
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl command absent: cannot make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    server = Server()
    server.files["/a.zip"] = segmented_zip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    url = server.url.replace("http://", "https://") + "/a.zip"
    try:
        with pytest.raises(dl.DownloadError, match="certificate verification failed.*--ca-bundle"):
            dl.fetch(url, tmp_path / "a.zip", context=dl._context(None), retries=0)
        dl.fetch(url, tmp_path / "a.zip", context=dl._context(cert), retries=0)
        assert (tmp_path / "a.zip").read_bytes() == segmented_zip
    finally:
        server.close()
