"""The review app (``hyperkvasir review``) and the reviews it writes, as ``train``/``benchmark --reviews`` apply
them: endpoints through FastAPI's TestClient, the real CLI for refusals, a real training run for provenance, and
headless Chromium (the system's, driven by Playwright) for the keyboard."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hyperkvasir.cli import main
from hyperkvasir.data.reviews import REVIEW_COLUMNS, append_review, read_reviews, review_row
from hyperkvasir.errors import DataError

fastapi = pytest.importorskip("fastapi", reason="the review extra is not installed (pip install hyperkvasir[review])")
from fastapi.testclient import TestClient  # noqa: E402

from hyperkvasir.label.review import create_app, open_session  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def work(tmp_path: Path, monkeypatch) -> Path:
    """A work dir outside the tree (as --work-dir sets it): the twin stays as released."""
    from hyperkvasir.outputs import WORK_DIR_VARIABLE

    place = tmp_path / "work"
    monkeypatch.setenv(WORK_DIR_VARIABLE, str(place))
    return place


def _client(root: Path, **options) -> tuple[TestClient, object]:
    session = open_session(root, queue=options.get("queue"), results=None, reviewer="alice", neighbours=0)
    return TestClient(create_app(session, 0)), session


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_decisions_are_appended_with_every_column(twin_copy: Path, work: Path) -> None:
    client, session = _client(twin_copy)
    first = client.get("/api/item/0").json()
    second = client.get("/api/item/1").json()
    assert first["given"] and first["file"].startswith("labeled-images/") and second["total"] == len(session.items)
    assert client.post("/api/decide", json={"file": first["file"], "decision": "relabel", "new": "polyps"}).is_success
    assert client.post("/api/decide", json={"file": second["file"], "decision": "exclude"}).is_success
    rows = _rows(work / "reviews.csv")
    assert list(rows[0]) == list(REVIEW_COLUMNS)
    assert [(r["file"], r["old"], r["new"], r["decision"], r["reviewer"]) for r in rows] == [
        (first["file"], first["given"], "polyps", "relabel", "alice"),
        (second["file"], second["given"], "", "exclude", "alice"),
    ]
    assert client.get("/api/item/0").json()["decision"] == "relabel"
    assert not (twin_copy / ".hyperkvasir").exists()  # the release is never written


@pytest.mark.parametrize(
    "body", [{"decision": "relabel", "new": "no-such-class"}, {"decision": "delete"}, {"decision": "relabel"}]
)
def test_bad_decisions_are_refused_and_write_nothing(twin_copy: Path, work: Path, body: dict) -> None:
    client, session = _client(twin_copy)
    answer = client.post("/api/decide", json={"file": session.items[0].file, **body})
    assert answer.status_code == 400 and answer.json()["detail"]
    assert not (work / "reviews.csv").exists()


def test_only_the_queue_can_be_decided_and_only_json_is_read(twin_copy: Path, work: Path) -> None:
    client, session = _client(twin_copy)
    assert client.post("/api/decide", json={"file": "../outside.jpg", "decision": "keep"}).status_code == 400
    form = client.post("/api/decide", data={"file": session.items[0].file, "decision": "keep"})  # a cross-site form
    assert form.status_code == 422 and not (work / "reviews.csv").exists()


def test_images_are_served_only_from_inside_the_tree(twin_copy: Path, work: Path, tmp_path: Path) -> None:
    client, session = _client(twin_copy)
    inside = session.items[0].file
    assert client.get("/image", params={"path": inside}).content == (twin_copy / inside).read_bytes()
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"secret")
    for path in (
        "../../etc/passwd",
        "/etc/passwd",
        f"{inside}/../../../../etc/passwd",
        str(secret),
        "labeled-images/../../secret.jpg",
    ):
        assert client.get("/image", params={"path": path}).status_code == 404, path
    linked = session.items[1].file  # an indexed image replaced by a link leaving the tree
    (twin_copy / linked).unlink()
    (twin_copy / linked).symlink_to(secret)
    assert client.get("/image", params={"path": linked}).status_code == 404


def test_requests_for_another_host_are_refused(twin_copy: Path, work: Path) -> None:
    client, _ = _client(twin_copy)
    assert client.get("/", headers={"host": "attacker.example"}).status_code == 400  # DNS rebinding
    page = client.get("/", headers={"host": "127.0.0.1:8765"}).text
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # nothing from the net


def test_the_page_shows_names_as_text(twin_copy: Path, work: Path) -> None:
    session = open_session(twin_copy, queue=None, results=None, reviewer="<script>alert(1)</script>", neighbours=0)
    page = TestClient(create_app(session, 0)).get("/").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_queue_csv_names_images_of_the_tree(twin_copy: Path, work: Path, tmp_path: Path) -> None:
    from hyperkvasir.data.index import build_index

    manifest = build_index(twin_copy).to_pylist()
    labeled = next(r for r in manifest if r["part"] == "labeled")
    unlabeled = next(r for r in manifest if r["part"] == "unlabeled")
    queue = tmp_path / "issues.csv"
    queue.write_text(
        f"file,given,suggested,score,reason\n{Path(labeled['path']).name},x,polyp,0.9,conflict\n"
        f"{unlabeled['path']},,,,\n"
    )
    client, session = _client(twin_copy, queue=queue)
    first, second = client.get("/api/item/0").json(), client.get("/api/item/1").json()
    assert (first["file"], first["suggested"], first["score"]) == (labeled["path"], "polyps", 0.9)
    assert first["given"] != "x"  # the tree's label, not the CSV's
    assert second["given"] is None and client.get("/api/item/2").status_code == 404


def test_a_to_label_csv_is_a_queue(twin_copy: Path, work: Path, tmp_path: Path) -> None:
    from hyperkvasir.data.index import build_index
    from hyperkvasir.label.queue import FIELDS

    unlabeled = next(r["path"] for r in build_index(twin_copy).to_pylist() if r["part"] == "unlabeled")
    queue = tmp_path / "to-label.csv"
    row = {"rank": 1, "file": unlabeled, "predicted": "polyps", "probability": 0.4, "uncertainty": 0.7}
    queue.write_text(",".join(FIELDS) + "\n" + ",".join(str(row.get(f, "")) for f in FIELDS) + "\n")
    client, _ = _client(twin_copy, queue=queue)
    item = client.get("/api/item/0").json()
    assert (item["file"], item["given"], item["suggested"], item["score"]) == (unlabeled, None, "polyps", 0.7)
    assert client.post("/api/decide", json={"file": unlabeled, "decision": "relabel", "new": "polyp"}).is_success
    assert _rows(work / "reviews.csv")[0]["new"] == "polyps"  # any of a class's names, stored as its folder name


def test_results_give_the_label_issues_and_the_model_top_classes(
    tiny_twin, tiny_bench: Path, tmp_path: Path, monkeypatch
) -> None:
    from hyperkvasir.label.issues import label_issues
    from hyperkvasir.outputs import WORK_DIR_VARIABLE

    monkeypatch.setenv(WORK_DIR_VARIABLE, str(tmp_path / "work"))
    session = open_session(tiny_twin.root, queue=None, results=tiny_bench, reviewer="alice", neighbours=0)
    issues = label_issues(tiny_twin.root, tiny_bench)
    assert [item.file for item in session.items] == [row["file"] for row in issues]
    shown = TestClient(create_app(session, 0)).get("/api/item/0").json()
    assert shown["suggested"] == issues[0]["suggested"] and len(shown["top"]) == 5
    probabilities = [t["probability"] for t in shown["top"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6


@pytest.mark.parametrize(
    "content, code, text",
    [
        ("file,score\nlabeled-images/none.jpg,1\n", 1, "no image of this tree"),
        ("name,score\nx.jpg,1\n", 1, "no 'file' column"),
        ("file,score\n{first},high\n", 1, "score 'high'"),
        ("file,suggested\n{first},no-such-class\n", 1, "suggested"),
        ("file\n", 1, "queue is empty"),
    ],
)
def test_cli_refuses_a_bad_queue(twin_copy: Path, work: Path, tmp_path: Path, capsys, content, code, text) -> None:
    from hyperkvasir.data.index import build_index

    first = next(r["path"] for r in build_index(twin_copy).to_pylist() if r["part"] == "labeled")
    queue = tmp_path / "queue.csv"
    queue.write_text(content.format(first=first))
    assert main(["review", str(twin_copy), "--queue", str(queue), "--port", "0", "--neighbours", "0"]) == code
    error = capsys.readouterr().err
    assert text in error and len(error.strip().splitlines()) == 1 and "Traceback" not in error


def test_cli_refuses_a_taken_port_and_other_hosts(twin_copy: Path, work: Path, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["review", str(twin_copy), "--port", str(port)]) == 2
        assert f"--port {port}" in capsys.readouterr().err
    assert main(["review", str(twin_copy), "--host", "0.0.0.0"]) == 2
    assert "--host" in capsys.readouterr().err
    assert main(["review", str(twin_copy), "--port", "70000"]) == 2
    assert main(["benchmark", str(twin_copy), "--task", "segment", "--reviews", "reviews.csv"]) == 2  # classify only
    assert main(["review", str(twin_copy), "--reviewer", "eve\nfile,old", "--port", "0"]) == 2  # one row per line
    assert "--reviewer" in capsys.readouterr().err


def test_without_the_review_extra_the_command_names_it(twin_copy: Path, work: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if `pip install 'hyperkvasir[review]'` was not run
    assert main(["review", str(twin_copy), "--port", "0"]) == 2
    assert "pip install 'hyperkvasir[review]'" in capsys.readouterr().err


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"

    def write(who: str) -> None:
        for n in range(50):
            append_review(path, review_row(f"labeled-images/x/{who}-{n}.jpg", "polyps", "relabel", "cecum", who))

    threads = [threading.Thread(target=write, args=(name,)) for name in ("a", "b", "c", "d")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = read_reviews(path)
    assert len(rows) == 200 and path.read_text().count("file,old,new") == 1


def test_a_full_disk_leaves_no_half_row(small_disk) -> None:
    disk = small_disk("16k")
    path = disk / "reviews.csv"
    append_review(path, review_row("labeled-images/a.jpg", "polyps", "keep", None, "alice"))
    with pytest.raises(OSError):
        for n in range(2000):
            append_review(path, review_row(f"labeled-images/{'x' * 200}-{n}.jpg", "polyps", "keep", None, "alice"))
    rows = read_reviews(path)  # every row whole: the failed one was cut back off
    assert rows[0].file == "labeled-images/a.jpg" and path.read_text().endswith("\n")


def test_a_decision_that_cannot_be_saved_says_so(twin_copy: Path, small_disk, monkeypatch) -> None:
    from hyperkvasir.outputs import WORK_DIR_VARIABLE

    disk = small_disk("64k")
    monkeypatch.setenv(WORK_DIR_VARIABLE, str(disk))
    client, session = _client(twin_copy)
    _fill(disk)
    answer = client.post("/api/decide", json={"file": session.items[0].file, "decision": "keep"})
    assert answer.status_code == 507 and "not saved" in answer.json()["detail"]
    assert read_reviews(disk / "reviews.csv") == []  # created empty: no half row, and the app starts again
    assert open_session(twin_copy, queue=None, results=None, reviewer="alice", neighbours=0).decisions == {}


def _fill(disk: Path) -> None:
    """Fill a small disk to the last byte."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- --reviews in training
