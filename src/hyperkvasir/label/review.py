"""``hyperkvasir review``: a local web app (FastAPI, one self-contained page) to step through a queue of images —
label issues, the to-label queue, or every labeled image — and decide keep / relabel / exclude / skip.

Decisions are appended to ``reviews.csv`` in the work dir (:mod:`hyperkvasir.data.reviews`); the release is never
written. The app listens on 127.0.0.1 only and answers only requests addressed to it there (a page elsewhere
cannot reach it through DNS rebinding), serves image bytes only of the tree's own indexed images, never through a
link leaving the tree, and loads nothing from the internet. Near duplicates (the audit) and nearest labeled
neighbours (embeddings) are computed in the background, so the first image shows at once.
"""

from __future__ import annotations

import csv
import logging
import math
import socket
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import BaseModel

from hyperkvasir.data.reviews import REVIEW_COLUMNS, REVIEWS_NAME, append_review, decided, read_reviews, review_row
from hyperkvasir.data.taxonomy import CLASSES, lookup
from hyperkvasir.errors import DataError, HyperKvasirError, ReleaseFormatError, UnknownClassError

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
TOP_CLASSES = 5


class DecisionBody(BaseModel):
    """What the page posts for a decision."""

    file: str
    decision: str
    new: str | None = None


@dataclass(frozen=True)
class Item:
    """One image of the queue and why it is there."""

    file: str  # path relative to the root
    given: str | None  # class folder name, None for an unlabeled image
    suggested: str | None = None
    score: float | None = None
    reason: str = ""


def labeled_queue(manifest: list[dict]) -> list[Item]:
    """Every decodable labeled image, class by class: the queue when none is given."""
    rows = sorted((lookup(r["class"]).index, r["path"]) for r in manifest if r["part"] == "labeled" and r["decodes"])
    return [Item(path, CLASSES[index].folder) for index, path in rows]


def csv_queue(path: Path, manifest: list[dict]) -> list[Item]:
    """A queue from a label-issues CSV (``file`` and optionally ``given``, ``suggested``, ``score``, ``reason``) or a
    to-label CSV (``file``, ``predicted``, ``uncertainty``); ``file`` is a path relative to the root or a labeled
    image's file name. The given label is the tree's own, whatever the CSV says: the reviewer decides on what the
    release says."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
            header = rows[0].keys() if rows else []
    except FileNotFoundError:
        raise HyperKvasirError(f"--queue {path}: no such file; give a label-issues or to-label CSV") from None
    except IsADirectoryError:
        raise HyperKvasirError(f"--queue {path} is a folder; give a label-issues or to-label CSV") from None
    except (UnicodeDecodeError, csv.Error):
        raise ReleaseFormatError(path, "not a UTF-8 CSV; give a label-issues or to-label CSV") from None
    if "file" not in header:
        raise ReleaseFormatError(
            path,
            "no 'file' column (a queue CSV has file and optionally given, suggested, score, reason)"
            if rows
            else "no rows; the queue is empty",
            line=1,
        )
    by_path = {r["path"]: r for r in manifest if r["kind"] == "image"}
    by_name = {Path(r["path"]).name: r for r in manifest if r["part"] == "labeled"}
    items = []
    for line, row in enumerate(rows, start=2):
        found = by_path.get((row["file"] or "").strip()) or by_name.get((row["file"] or "").strip())
        if found is None:
            raise DataError(
                f"{path}:{line}: {row['file']!r} is no image of this tree; give paths relative to ROOT "
                f"(e.g. labeled-images/…/x.jpg) from a queue made for it"
            )
        suggested, score = row.get("suggested") or row.get("predicted"), row.get("score") or row.get("uncertainty")
        reason = (row.get("reason") or ("to label" if "uncertainty" in row else "")).strip()
        items.append(
            Item(
                found["path"],
                lookup(found["class"]).folder if found["part"] == "labeled" else None,
                _class_or_none(path, line, suggested),
                _score(path, line, score),
                reason,
            )
        )
    return items


def _class_or_none(path: Path, line: int, name: str | None) -> str | None:
    if not name or not name.strip():
        return None
    try:
        return lookup(name).folder
    except UnknownClassError as error:
        raise ReleaseFormatError(path, f"suggested: {error}", line=line) from None


def _score(path: Path, line: int, value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        score = float(value)
    except ValueError:
        score = math.nan
    if not math.isfinite(score):
        raise ReleaseFormatError(path, f"score {value!r} is not a number", line=line)
    return score


def results_queue(root: Path, results: Path) -> tuple[list[Item], dict[str, list[float]]]:
    """The label issues of a benchmark (most doubtful first) and every scored image's out-of-fold probabilities."""
    from hyperkvasir.label.issues import out_of_fold, rank_issues

    scored = out_of_fold(root, results)
    items = [
        Item(r["file"], r["given"], r.get("suggested"), r.get("score"), r.get("reason", ""))
        for r in rank_issues(root, scored)
    ]
    probabilities = {file: [float(p) for p in row] for file, row in zip(scored.files, scored.probabilities)}
    return items, probabilities


