"""Index throughput against a naive baseline that opens and fully decodes every image with PIL.

Goals (issue: data stage): first index ≥ 10× the baseline in images per second; a re-index of the unchanged
tree ≤ 5 % of the first run's time. Both measured in this one run on the same tree.

Usage: python bench/index_speed.py [--root TREE]
"""

from __future__ import annotations

import os
import shutil
import time

from _common import report, twin_root
from PIL import Image

from hyperkvasir.data.index import build_index
from hyperkvasir.data.layout import Release
from hyperkvasir.outputs import CACHE_DIR


def naive_baseline(files: list) -> float:
    started = time.perf_counter()
    for path in files:
        with Image.open(path) as image:
            image.load()
    return time.perf_counter() - started


def main() -> None:
    args, root = twin_root(__doc__.splitlines()[0])
    release = Release(root)
    images = (
        release.labeled_files()
        + release.segmented_pairs()[0]
        + release.segmented_pairs()[1]
        + release.unlabeled_files()
    )
    shutil.rmtree(release.root / CACHE_DIR, ignore_errors=True)
    # Warm the lazy imports (pyarrow's pandas shim, PyAV for the videos) so the timings measure work, not
    # module loading; worker processes fork from this one and inherit them.
    import av  # noqa: F401
    import pyarrow as pa

    pa.Table.from_pylist([{"warm": 1}]).to_pylist()
    naive_s = naive_baseline(images)
    started = time.perf_counter()
    table = build_index(root)
    first_s = time.perf_counter() - started
    again = []
    for _ in range(3):
        started = time.perf_counter()
        build_index(root)
        again.append(time.perf_counter() - started)
    again_s = sorted(again)[1]  # median of three re-indexes
    report(
        args,
        {
            "images": len(images),
            "rows": table.num_rows,
            "cores": os.cpu_count(),
            "naive_full_decode_img_per_s": round(len(images) / naive_s, 1),
            "index_img_per_s": round(len(images) / first_s, 1),
            "speedup": round(naive_s / first_s, 2),
            "reindex_s": round(again_s, 3),
            "first_index_s": round(first_s, 3),
            "reindex_share": round(again_s / first_s, 4),
        },
    )


if __name__ == "__main__":
    main()