def _fold_files(root: Path) -> dict[str, list[str]]:
    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.classify.data import ClassifyData

    return ClassifyData(ClassifyConfig(root=str(root), cache=False, workers=0)).fold_subsets


def _reviews(root: Path, path: Path, names: dict[str, str], decision: str = "relabel", new: str = "polyps") -> None:
    from hyperkvasir.data.index import build_index

    rows = {Path(r["path"]).name: r for r in build_index(root).to_pylist() if r["part"] == "labeled"}
    for name in names.values():
        append_review(path, review_row(rows[name]["path"], rows[name]["class"], decision, new, "alice"))


def _data(root: Path, reviews: Path | None, on_test: bool = False, sha256: str | None = None):
    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.classify.data import ClassifyData

    data = ClassifyData(
        ClassifyConfig(
            root=str(root),
            cache=False,
            workers=0,
            input_size=32,
            reviews_sha256=sha256,
            reviews=str(reviews) if reviews else None,
            reviews_on_test=on_test,
        )
    )
    data.setup()
    return data


def _label(dataset, name: str) -> int | None:
    return dataset.labels[dataset.names.index(name)] if name in dataset.names else None


@pytest.mark.parametrize("on_test", [False, True])
def test_a_relabel_changes_training_and_validation_never_test_unless_asked(
    tiny_twin, tmp_path: Path, on_test: bool
) -> None:
    from hyperkvasir.data.taxonomy import lookup

    polyps = lookup("polyps").index
    names = _not_polyps(tiny_twin.root, _fold_files(tiny_twin.root), polyps)
    reviews = tmp_path / "reviews.csv"
    _reviews(tiny_twin.root, reviews, names)
    plain, reviewed = _data(tiny_twin.root, None), _data(tiny_twin.root, reviews, on_test)
    for part, dataset in (("train", "train_set"), ("val", "val_set"), ("test", "test_set")):
        before = _label(getattr(plain, dataset), names[part])
        after = _label(getattr(reviewed, dataset), names[part])
        assert before != polyps
        assert after == (polyps if part != "test" or on_test else before), part
    record = reviewed.reviews_report
    assert record["relabeled"] == {"train": 1, "val": 1, "test": int(on_test)}
    assert record["test_labels"] == ("reviewed" if on_test else "as released") and len(record["sha256"]) == 64