class ReviewSession:
    """The queue, what is known about each image, and the reviews file decisions go to."""

    def __init__(
        self,
        root: Path,
        items: list[Item],
        reviews: Path,
        reviewer: str,
        manifest: list[dict],
        *,
        probabilities: dict[str, list[float]] | None = None,
        neighbours: int = 5,
    ) -> None:
        from hyperkvasir.data.layout import Release

        if not items:
            raise DataError(f"{root}: the queue is empty; nothing to review")
        self.root, self.items, self.reviews, self.reviewer = root, items, reviews, reviewer
        self.release = Release(root)
        self.classes = {r["path"]: r["class"] for r in manifest if r["kind"] == "image"}
        self.parts = {r["path"]: r["part"] for r in manifest if r["kind"] == "image"}
        self.probabilities = probabilities or {}
        self.position = {item.file: i for i, item in enumerate(items)}
        self.decisions = {file: review.decision for file, review in decided(self._read()).items()}
        self.duplicates: dict[str, list[str]] | None = None
        self.neighbours: dict[str, list[tuple[str, float]]] | None = None if neighbours else {}
        self.neighbours_off = not neighbours
        self.context_error = ""
        self.context = threading.Thread(target=self._find_context, args=(neighbours,), daemon=True)

    def _read(self) -> list:
        return read_reviews(self.reviews) if self.reviews.is_file() else []

    def _find_context(self, k: int) -> None:
        """Near duplicates from the audit, then the nearest labeled neighbours by embedding (when ``k``)."""
        from hyperkvasir.data.audit import audit

        try:
            groups = audit(self.root).duplicate_sets()
            self.duplicates = {file: [f for f in g.files if f != file] for g in groups for file in g.files}
            if k:
                from hyperkvasir.label.neighbours import similar

                self.neighbours = similar(self.root, [item.file for item in self.items], k)
        except HyperKvasirError as error:
            self.context_error = str(error)
        except Exception as error:  # noqa: BLE001  (the page says what is missing; reviewing goes on)
            log.warning("near duplicates or neighbours unavailable: %s", error)
            self.context_error = f"{type(error).__name__}: {error}"

    def item(self, index: int) -> dict:
        """What the page shows for the queue's ``index``-th image."""
        item = self.items[index]
        probabilities = self.probabilities.get(item.file)
        top = (
            sorted(((CLASSES[i].folder, p) for i, p in enumerate(probabilities)), key=lambda c: -c[1])[:TOP_CLASSES]
            if probabilities
            else []
        )
        duplicates = None if self.duplicates is None else [(p, None) for p in self.duplicates.get(item.file, [])]
        neighbours = None if self.neighbours is None else self.neighbours.get(item.file, [])
        return {
            **asdict(item),
            "index": index,
            "total": len(self.items),
            "decision": self.decisions.get(item.file),
            "top": [{"class": c, "letter": lookup(c).letter, "probability": p} for c, p in top],
            "duplicates": self._described(duplicates),
            "neighbours": self._described(neighbours),
            "neighbours_off": self.neighbours_off,
            "context_error": self.context_error,
        }

    def _described(self, found: list[tuple[str, float | None]] | None) -> list[dict] | None:
        """Images beside the reviewed one with their class (None while they are still being found)."""
        if found is None:
            return None
        return [
            {"file": path, "class": self.classes.get(path), "part": self.parts.get(path), "distance": distance}
            for path, distance in found
        ]

    def decide(self, file: str, decision: str, new: str | None) -> dict:
        """Append the decision on ``file`` (an image of the queue) to the reviews file."""
        if file not in self.position:
            raise HyperKvasirError(f"{file} is not in the review queue")
        review = review_row(file, self.items[self.position[file]].given, decision, new, self.reviewer)
        append_review(self.reviews, review)  # under the file's own lock: tabs and other apps may write too
        if decision != "skip":
            self.decisions[file] = decision
        return {column: getattr(review, column) for column in REVIEW_COLUMNS}

    def image(self, path: str) -> Path | None:
        """The file behind an image URL: one of the tree's indexed images, inside the tree, else None."""
        if path not in self.classes:
            return None
        target = self.release.root / path
        return target if target.is_file() and self.release.inside(target) else None


