"""Download against a real HTTP server on 127.0.0.1 serving archives of a synthetic twin; no internet."""

from __future__ import annotations

import io
import json
import logging
import tarfile
import threading
import warnings
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hyperkvasir.cli import main
from hyperkvasir.data import download as dl, extract as ex, fetch as fe
from hyperkvasir.data.layout import Release
from hyperkvasir.errors import DatasetNotFoundError, HyperKvasirError


class Server:
    """Serves ``files`` (path → bytes) with optional quirks: no range support, a dropped first transfer, 404s."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ranges = True
        self.drop_first_after: int | None = None
        self.requests: list[tuple[str, str | None]] = []
        self.redirects: dict[str, str] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[self.path])
                    self.end_headers()
                    return
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
    done = dl.download(tmp_path, ("segmented", "splits"), base_url=server.url, allow_http=True)
    assert done == {"segmented": "downloaded, extracted", "splits": "official files present"}
    release = Release(tmp_path)
    assert len(release.segmented_pairs()[0]) == len(tiny_twin.segmented)
    record = json.loads((tmp_path / ".hyperkvasir" / "downloads.json").read_text())
    import hashlib

    assert record["hyper-kvasir-segmented-images.zip"]["sha256"] == hashlib.sha256(segmented_zip).hexdigest()
    assert record["hyper-kvasir-segmented-images.zip"]["known_hash"] is False
    assert not list(tmp_path.glob(".hyperkvasir/extract-*"))
    again = dl.download(tmp_path, ("segmented",), base_url=server.url, allow_http=True)
    assert again == {"segmented": "already extracted"}


def test_resume_after_the_server_drops_the_connection(server, segmented_zip, tmp_path: Path) -> None:
    server.files["/a.zip"] = segmented_zip
    server.drop_first_after = len(segmented_zip) // 3
    sha = fe.fetch(server.url + "/a.zip", tmp_path / "a.zip", backoff=0.01, allow_http=True)
    assert (tmp_path / "a.zip").read_bytes() == segmented_zip
    assert server.requests[1] == ("/a.zip", f"bytes={len(segmented_zip) // 3}-")
    import hashlib

    assert sha == hashlib.sha256(segmented_zip).hexdigest()


def test_server_without_ranges_restarts_cleanly(server, segmented_zip, tmp_path: Path) -> None:
    server.files["/a.zip"] = segmented_zip
    server.ranges = False
    (tmp_path / "a.zip.part").write_bytes(segmented_zip[:1000])
    fe.fetch(server.url + "/a.zip", tmp_path / "a.zip", backoff=0.01, allow_http=True)
    assert (tmp_path / "a.zip").read_bytes() == segmented_zip


def test_wrong_hash_warns_and_strict_fails(server, segmented_zip, tmp_path: Path, monkeypatch, caplog) -> None:
    server.files["/hyper-kvasir-segmented-images.zip"] = segmented_zip
    monkeypatch.setitem(dl.KNOWN_SHA256, "hyper-kvasir-segmented-images.zip", {"0" * 64})
    with pytest.raises(fe.DownloadError, match="is not among the hashes seen"):
        dl.download(tmp_path / "strict", ("segmented",), base_url=server.url, strict=True, allow_http=True)
    with caplog.at_level(logging.WARNING):
        dl.download(tmp_path / "lenient", ("segmented",), base_url=server.url, allow_http=True)
    assert "is not among the hashes seen" in caplog.text


def test_404_then_fallback_location(server, segmented_zip, tmp_path: Path, monkeypatch) -> None:
    server.files["/old/hyper-kvasir-segmented-images.zip"] = segmented_zip
    monkeypatch.setattr(dl, "BASE_URLS", (server.url + "/new/", server.url + "/old/"))
    assert dl.download(tmp_path, ("segmented",), allow_http=True)["segmented"] == "downloaded, extracted"
    assert [path for path, _ in server.requests][:2] == [
        "/new/hyper-kvasir-segmented-images.zip",
        "/old/hyper-kvasir-segmented-images.zip",
    ]
    monkeypatch.setattr(dl, "BASE_URLS", (server.url + "/none/",))
    with pytest.raises(fe.DownloadError, match="not found at"):
        dl.download(tmp_path / "x", ("segmented",), allow_http=True)


def _zip(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def _tar(name: str, link: str, kind: bytes = tarfile.SYMTYPE) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        archive.addfile(info)
    return buffer.getvalue()


def _chained_links(depth: int) -> bytes:
    """Links that each stay inside (``d/up -> ..``, ``d/up/up2 -> ..``, …) but chained climb ``depth`` levels out,
    and a file written through them."""
    names = [f"segmented-images/{'/'.join(f'up{n}' for n in range(level + 1))}" for level in range(depth)]
    return _zip_in_order([(name, "..") for name in names] + [(names[-1] + "/escaped.txt", None)])


def _zip_in_order(entries: list[tuple[str, str | None]]) -> bytes:
    """A zip of links (target given) and files (``None``: a little text) in the order given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a duplicate name is what some tests want
        for name, target in entries:
            info = zipfile.ZipInfo(name)
            if target is not None:
                info.external_attr = 0o120777 << 16
            archive.writestr(info, target if target is not None else "written outside ROOT")
    return buffer.getvalue()