def _not_polyps(root: Path, subsets: dict, polyps: int) -> dict[str, str]:
    from hyperkvasir.data.index import build_index
    from hyperkvasir.data.taxonomy import lookup

    label = {
        Path(r["path"]).name: lookup(r["class"]).index for r in build_index(root).to_pylist() if r["part"] == "labeled"
    }
    return {part: next(n for n in subsets[part] if label[n] != polyps) for part in ("train", "val", "test")}


def test_an_exclusion_leaves_training_and_validation_only(tiny_twin, tmp_path: Path) -> None:
    from hyperkvasir.data.taxonomy import lookup

    names = _not_polyps(tiny_twin.root, _fold_files(tiny_twin.root), lookup("polyps").index)
    reviews = tmp_path / "reviews.csv"
    _reviews(tiny_twin.root, reviews, names, decision="exclude", new="")
    data = _data(tiny_twin.root, reviews)
    assert names["train"] not in data.train_set.names and names["val"] not in data.val_set.names
    assert names["test"] in data.test_set.names
    assert data.reviews_report["excluded"] == {"train": 1, "val": 1, "test": 0}


def test_train_records_the_reviews_in_provenance(tiny_twin, tmp_path: Path) -> None:
    from hyperkvasir.data.taxonomy import lookup

    names = _not_polyps(tiny_twin.root, _fold_files(tiny_twin.root), lookup("polyps").index)
    reviews = tmp_path / "reviews.csv"
    _reviews(tiny_twin.root, reviews, names)
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "classify",
                str(tiny_twin.root),
                "--out",
                str(run),
                "--model",
                "test_efficientnet",
                "--input-size",
                "32",
                "--epochs",
                "1",
                "--workers",
                "0",
                "--no-pretrained",
                "--reviews",
                str(reviews),
            ]
        )
        == 0
    )
    metrics = json.loads((run / "metrics-test.json").read_text())
    record = metrics["provenance"]["reviews"]
    assert record["relabeled"]["train"] == 1 and record["on_test"] is False and record["rows"] == 3
    assert metrics["test_labels"] == "as released"


