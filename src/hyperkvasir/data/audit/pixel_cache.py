"""Pixel evidence of every image (:func:`hyperkvasir.data.pixels.pixel_evidence`), computed from a DCT-scaled
decode once per content hash and kept in ``pixels.parquet`` of the work dir (``ROOT/.hyperkvasir`` unless
``--work-dir``); and the frame marks read from it (ScopeGuide box, Kvasir-SEG's black box)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hyperkvasir.data.pixels import BLACK_BOX_MIN_HEIGHT, SCOPEGUIDE_MIN_SHARE, pixel_evidence
from hyperkvasir.outputs import atomic_write, work_dir
from hyperkvasir.parallel import process_pool

PIXELS_NAME = "pixels.parquet"
_PIXEL_SCHEMA = pa.schema(
    [
        ("sha256", pa.string()),
        ("phash", pa.uint64()),
        ("thumbnail", pa.binary()),
        ("scopeguide", pa.float32()),
        ("black_box", pa.float32()),
        ("pixel_error", pa.string()),
    ]
)


def _pixel_job(path: str) -> dict:
    """Pixel evidence of one file; a read or decode failure is recorded, not raised."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        if not data:
            return {
                "phash": None,
                "thumbnail": None,
                "scopeguide": None,
                "black_box": None,
                "pixel_error": "empty file (0 bytes)",
            }
        return {**pixel_evidence(data), "pixel_error": None}
    except (OSError, SyntaxError, ValueError) as error:
        return {
            "phash": None,
            "thumbnail": None,
            "scopeguide": None,
            "black_box": None,
            "pixel_error": str(error) or type(error).__name__,
        }


def pixel_features(
    root: Path,
    manifest: pa.Table,
    *,
    workers: int | None = None,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> dict[str, dict]:
    """sha256 → pixel evidence for every image (not masks) of the manifest, cached (older caches are redone)."""
    cache_path = work_dir(root) / PIXELS_NAME
    cached: dict[str, dict] = {}
    if cache_path.is_file():
        try:
            table = pq.read_table(cache_path)
            if table.schema.names == _PIXEL_SCHEMA.names:
                cached = {row["sha256"]: row for row in table.to_pylist()}
        except (OSError, pa.ArrowException):
            cached = {}
    todo: dict[str, str] = {}
    for row in manifest.to_pylist():
        if row["kind"] == "image" and row["sha256"] and row["sha256"] not in cached:
            todo.setdefault(row["sha256"], str(root / row["path"]))
    if todo:
        jobs = list(todo.values())
        workers = workers or os.cpu_count() or 1
        with process_pool(workers, len(jobs), minimum=32) as pool:
            results: Iterable[dict] = pool.map(_pixel_job, jobs, chunksize=max(1, min(32, len(jobs) // (workers * 8))))
            results = list(progress(results, len(jobs)) if progress else results)
        for sha, result in zip(todo, results):
            cached[sha] = {"sha256": sha, **result}
        with atomic_write(cache_path) as handle:
            pq.write_table(pa.Table.from_pylist(list(cached.values()), schema=_PIXEL_SCHEMA), handle)
    return cached


def has_scopeguide(features: dict[str, dict], row: dict) -> bool:
    """Whether the manifest ``row``'s image shows the ScopeGuide box."""
    return (features.get(row["sha256"], {}).get("scopeguide") or 0) >= SCOPEGUIDE_MIN_SHARE


def has_black_box(features: dict[str, dict], row: dict) -> bool:
    """Whether the image hides its lower-left corner under a black box (a ScopeGuide frame is not counted)."""
    return (
        not has_scopeguide(features, row)
        and (features.get(row["sha256"], {}).get("black_box") or 0) >= BLACK_BOX_MIN_HEIGHT
    )


def mark_counts(rows: list[dict], features: dict[str, dict]) -> dict:
    """ScopeGuide and black-box counts and shares of ``rows``."""
    scope = sum(1 for r in rows if has_scopeguide(features, r))
    box = sum(1 for r in rows if has_black_box(features, r))
    n = len(rows)
    return {
        "images": n,
        "scopeguide": scope,
        "share": round(scope / n, 4) if n else 0.0,
        "black_box": box,
        "black_box_share": round(box / n, 4) if n else 0.0,
    }