def _damaged_zip() -> bytes:
    data = bytearray(_zip({"segmented-images/a.txt": b"HyperKvasir " * 100}))
    data[60] ^= 0xFF  # inside the compressed data: the CRC check fails while extracting
    return bytes(data)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_zip({"../evil.txt": b"x"}), "climbs out with '..'"),
        (_zip({"segmented-images\\..\\..\\evil.txt": b"x"}), "climbs out with '..'"),
        (_zip({"/etc/evil.txt": b"x"}), "absolute path"),
        (_zip({"C:/evil.txt": b"x"}), "absolute path"),
        (_zip({"segmented-images/a.txt": b"x"}, {"segmented-images/link": "../../etc/passwd"}), "is a link"),
        (
            _zip({"segmented-images/a.txt": b"x"}, {"segmented-images/link": "a.txt"}),
            "'segmented-images/link' is a link",
        ),
        (_tar("segmented-images/link", "/etc/passwd"), "is a link"),
        (_tar("segmented-images/hard", "/etc/passwd", tarfile.LNKTYPE), "is a link"),
        (_tar("segmented-images/null", "", tarfile.CHRTYPE), "device, pipe or socket"),
        (_tar("segmented-images/pipe", "", tarfile.FIFOTYPE), "device, pipe or socket"),
        (_zip_in_order([("segmented-images/a.jpg", None), ("segmented-images/a.jpg", None)]), "appears twice"),
        (_zip_in_order([("segmented-images/a", None), ("segmented-images/a/b.jpg", None)]), "lies below the file"),
        (_zip({"segmented-images/bomb.bin": b"\0" * 50_000_000}), "archive bomb"),
        (_damaged_zip(), "damaged archive"),
        (_zip({f"segmented-images/{'a' * 300}.jpg": b"x"}), "File name too long"),
        (b"PK\x03\x04 not really a zip", "neither a zip nor a tar"),
    ],
)
def test_malicious_archives_are_refused(tmp_path: Path, payload: bytes, message: str) -> None:
    archive = tmp_path / "bad.archive"
    archive.write_bytes(payload)
    (tmp_path / "root").mkdir()
    with pytest.raises(fe.DownloadError, match=message):
        ex.extract(archive, tmp_path / "root")
    assert [p.name for p in (tmp_path / "root").rglob("*")] in ([], [".hyperkvasir"])  # nothing half-extracted


def test_an_archive_of_too_many_entries_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ex, "MAX_MEMBERS", 10)
    archive = tmp_path / "many.zip"
    archive.write_bytes(_zip({f"segmented-images/{n}.txt": b"" for n in range(11)}))
    (tmp_path / "root").mkdir()
    with pytest.raises(fe.DownloadError, match="11 entries"):
        ex.extract(archive, tmp_path / "root")


def _outside(tmp_path: Path, root: Path) -> list[str]:
    """Everything under ``tmp_path`` but ROOT, what lies in it and the folders leading to it."""
    return sorted(
        str(p.relative_to(tmp_path))
        for p in tmp_path.rglob("*")
        if root not in (p, *p.parents) and p not in root.parents
    )