@pytest.mark.parametrize(
    "problem, code, text",
    [
        ("stale", 1, "was reviewed as"),
        ("foreign", 1, "is not in the tree"),
        ("columns", 1, "no file"),
        ("decision", 1, "unknown decision"),
        ("missing", 2, "no such reviews file"),
        ("on-test-alone", 2, "--reviews FILE"),
    ],
)
def test_train_refuses_bad_reviews_before_any_run_folder(
    tiny_twin, tmp_path: Path, capsys, problem, code, text
) -> None:
    from hyperkvasir.data.index import build_index

    row = next(r for r in build_index(tiny_twin.root).to_pylist() if r["part"] == "labeled")
    other = "cecum" if row["class"] != "cecum" else "polyps"
    reviews = tmp_path / "reviews.csv"
    body = {
        "stale": f"{row['path']},{other},polyps,relabel,t,a",
        "foreign": "labeled-images/elsewhere/x.jpg,polyps,cecum,relabel,t,a",
        "decision": f"{row['path']},{row['class']},,delete,t,a",
    }
    header = "file,old,new,decision,time,reviewer\n" if problem != "columns" else "name,old\n"
    if problem != "missing":
        reviews.write_text(header + body.get(problem, "x,y") + "\n")
    argv = [
        "train",
        "classify",
        str(tiny_twin.root),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "test_efficientnet",
        "--input-size",
        "32",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--no-pretrained",
    ]
    argv += ["--reviews-on-test"] if problem == "on-test-alone" else ["--reviews", str(reviews)]
    assert main(argv) == code
    error = capsys.readouterr().err
    assert text in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------- the browser
