"""Audit a release: exact and near duplicates, cross-fold leakage, part overlaps and the ScopeGuide shortcut.

Exact duplicates share a SHA-256 (from the manifest). Near duplicates share a 64-bit perceptual hash (pHash,
``imagehash.phash`` of the centre of the field of view: DCT of a 32×32 greyscale thumbnail, 8×8 low
frequencies against their median) within a Hamming distance of :data:`NEAR_DUPLICATE_THRESHOLD` bits. They are found without comparing all pairs by
multi-index hashing (Norouzi et al., CVPR 2012): the 64 bits are cut into ``threshold + 1`` bands, and two
hashes within the threshold must agree exactly on at least one band (pigeonhole), so only hashes sharing a
band value are compared. Pixel features are computed from a DCT-scaled decode and cached by content hash in
``ROOT/.hyperkvasir/pixels.parquet``.
"""

from __future__ import annotations

import io
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import imagehash
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageFile
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hyperkvasir.data.imaging import atomic_write
from hyperkvasir.data.index import CACHE_DIR
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.parallel import process_pool

# Hamming distance (of 64 bits) up to which two pHashes are near duplicates. Re-encodings, small brightness
# or colour shifts and rescaling stay within 0–2 bits; on the medium synthetic twin the nearest distinct
# frame of every image is ≥ 6 bits away (most ≥ 10). Four leaves margin on both sides.
NEAR_DUPLICATE_THRESHOLD = 4
# The hash sees the centre of the field of view only: the black border, the scope's status text and the
# ScopeGuide corner are shared by unrelated frames and would pull their hashes together.
_HASH_CROP = (0.25, 0.15, 0.9, 0.85)  # left, top, right, bottom as fractions of width/height
# ScopeGuide: share of "green" pixels in the lower-left corner above which the thumbnail is present.
SCOPEGUIDE_MIN_GREEN = 0.01
PIXELS_NAME = "pixels.parquet"
_PIXEL_SCHEMA = pa.schema([("sha256", pa.string()), ("phash", pa.uint64()), ("scopeguide", pa.float32()),
                           ("pixel_error", pa.string())])


# ------------------------------------------------------------------------------------------ pixel features
def scopeguide_score(rgb: np.ndarray) -> float:
    """Share of saturated green pixels in the lower-left corner, where the Olympus ScopeGuide sits."""
    h, w, _ = rgb.shape
    corner = rgb[int(h * 0.7) :, : int(w * 0.22)].astype(np.int16)
    r, g, b = corner[..., 0], corner[..., 1], corner[..., 2]
    return float(((g > 110) & (g > r + 50) & (g > b + 40)).mean())


def _pixel_job(path: str) -> dict:
    """pHash and ScopeGuide score from a 1/4-scale DCT decode; a decode failure is recorded, not raised."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (image.width // 4, image.height // 4))
            rgb = image.convert("RGB")
        w, h = rgb.size
        centre = rgb.crop((int(w * _HASH_CROP[0]), int(h * _HASH_CROP[1]), int(w * _HASH_CROP[2]),
                           int(h * _HASH_CROP[3])))
        return {"phash": int(str(imagehash.phash(centre)), 16), "scopeguide": scopeguide_score(np.asarray(rgb)),
                "pixel_error": None}
    except (OSError, SyntaxError, ValueError) as error:
        return {"phash": None, "scopeguide": None, "pixel_error": str(error) or type(error).__name__}


def pixel_features(
    root: Path, manifest: pa.Table, *, workers: int | None = None,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> dict[str, dict]:
    """sha256 → {phash, scopeguide, pixel_error} for every image (not masks) of the manifest, cached."""
    cache_path = root / CACHE_DIR / PIXELS_NAME
    cached: dict[str, dict] = {}
    if cache_path.is_file():
        try:
            cached = {row["sha256"]: row for row in pq.read_table(cache_path).to_pylist()}
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
            results = pool.map(_pixel_job, jobs, chunksize=max(1, min(32, len(jobs) // (workers * 8))))
            results = list(progress(results, len(jobs)) if progress else results)
        for sha, result in zip(todo, results):
            cached[sha] = {"sha256": sha, **result}
        with atomic_write(cache_path) as handle:
            pq.write_table(pa.Table.from_pylist(list(cached.values()), schema=_PIXEL_SCHEMA), handle)
    return cached


# ------------------------------------------------------------------------------------ near-duplicate search
def near_pairs(hashes: np.ndarray, threshold: int = NEAR_DUPLICATE_THRESHOLD) -> np.ndarray:
    """Index pairs (i < j) of 64-bit hashes within ``threshold`` bits, by multi-index hashing.

    Returns an int64 array of shape (n_pairs, 2). Cost grows with the pairs that share a band value, not with
    n²: for spread-out hashes each of the ``threshold + 1`` bands compares ~n²/2^bits pairs.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    bands = threshold + 1
    widths = [64 // bands + (1 if b < 64 % bands else 0) for b in range(bands)]
    found: list[np.ndarray] = []
    shift = 0
    for width in widths:
        keys = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        shift += width
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        offset = 1  # compare each hash with the one `offset` places later in its band bucket, vectorised
        while offset < len(order):
            same = sorted_keys[offset:] == sorted_keys[:-offset]
            if not same.any():
                break
            a, b = order[:-offset][same], order[offset:][same]
            close = np.bitwise_count(hashes[a] ^ hashes[b]) <= threshold
            found.append(np.stack([np.minimum(a[close], b[close]), np.maximum(a[close], b[close])], axis=1))
            offset += 1
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0).astype(np.int64)


