"""Does an index (faiss-cpu) pay over exact numpy search at the release's scale (110,079 images)?

Measures, on N unit vectors of the embedding width (1280, EfficientNet-Lite0's pre-logits), the two searches the
labeling loop makes: `similar` for a few queries, and the k nearest of every image (what a duplicate sweep or a
k-NN graph over the whole release needs, timed on Q queries and extrapolated). faiss is optional: without it the
script times numpy alone. Usage: python bench/neighbour_index.py [--n 110079] [--queries 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hyperkvasir.label.neighbours import nearest

K = 6


def _vectors(n: int, width: int, seed: int = 0) -> np.ndarray:
    """Clustered unit vectors (real embeddings cluster by class and procedure), float32."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, width)).astype(np.float32)
    vectors = centres[rng.integers(0, 64, n)] + 0.6 * rng.standard_normal((n, width)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _timed(function) -> tuple[float, object]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=110_079)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--json")
    args = parser.parse_args()
    vectors = _vectors(args.n, args.width)
    queries = vectors[: args.queries]
    few = vectors[:10]
    results: dict = {"n": args.n, "width": args.width, "queries": args.queries}
    seconds, (exact, _) = _timed(lambda: nearest(queries, vectors, K))
    results["numpy_exact"] = {
        "few_queries_s": round(_timed(lambda: nearest(few, vectors, K))[0] / len(few), 4),
        "all_knn_extrapolated_s": round(seconds / args.queries * args.n, 1),
    }
    try:
        import faiss
    except ImportError:
        results["faiss"] = "not installed"
    else:
        flat = faiss.IndexFlatIP(args.width)
        build, _ = _timed(lambda: flat.add(vectors))
        seconds, _ = _timed(lambda: flat.search(queries, K))
        results["faiss_flat"] = {
            "build_s": round(build, 2),
            "few_queries_s": round(_timed(lambda: flat.search(few, K))[0] / len(few), 4),
            "all_knn_extrapolated_s": round(seconds / args.queries * args.n, 1),
        }
        hnsw = faiss.IndexHNSWFlat(args.width, 32, faiss.METRIC_INNER_PRODUCT)
        build, _ = _timed(lambda: hnsw.add(vectors))
        seconds, (_, found) = _timed(lambda: hnsw.search(queries, K))
        recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(found, exact)])
        results["faiss_hnsw32"] = {
            "build_s": round(build, 1),
            "few_queries_s": round(_timed(lambda: hnsw.search(few, K))[0] / len(few), 5),
            "all_knn_extrapolated_s": round(seconds / args.queries * args.n, 1),
            "recall_at_6": round(float(recall), 4),
        }
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