def create_app(session: ReviewSession, port: int):
    """The FastAPI app of a session, answering only requests addressed to 127.0.0.1/localhost on ``port``."""
    from fastapi import FastAPI, HTTPException
    from fastapi.middleware.trustedhost import TrustedHostMiddleware
    from fastapi.responses import FileResponse, HTMLResponse

    from hyperkvasir.label.review_page import page

    app = FastAPI(title="hyperkvasir review", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=[HOST, "localhost", "testserver"])
    classes = [{"letter": c.letter, "class": c.folder} for c in CLASSES]

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page(classes, session.reviewer, str(session.reviews))

    @app.get("/api/item/{index}")
    def item(index: int) -> dict:
        if not 0 <= index < len(session.items):
            raise HTTPException(404, f"no item {index}; the queue has {len(session.items)}")
        return session.item(index)

    @app.post("/api/decide")
    def decide(body: DecisionBody) -> dict:
        try:
            return session.decide(body.file, body.decision, body.new)
        except HyperKvasirError as error:
            raise HTTPException(400, str(error)) from None
        except OSError as error:  # a full disk, a work dir gone read-only: the reviewer must know it was not saved
            log.error("%s: %s", session.reviews, error.strerror)
            raise HTTPException(
                507,
                f"not saved: {session.reviews}: {error.strerror}; free space or fix the "
                f"permissions there, then decide again",
            ) from None

    @app.get("/image")
    def image(path: str) -> FileResponse:
        target = session.image(path)
        if target is None:
            raise HTTPException(404, "no such image in the tree")
        return FileResponse(target, headers={"Cache-Control": "private, max-age=3600"})

    return app


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (port 0: any free one), or one line saying the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart right after a stop; never two listeners
    try:
        sock.bind((HOST, port))
    except OSError as error:
        sock.close()
        raise HyperKvasirError(
            f"--port {port}: cannot listen on {HOST}:{port} ({error.strerror}); choose another "
            f"port or stop what uses it"
        ) from None
    sock.listen(64)
    return sock


def require_app_libraries() -> None:
    """The app's libraries are an optional extra: one line naming it when they are missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise HyperKvasirError(f"review needs {error.name}: pip install 'hyperkvasir[review]'") from None


def serve(session: ReviewSession, sock: socket.socket, announce) -> None:
    """Serve until stopped (Ctrl-C); ``announce(url)`` once the socket is listening."""
    import uvicorn

    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(session, port), log_level="warning", access_log=False))
    session.context.start()
    announce(f"http://{HOST}:{port}/")
    server.run(sockets=[sock])


def open_session(
    root: Path, *, queue: Path | None, results: Path | None, reviewer: str, neighbours: int
) -> ReviewSession:
    """A session over ``root``'s queue (``queue`` CSV, the label issues of ``results``, or every labeled image),
    writing to ``reviews.csv`` in its work dir."""
    from hyperkvasir.data.index import build_index, require_work_dir

    manifest = build_index(root).to_pylist()
    probabilities = None
    if results is not None:
        items, probabilities = results_queue(root, results)
        if queue is not None:
            items = csv_queue(queue, manifest)
    else:
        items = csv_queue(queue, manifest) if queue is not None else labeled_queue(manifest)
    reviews = require_work_dir(root) / REVIEWS_NAME
    return ReviewSession(root, items, reviews, reviewer, manifest, probabilities=probabilities, neighbours=neighbours)


__all__ = ["Item", "ReviewSession", "open_session", "create_app", "bind", "serve", "labeled_queue", "csv_queue"]