def all_pairs_reference(hashes: np.ndarray, threshold: int = NEAR_DUPLICATE_THRESHOLD) -> np.ndarray:
    """The quadratic baseline: every pair compared (benchmarks and tests only)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    found = []
    for start in range(0, len(hashes), 2048):
        block = hashes[start : start + 2048]
        distance = np.bitwise_count(block[:, None] ^ hashes[None, :])
        i, j = np.nonzero(distance <= threshold)
        i = i + start
        keep = i < j
        found.append(np.stack([i[keep], j[keep]], axis=1))
    return np.unique(np.concatenate(found), axis=0) if found else np.empty((0, 2), np.int64)


# ----------------------------------------------------------------------------------------------- report
@dataclass
class DuplicateGroup:
    kind: str  # exact | near
    files: list[str]
    parts: list[str]
    classes: list[str | None]
    fold2: list[int | None]
    fold5: list[int | None]
    max_distance: int = 0

    def labeled_files(self) -> list[int]:
        return [i for i, part in enumerate(self.parts) if part == "labeled"]


@dataclass
class AuditReport:
    threshold: int
    images: dict[str, int]
    exact_groups: list[DuplicateGroup] = field(default_factory=list)
    near_groups: list[DuplicateGroup] = field(default_factory=list)
    leakage: dict[str, dict] = field(default_factory=dict)
    overlaps: dict[str, dict] = field(default_factory=dict)
    scopeguide: dict[str, dict] = field(default_factory=dict)
    per_class: dict[str, dict] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    video_duplicates: dict[str, list[list[str]]] = field(default_factory=dict)
    summary: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def _groups(rows: list[dict], features: dict[str, dict], threshold: int) -> tuple[list, list]:
    by_sha: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_sha[row["sha256"]].append(row)

    def group(kind: str, members: list[dict], distance: int = 0) -> DuplicateGroup:
        members = sorted(members, key=lambda r: r["path"])
        return DuplicateGroup(kind, [r["path"] for r in members], [r["part"] for r in members],
                              [r["class"] for r in members], [r["fold2"] for r in members],
                              [r["fold5"] for r in members], distance)

    exact = [group("exact", members) for members in by_sha.values() if len(members) > 1]
    shas = [sha for sha in by_sha if features.get(sha, {}).get("phash") is not None]
    hashes = np.asarray([features[sha]["phash"] for sha in shas], dtype=np.uint64)
    pairs = near_pairs(hashes, threshold)
    near = []
    if len(pairs):
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(shas), len(shas)))
        _, labels = connected_components(graph, directed=False)
        components: dict[int, list[int]] = defaultdict(list)
        for index in np.unique(pairs):
            components[int(labels[index])].append(int(index))
        for indices in components.values():
            members = [row for i in indices for row in by_sha[shas[i]]]
            sub = hashes[indices]
            distance = int(np.bitwise_count(sub[:, None] ^ sub[None, :]).max())
            near.append(group("near", members, distance))
    return sorted(exact, key=lambda g: g.files), sorted(near, key=lambda g: g.files)


def _leakage(groups: list[DuplicateGroup], scheme: str) -> dict:
    pairs: Counter[str] = Counter()
    leaking = images = 0
    for g in groups:
        folds = sorted({f for f, part in zip(getattr(g, scheme), g.parts) if part == "labeled" and f is not None})
        if len(folds) > 1:
            leaking += 1
            images += sum(1 for part in g.parts if part == "labeled")
            for a_index, a in enumerate(folds):
                for b in folds[a_index + 1 :]:
                    pairs[f"{a}-{b}"] += 1
    return {"groups": leaking, "images": images, "fold_pairs": dict(sorted(pairs.items()))}


def audit(
    root: str | Path, *, workers: int | None = None, threshold: int = NEAR_DUPLICATE_THRESHOLD,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> AuditReport:
    """Audit the tree at ``root`` (indexing it first, incrementally)."""
    from hyperkvasir.data.index import build_index
    from hyperkvasir.data.layout import Release

    release = Release(root)
    manifest = build_index(release.root, workers=workers)
    features = pixel_features(release.root, manifest, workers=workers, progress=progress)
    rows = [r for r in manifest.to_pylist() if r["kind"] == "image" and r["sha256"]]
    report = AuditReport(threshold, dict(Counter(r["part"] for r in rows)))
    report.unreadable = sorted(r["path"] for r in rows if features.get(r["sha256"], {}).get("pixel_error"))
    exact, near = _groups(rows, features, threshold)
    labeled_exact = [g for g in exact if len(g.labeled_files()) > 1]
    labeled_near = [g for g in near if len({g.files[i] for i in g.labeled_files()}) > 1]
    report.exact_groups, report.near_groups = labeled_exact, labeled_near
    for scheme in ("fold2", "fold5"):
        report.leakage[scheme] = _leakage(labeled_exact + labeled_near, scheme)
    for other in ("segmented", "unlabeled"):
        found = {kind: {f for g in groups if "labeled" in g.parts for f, p in zip(g.files, g.parts) if p == other}
                 for kind, groups in (("exact", exact), ("near", near))}
        report.overlaps[f"{other}-in-labeled"] = {"exact": len(found["exact"]),
                                                  "near": len(found["near"] - found["exact"]),
                                                  "total": report.images.get(other, 0)}
    labeled = [r for r in rows if r["part"] == "labeled"]
    for cls in CLASSES:
        members = [r for r in labeled if r["class"] == cls.folder]
        flagged = sum(1 for r in members if (features[r["sha256"]].get("scopeguide") or 0) >= SCOPEGUIDE_MIN_GREEN)
        report.scopeguide[cls.folder] = {"images": len(members), "scopeguide": flagged,
                                         "share": round(flagged / len(members), 4) if members else 0.0}
        report.per_class[cls.folder] = {
            "exact": sum(g.classes.count(cls.folder) for g in labeled_exact),
            "near": sum(g.classes.count(cls.folder) for g in labeled_near),
        }
    report.video_duplicates = _video_duplicates([r for r in manifest.to_pylist() if r["kind"] == "video"])
    report.summary = _summary(report, len(labeled))
    return report


def _video_duplicates(videos: list[dict]) -> dict[str, list[list[str]]]:
    """Videos with one SHA-256, and videos that share width, height, frame count and size but not bytes (the
    release's metadata shows 32 such groups, e.g. ``polypp11.avi``/``polypp12.avi``; dataset.md §6.11)."""
    by_hash: dict[str, list[str]] = defaultdict(list)
    by_meta: dict[tuple, list[dict]] = defaultdict(list)
    for row in videos:
        if row["sha256"]:
            by_hash[row["sha256"]].append(row["path"])
        if row["frames"]:
            by_meta[(row["width"], row["height"], row["frames"], row["bytes"])].append(row)
    exact = sorted(sorted(paths) for paths in by_hash.values() if len(paths) > 1)
    metadata = sorted(sorted(r["path"] for r in rows) for rows in by_meta.values()
                      if len(rows) > 1 and len({r["sha256"] for r in rows}) > 1)
    return {"exact": exact, "metadata": metadata}


def _summary(report: AuditReport, labeled: int) -> str:
    exact_extra = sum(len(g.labeled_files()) - 1 for g in report.exact_groups)
    near_images = sum(len(g.labeled_files()) for g in report.near_groups)
    leak2, leak5 = report.leakage["fold2"], report.leakage["fold5"]
    seg = report.overlaps["segmented-in-labeled"]
    unl = report.overlaps["unlabeled-in-labeled"]
    flagged = sum(v["scopeguide"] for v in report.scopeguide.values())
    top = sorted(report.scopeguide.items(), key=lambda kv: -kv[1]["share"])[:3]
    top_text = ", ".join(f"{name} {value['share']:.0%}" for name, value in top if value["images"])
    return (
        f"Of {labeled:,} labeled images, {len(report.exact_groups)} groups of byte-identical files "
        f"({exact_extra} redundant copies) and {len(report.near_groups)} groups of near-duplicates "
        f"({near_images} images; 64-bit pHash, Hamming distance ≤ {report.threshold}) were found. "
        f"{leak2['groups']} duplicate groups ({leak2['images']} images) span both folds of the official 2-fold "
        f"split and {leak5['groups']} ({leak5['images']} images) span folds of the 5-fold split"
        + (", so test folds are not independent of training folds. " if leak2["groups"] or leak5["groups"]
           else ". ")
        + f"{seg['exact'] + seg['near']} of {seg['total']:,} segmented "
        f"images are also in the labeled set, and {unl['exact'] + unl['near']} of {unl['total']:,} unlabeled "
        f"images duplicate labeled ones. The green ScopeGuide thumbnail appears in {flagged:,} labeled images "
        f"({flagged / max(labeled, 1):.1%}), most often in {top_text}: a shortcut a classifier can learn."
        + (f" Among the videos, {len(report.video_duplicates['exact'])} groups are byte-identical and "
           f"{len(report.video_duplicates['metadata'])} more share resolution, frame count and size."
           if report.images.get("videos") or report.video_duplicates.get("exact") or
           report.video_duplicates.get("metadata") else "")
    )