def test_chained_links_served_to_download_write_nothing_outside_root(server, tmp_path: Path, capsys) -> None:
    server.files["/hyper-kvasir-segmented-images.zip"] = _chained_links(4)
    root = tmp_path / "a" / "b" / "root"
    before = _outside(tmp_path, root)
    code = main(["download", str(root), "--parts", "segmented", "--base-url", server.url, "--allow-http"])
    err = capsys.readouterr().err
    assert code == 1 and "'segmented-images/up0' is a link" in err and "Traceback" not in err
    assert _outside(tmp_path, root) == before
    assert not (root / "segmented-images").exists() and not list(root.rglob("escaped.txt"))


@pytest.mark.parametrize("trust", [False, True])
def test_local_archive_with_chained_links_is_never_extracted(tmp_path: Path, trust: bool) -> None:
    root = tmp_path / "a" / "b" / "root"
    root.mkdir(parents=True)
    (root / "hyper-kvasir-segmented-images.zip").write_bytes(_chained_links(4))
    before = _outside(tmp_path, root)
    with pytest.raises(fe.DownloadError, match="is a link" if trust else "--trust-archive"):
        dl.ensure_parts(root, ("segmented",), trust_archive=trust)
    assert _outside(tmp_path, root) == before and not list(root.rglob("escaped.txt"))


def test_an_archive_of_unknown_hash_is_extracted_only_when_trusted(
    server, segmented_zip, tmp_path: Path, capsys
) -> None:
    (tmp_path / "hyper-kvasir-segmented-images.zip").write_bytes(segmented_zip)  # placed by someone else
    with pytest.raises(fe.DownloadError, match="not a known hash.*--trust-archive"):
        dl.ensure_parts(tmp_path, ("segmented",))
    assert main(["download", str(tmp_path), "--parts", "segmented"]) == 1
    assert "--trust-archive" in capsys.readouterr().err and not (tmp_path / "segmented-images").exists()
    assert main(["download", str(tmp_path), "--parts", "segmented", "--trust-archive"]) == 0
    assert (tmp_path / "segmented-images" / "images").is_dir()
    server.files["/hyper-kvasir-segmented-images.zip"] = segmented_zip  # one the toolkit fetched: no question
    fetched = tmp_path / "fetched"
    dl.download(fetched, ("segmented",), base_url=server.url, allow_http=True, extract_archives=False)
    assert dl.ensure_parts(fetched, ("segmented",)).segmented_dir is not None


def test_plain_http_needs_allow_http(server, segmented_zip, tmp_path: Path, capsys) -> None:
    server.files["/hyper-kvasir-segmented-images.zip"] = segmented_zip
    assert main(["download", str(tmp_path / "r"), "--parts", "segmented", "--base-url", server.url]) == 2
    assert "--allow-http" in capsys.readouterr().err and not (tmp_path / "r").exists()
    with pytest.raises(HyperKvasirError, match="plain HTTP"):
        fe.fetch(server.url + "/hyper-kvasir-segmented-images.zip", tmp_path / "a.zip")
    assert server.requests == []


def test_no_disk_space_says_how_much(tmp_path: Path, segmented_zip) -> None:
    archive = tmp_path / "seg.zip"
    archive.write_bytes(segmented_zip)
    (tmp_path / "root").mkdir()
    with pytest.raises(fe.DownloadError, match=r"needs 0.0\d GB to extract, 0.00 GB free"):
        ex.extract(archive, tmp_path / "root", free_bytes=1000)


def test_dataset_ladder(server, segmented_zip, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="--parts segmented"):
        dl.ensure_parts(tmp_path / "a", ("segmented",))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "hyper-kvasir-segmented-images.zip").write_bytes(segmented_zip)
    assert dl.ensure_parts(tmp_path / "b", ("segmented",), trust_archive=True).segmented_dir is not None
    server.files["/hyper-kvasir-segmented-images.zip"] = segmented_zip
    release = dl.ensure_parts(
        tmp_path / "c", ("segmented",), download_missing=True, base_url=server.url, allow_http=True
    )
    assert release.segmented_dir is not None


def test_cli_download(server, segmented_zip, tmp_path: Path) -> None:
    server.files["/hyper-kvasir-segmented-images.zip"] = segmented_zip
    assert main(["download", str(tmp_path), "--parts", "segmented", "--base-url", server.url, "--allow-http"]) == 0
    assert main(["download", str(tmp_path), "--parts", "everything"]) == 2