def _start(root: Path, work: Path) -> tuple[subprocess.Popen, str]:
    """The real command on a free port; its URL from the line it prints."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hyperkvasir",
            "--work-dir",
            str(work),
            "review",
            str(root),
            "--port",
            "0",
            "--neighbours",
            "0",
            "--reviewer",
            "carol",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = process.stdout.readline()
    if "http://127.0.0.1:" not in line:
        process.kill()
        pytest.fail(f"the app did not start: {line}{process.stderr.read()}")
    return process, line[line.index("http://") :].split()[0]


def test_browser_relabels_with_the_keyboard(tiny_twin, tmp_path: Path) -> None:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no system Chromium at {CHROMIUM} (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    work = tmp_path / "work"
    process, url = _start(tiny_twin.root, work)
    try:
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("document.getElementById('file').textContent.length > 0")
            shown = page.text_content("#file")
            page.keyboard.press("r")
            page.keyboard.press("n")  # N: polyps
            page.wait_for_function(f"document.getElementById('file').textContent !== {json.dumps(shown)}")
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    rows = _rows(work / "reviews.csv")
    assert [(r["file"], r["new"], r["decision"], r["reviewer"]) for r in rows] == [
        (shown, "polyps", "relabel", "carol")
    ]


def test_a_reviews_file_changed_after_the_run_began_is_refused(tiny_twin, tmp_path: Path, capsys) -> None:
    """A resumed run (or a benchmark's next fold) must not train on other decisions than the run began with."""
    from hyperkvasir.data.taxonomy import lookup

    names = _not_polyps(tiny_twin.root, _fold_files(tiny_twin.root), lookup("polyps").index)
    reviews = tmp_path / "reviews.csv"
    _reviews(tiny_twin.root, reviews, {"train": names["train"]})
    run = tmp_path / "run"
    argv = [
        "train",
        "classify",
        str(tiny_twin.root),
        "--out",
        str(run),
        "--model",
        "test_efficientnet",
        "--input-size",
        "32",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--no-pretrained",
        "--reviews",
        str(reviews),
    ]
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["reviews"] == str(reviews.resolve()) and len(config["reviews_sha256"]) == 64
    _reviews(tiny_twin.root, reviews, {"val": names["val"]})
    assert main(argv + ["--resume"]) == 2
    assert "reviews_sha256" in capsys.readouterr().err
    with pytest.raises(DataError, match="changed since this run started"):  # the library, without the CLI
        _data(tiny_twin.root, reviews, sha256=config["reviews_sha256"])


def test_a_row_cut_short_by_a_killed_writer_is_not_glued_to_the_next(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    append_review(path, review_row("labeled-images/a.jpg", "polyps", "keep", None, "alice"))
    with path.open("a") as handle:
        handle.write("labeled-images/b.jpg,pol")  # the process was killed here
    append_review(path, review_row("labeled-images/c.jpg", "polyps", "exclude", None, "alice"))
    assert [r.file for r in read_reviews(path)] == ["labeled-images/a.jpg", "labeled-images/c.jpg"]


def test_reviews_saved_by_a_spreadsheet_are_read(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text(
        '\ufefffile,old,new,decision,time,reviewer\n"a,b.jpg",polyps,cecum,relabel,t,"o\'neil, ""x"""\n',
        encoding="utf-8",
    )
    (review,) = read_reviews(path)
    assert (review.file, review.new, review.reviewer) == ("a,b.jpg", "cecum", 'o\'neil, "x"')
