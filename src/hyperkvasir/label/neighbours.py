"""Nearest neighbours by embedding: exact cosine distance with numpy, in blocks (``bench/label_loop.py`` measured
an index such as faiss against it; see ``docs`` of the labeling loop)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hyperkvasir.errors import DataError, HyperKvasirError

BLOCK = 4096  # query rows per matrix product: bounds the memory of a distance block to BLOCK × N floats


def nearest(
    queries: np.ndarray, vectors: np.ndarray, k: int, *, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine distances) of the ``k`` nearest rows of ``vectors`` (unit rows) for each unit row of
    ``queries``, nearest first; ``exclude[i]`` (≥ 0) is a row never returned for query ``i`` (the query itself),
    so a query may get fewer than ``k`` (index −1, distance inf, at the end)."""
    k = min(k, len(vectors))
    indices = np.full((len(queries), k), -1, np.int64)
    distances = np.full((len(queries), k), np.inf, np.float32)
    if k == 0:
        return indices, distances
    for start in range(0, len(queries), BLOCK):
        block = 1.0 - queries[start : start + BLOCK] @ vectors.T
        if exclude is not None:
            rows = np.flatnonzero(exclude[start : start + BLOCK] >= 0)
            block[rows, exclude[start : start + BLOCK][rows]] = np.inf
        top = np.argpartition(block, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(top, np.take_along_axis(block, top, 1).argsort(1, kind="stable"), 1)
        found = np.take_along_axis(block, top, 1)
        indices[start : start + BLOCK] = np.where(np.isinf(found), -1, top)
        distances[start : start + BLOCK] = np.clip(found, 0.0, None)
    return indices, distances


def relative_query(root: str | Path, query: str) -> str:
    """A query as a path relative to ``root``: given relative to it, or as a path below it."""
    path = Path(query)
    if not path.is_absolute() and not (Path(root) / path).exists() and path.exists():
        path = path.absolute()  # relative to the working folder, not to the root
    if path.is_absolute():
        real, tree = os.path.realpath(path), os.path.realpath(root)
        if os.path.commonpath([real, tree]) != tree:
            raise HyperKvasirError(
                f"--query {query}: not a file of the tree {root}; give a path relative to ROOT "
                f"(e.g. labeled-images/…/x.jpg) or below it"
            )
        return Path(os.path.relpath(real, tree)).as_posix()
    inside = os.path.normpath(path)
    if inside == ".." or inside.startswith(f"..{os.sep}"):
        raise HyperKvasirError(f"--query {query}: not a file of the tree {root}; give a path relative to ROOT")
    return Path(inside).as_posix()


def similar(
    root: str | Path,
    queries: list[str],
    k: int,
    *,
    parts: tuple[str, ...] = ("labeled",),
    checkpoint: str | Path | None = None,
    size: int | None = None,
    workers: int = 0,
    frames: str | Path | None = None,
    progress=None,
) -> dict[str, list[tuple[str, float]]]:
    """For each query (an image of any part of the tree, or a video frame named as ``label/frames.py`` says), its
    ``k`` nearest images of ``parts`` (never itself), as (path relative to ``root`` or frame name, cosine
    distance), nearest first. ``frames`` (the folder of ``hyperkvasir video frames``) is needed when ``parts`` or
    a query is a video frame."""
    from hyperkvasir.data.index import build_index
    from hyperkvasir.errors import require_range
    from hyperkvasir.label.embed import embed_parts
    from hyperkvasir.label.frames import is_frame_name

    require_range("-k", k, 1, None)
    if not queries:
        raise HyperKvasirError("--query: give at least one image of the tree")
    part_of = {r["path"]: r["part"] for r in build_index(root).to_pylist() if r["kind"] == "image"}
    wanted = [q if is_frame_name(q) else relative_query(root, q) for q in queries]
    absent = [q for q, w in zip(queries, wanted) if w not in part_of and not is_frame_name(w)]
    if absent:
        raise HyperKvasirError(
            f"--query {absent[0]}: no such image in {root}; give an image path relative to ROOT "
            f"(e.g. labeled-images/…/x.jpg)"
        )
    searched = tuple(dict.fromkeys((*parts, *("videos" if is_frame_name(w) else part_of[w] for w in wanted))))
    if "videos" in searched and frames is None:
        raise HyperKvasirError(
            "--part videos and video-frame queries need --frames DIR, the folder of `hyperkvasir video frames`"
        )
    if frames is not None and "videos" not in searched:
        raise HyperKvasirError(f"--frames {frames}: used only with --part videos or a video-frame query; drop it")
    found = embed_parts(
        root, parts=searched, checkpoint=checkpoint, size=size, workers=workers, frames=frames, progress=progress
    )
    position = {path: i for i, path in enumerate(found.paths)}
    unknown = [
        q for q, w in zip(queries, wanted) if is_frame_name(w) and w not in position and w not in found.undecodable
    ]
    if unknown:
        raise HyperKvasirError(
            f"--query {unknown[0]}: no such frame in {frames}; name a frame as `similar` prints "
            f"them (VIDEO#frame=NNNNNN)"
        )
    broken = [q for q, w in zip(queries, wanted) if w not in position]
    if broken:
        raise DataError(f"--query {broken[0]}: the image does not decode, so it has no embedding; choose another")
    candidates = np.asarray([i for i, p in enumerate(found.parts) if p in parts], np.int64)
    among = {int(row): n for n, row in enumerate(candidates)}
    exclude = np.asarray([among.get(position[w], -1) for w in wanted], np.int64)
    indices, distances = nearest(
        found.vectors[[position[w] for w in wanted]], found.vectors[candidates], k + 1, exclude=exclude
    )  # one more: the query itself may be among the candidates
    return {
        w: [(found.paths[candidates[i]], float(d)) for i, d in zip(row, dist) if i >= 0][:k]
        for w, row, dist in zip(wanted, indices, distances)
    }