def _tls_server(tmp_path: Path) -> tuple[Server, Path]:
    """A loopback HTTPS server with a self-signed certificate, and that certificate."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl command absent: cannot make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server = Server()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    server.url = server.url.replace("http://", "https://")
    return server, cert


def test_https_redirected_to_plain_http_is_refused(server, segmented_zip, tmp_path: Path) -> None:
    server.files["/a.zip"] = segmented_zip
    secure, cert = _tls_server(tmp_path)
    secure.redirects["/a.zip"] = server.url + "/a.zip"
    try:
        with pytest.raises(fe.DownloadError, match="redirected to plain HTTP.*--allow-http"):
            fe.fetch(secure.url + "/a.zip", tmp_path / "a.zip", context=fe.ssl_context(cert), retries=0)
        assert server.requests == [] and not (tmp_path / "a.zip").exists()
        fe.fetch(secure.url + "/a.zip", tmp_path / "a.zip", context=fe.ssl_context(cert), retries=0, allow_http=True)
        assert (tmp_path / "a.zip").read_bytes() == segmented_zip
    finally:
        secure.close()


def test_tls_failure_explains_and_ca_bundle_fixes_it(tmp_path: Path, segmented_zip) -> None:
    server, cert = _tls_server(tmp_path)
    server.files["/a.zip"] = segmented_zip
    url = server.url + "/a.zip"
    try:
        with pytest.raises(fe.DownloadError, match="certificate verification failed.*--ca-bundle"):
            fe.fetch(url, tmp_path / "a.zip", context=fe.ssl_context(None), retries=0)
        fe.fetch(url, tmp_path / "a.zip", context=fe.ssl_context(cert), retries=0)
        assert (tmp_path / "a.zip").read_bytes() == segmented_zip
    finally:
        server.close()


def test_a_full_disk_is_one_line_and_leaves_nothing_half_extracted(server, small_disk, capsys) -> None:
    disk = small_disk("2M")
    import os

    big = os.urandom(3_000_000)  # incompressible: more than the disk holds
    server.files["/hyper-kvasir-segmented-images.zip"] = _zip({"segmented-images/images/a.jpg": big})
    code = main(["download", str(disk / "root"), "--parts", "segmented", "--base-url", server.url, "--allow-http"])
    err = capsys.readouterr().err
    assert code == 1 and "the disk is full" in err and "rerun to resume" in err and "Traceback" not in err
    archive = disk / "a.zip"
    for leftover in disk.rglob("*.part"):
        leftover.unlink()
    archive.write_bytes(_zip({"segmented-images/images/a.jpg": big[:1_500_000]}))
    with pytest.raises(fe.DownloadError, match="cannot extract under"):
        ex.extract(archive, disk / "root", free_bytes=10**9)  # a free-space figure that was wrong
    assert not (disk / "root" / "segmented-images").exists()
    assert not list((disk / "root" / ".hyperkvasir").glob("extract-*"))


def test_extraction_moves_every_top_folder_or_none(tmp_path: Path) -> None:
    archive = tmp_path / "two.zip"
    archive.write_bytes(_zip({"a-first/x.txt": b"x", "segmented-images/y.txt": b"y"}))
    root = tmp_path / "root"
    (root / "segmented-images").mkdir(parents=True)
    with pytest.raises(fe.DownloadError, match="segmented-images: already exists"):
        ex.extract(archive, root)
    assert sorted(p.name for p in root.iterdir()) == [".hyperkvasir", "segmented-images"]


def test_a_second_download_into_a_tree_waits_for_the_first(segmented_zip, tmp_path: Path) -> None:
    import filelock

    (tmp_path / "hyper-kvasir-segmented-images.zip").write_bytes(segmented_zip)
    (tmp_path / ".hyperkvasir").mkdir()
    first = filelock.FileLock(tmp_path / ".hyperkvasir" / "download.lock")  # a download running in another process
    first.acquire()
    done: list = []
    second = threading.Thread(target=lambda: done.append(dl.download(tmp_path, ("segmented",), trust_archive=True)))
    second.start()
    second.join(1.0)
    assert second.is_alive() and not (tmp_path / "segmented-images").exists()  # waits: no shared staging folder
    ex.extract(tmp_path / "hyper-kvasir-segmented-images.zip", tmp_path)  # what the first one does
    first.release()
    second.join(30)
    assert done == [{"segmented": "already extracted"}]
