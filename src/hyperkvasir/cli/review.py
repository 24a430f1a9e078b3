"""``review``: the local web app to decide on doubtful labels and on the images worth labeling next."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer

from hyperkvasir.cli.common import _log_to_stderr, app
from hyperkvasir.cli.console import out


@app.command()
def review(
    root: Path = typer.Argument(..., help="Release root (never written: decisions go to the work dir)."),
    queue: Path = typer.Option(
        None,
        help="Queue CSV (label-issues or to-label output: a file column, optionally given, suggested, score, reason).",
    ),
    results: Path = typer.Option(
        None,
        help="A finished benchmark's --out: its label issues are the queue (unless "
        "--queue) and its out-of-fold probabilities are shown.",
    ),
    reviewer: str = typer.Option(None, help="Name written with each decision (default: the login name)."),
    port: int = typer.Option(8765, help="Port on 127.0.0.1 (0: any free port); the app never listens elsewhere."),
    neighbours: int = typer.Option(5, help="Nearest labeled neighbours shown per image (embeddings; 0 = none)."),
) -> int:
    """Step through label issues or the to-label queue in a browser: keys k keep, r + letter relabel, x exclude,
    s skip, arrows move. Decisions are appended to reviews.csv in the work dir; `train`/`benchmark --reviews`
    apply them.

    Example: hyperkvasir review /data/hyper-kvasir --results benchmark --reviewer alice --port 8765
    """
    from hyperkvasir.errors import HyperKvasirError, require_range
    from hyperkvasir.label.review import bind, open_session, require_app_libraries, serve

    require_app_libraries()
    require_range("--port", port, 0, 65535)
    require_range("--neighbours", neighbours, 0, 100)
    name = (reviewer if reviewer is not None else _login()).strip()
    if not name or any(ord(c) < 32 for c in name):
        raise HyperKvasirError(f"--reviewer {reviewer!r}: give a name of printable characters")
    sock = bind(port)  # before the index: a port in use fails at once
    try:
        _log_to_stderr()
        session = open_session(root, queue=queue, results=results, reviewer=name, neighbours=neighbours)
        serve(
            session,
            sock,
            lambda url: out.print(
                f"reviewing {len(session.items)} images at {url} — decisions go to {session.reviews}; Ctrl-C stops"
            ),
        )
    finally:
        sock.close()
    return 0


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"
