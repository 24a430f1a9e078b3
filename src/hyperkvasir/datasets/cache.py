"""A pre-resized uint8 cache of square images, memory-mapped, built once per tree and size.

``ROOT/.hyperkvasir/cache/square-<S>.npy`` holds an (N, S, S, 3) uint8 array (the output of
:func:`~hyperkvasir.data.imaging.load_square`) and ``square-<S>.json`` the relative path and SHA-256 of each
row. It covers every decodable image of the labeled part, so all folds and runs share it; it is rebuilt when
the manifest's hashes no longer match, and written atomically (temp files, then rename). Its disk blocks are
reserved before it is filled, so a full disk is one line naming the work dir, never a bus error.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np

from hyperkvasir.data.imaging import ImageDecodeError, load_square
from hyperkvasir.data.index import preparing
from hyperkvasir.errors import DataError
from hyperkvasir.outputs import atomic_write, work_dir
from hyperkvasir.parallel import process_pool


def cache_paths(root: Path, size: int, mask_corners: bool = False) -> tuple[Path, Path]:
    base = work_dir(root) / "cache" / f"square-{size}{'-corner-masked' if mask_corners else ''}"
    return base.with_suffix(".npy"), base.with_suffix(".json")


def _load(job: tuple[str, int, bool]) -> np.ndarray | None:
    try:
        return load_square(job[0], job[1], mask_corners=job[2])
    except ImageDecodeError:
        return None


class SquareCache:
    """Row lookup by relative path into the memory-mapped array."""

    def __init__(self, array: np.ndarray, rows: dict[str, int]) -> None:
        self.array = array
        self.row = rows

    def __contains__(self, relpath: str) -> bool:
        return relpath in self.row

    def __getitem__(self, relpath: str) -> np.ndarray:
        return self.array[self.row[relpath]]


def open_cache(
    root: Path,
    entries: list[tuple[str, str]],
    size: int,
    *,
    workers: int | None = None,
    progress=None,
    mask_corners: bool = False,
) -> SquareCache:
    """The cache for ``entries`` = [(relpath, sha256)], reused when it already holds them unchanged."""
    data_path, index_path = cache_paths(root, size, mask_corners)
    wanted = dict(entries)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    with preparing(data_path):  # one process builds the cache; the other ranks wait, then map it
        if data_path.is_file() and index_path.is_file():
            index = json.loads(index_path.read_text())
            known = {**index.get("undecodable", {}), **index["sha256"]}  # a file that failed to decode stays failed
            if all(known.get(path) == sha for path, sha in wanted.items()):
                return SquareCache(np.load(data_path, mmap_mode="r"), index["rows"])
        return _build(root, sorted(wanted.items()), size, workers, progress, mask_corners)


def _allocate(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A zero-filled memory-mapped ``.npy`` of ``shape`` whose blocks are reserved on disk before any is written:
    a sparse file on a disk that fills kills the process with SIGBUS at the first page it cannot back, whereas
    a refused reservation is an ordinary ENOSPC. The free space is checked first, to say so before any work."""
    needed = int(np.prod(shape)) + 4096  # the array and its .npy header
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise DataError(
            f"{path.parent}: the image cache needs {needed / 2**20:,.1f} MiB and the disk has "
            f"{free / 2**20:,.1f} MiB free; free space there or put the work dir elsewhere "
            f"(--work-dir DIR or HYPERKVASIR_HOME)"
        )
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    with open(path, "r+b") as handle:
        os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
    return array


def _build(
    root: Path, entries: list[tuple[str, str]], size: int, workers: int | None, progress, mask_corners: bool
) -> SquareCache:
    data_path, index_path = cache_paths(root, size, mask_corners)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = data_path.with_name(f".{data_path.name}.{os.getpid()}.tmp")
    jobs = [(str(root / path), size, mask_corners) for path, _ in entries]
    workers = workers or os.cpu_count() or 1
    decoded: list[bool] = []
    try:
        array = _allocate(tmp, (len(entries), size, size, 3))
        with process_pool(workers, len(jobs), minimum=17) as pool:
            results = pool.map(_load, jobs, chunksize=16)
            for i, image in enumerate(progress(results, len(jobs)) if progress else results):
                decoded.append(image is not None)
                if image is not None:
                    array[i] = image
        array.flush()
        del array
        os.replace(tmp, data_path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DataError(
            f"{data_path.parent}: the disk is full while the image cache is built ({error.strerror}); "
            f"free space there or put the work dir elsewhere (--work-dir DIR or "
            f"HYPERKVASIR_HOME)"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # a row whose file does not decode stays zero and is left out of the index
    rows = {path: i for i, ((path, _), ok) in enumerate(zip(entries, decoded)) if ok}
    with atomic_write(index_path, "w") as handle:
        json.dump(
            {
                "size": size,
                "rows": rows,
                "sha256": {path: sha for path, sha in entries if path in rows},
                "undecodable": {path: sha for path, sha in entries if path not in rows},
            },
            handle,
        )
    return SquareCache(np.load(data_path, mmap_mode="r"), rows)
