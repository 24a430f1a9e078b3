"""Audit a release: exact and near duplicates in and across parts, label conflicts, cross-fold leakage, part
overlaps and the frame marks a classifier can learn (ScopeGuide box, Kvasir-SEG's black box).

Exact duplicates share a SHA-256 (from the manifest). Near duplicates are proposed by a 64-bit perceptual hash
(pHash of the centre of the field of view) within :data:`NEAR_DUPLICATE_THRESHOLD` bits and confirmed by the
correlation of 16 × 16 thumbnails (:data:`NEAR_DUPLICATE_MIN_CORRELATION`); both were calibrated on real release
pixels (``docs/calibration.md``). Candidates are found without comparing all pairs by multi-index hashing (Norouzi
et al., CVPR 2012): the 64 bits are cut into four bands, and two hashes within the threshold lie within
``threshold // 4`` bits of each other in at least one band (pigeonhole), so only hashes near in a band are
compared. All evidence is merged by union-find into duplicate groups; nothing is overwritten. Pixel evidence is
computed from a DCT-scaled decode and cached by content hash in ``pixels.parquet`` of the work dir
(``ROOT/.hyperkvasir`` unless ``--work-dir``), the report itself in ``audit.json`` under a key of what it depends
on.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hyperkvasir.data.imaging import atomic_write
from hyperkvasir.data.index import preparing, work_dir
from hyperkvasir.data.pixels import (
    BLACK_BOX_MIN_HEIGHT,
    SCOPEGUIDE_MIN_SHARE,
    pixel_evidence,
    thumbnail_correlations,
)
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.parallel import process_pool

log = logging.getLogger(__name__)

# pHash distance (of 64 bits) up to which a pair is a near-duplicate candidate. On real frames, re-encoded or
# resized copies sit 0–2 bits apart and consecutive captures of one scene 4–12 (a colitis frame filed under two
# grades: 10); unrelated frames start at 4, which is why a candidate must also pass the thumbnail correlation
# below (docs/calibration.md). Ten bits cost ~5 s of search on 110,000 hashes (bench/scale.py).
NEAR_DUPLICATE_THRESHOLD = 10
# Thumbnail correlation a candidate needs: real near-identical pairs ≥ 0.96, unrelated pairs within 14 bits
# ≤ 0.92 (docs/calibration.md).
NEAR_DUPLICATE_MIN_CORRELATION = 0.95
PIXELS_NAME = "pixels.parquet"
_PIXEL_SCHEMA = pa.schema([("sha256", pa.string()), ("phash", pa.uint64()), ("thumbnail", pa.binary()),
                           ("scopeguide", pa.float32()), ("black_box", pa.float32()), ("pixel_error", pa.string())])


# ------------------------------------------------------------------------------------------ pixel features
def _pixel_job(path: str) -> dict:
    """Pixel evidence of one file; a read or decode failure is recorded, not raised."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        if not data:
            return {"phash": None, "thumbnail": None, "scopeguide": None, "black_box": None,
                    "pixel_error": "empty file (0 bytes)"}
        return {**pixel_evidence(data), "pixel_error": None}
    except (OSError, SyntaxError, ValueError) as error:
        return {"phash": None, "thumbnail": None, "scopeguide": None, "black_box": None,
                "pixel_error": str(error) or type(error).__name__}


def pixel_features(
    root: Path, manifest: pa.Table, *, workers: int | None = None,
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
            results = pool.map(_pixel_job, jobs, chunksize=max(1, min(32, len(jobs) // (workers * 8))))
            results = list(progress(results, len(jobs)) if progress else results)
        for sha, result in zip(todo, results):
            cached[sha] = {"sha256": sha, **result}
        with atomic_write(cache_path) as handle:
            pq.write_table(pa.Table.from_pylist(list(cached.values()), schema=_PIXEL_SCHEMA), handle)
    return cached


# ------------------------------------------------------------------------------------ near-duplicate search
_BAND_BITS = 16  # four bands of 16 bits: a dense 65,536-entry table per band


def _flip_masks(bits: int, radius: int) -> np.ndarray:
    """Every value of ``bits`` bits with at most ``radius`` bits set (0 first)."""
    masks = [0] + [sum(1 << b for b in combo) for r in range(1, radius + 1)
                   for combo in itertools.combinations(range(bits), r)]
    return np.asarray(masks, np.int64)


def near_pairs(hashes: np.ndarray, threshold: int = NEAR_DUPLICATE_THRESHOLD) -> np.ndarray:
    """Index pairs (i < j) of 64-bit hashes within ``threshold`` bits, by multi-index hashing.

    The hash is cut into four 16-bit bands; two hashes within ``threshold`` bits differ in at least one band by
    at most ``threshold // 4`` bits (pigeonhole), so each hash is compared only with the hashes whose band value
    lies within that radius of its own (137 probes per band at 10 bits), looked up in a dense table. The work
    follows the candidates (about n²·137/65,536 per band for spread-out hashes, more where frames cluster), not
    all n² pairs. Returns an int64 array of shape (n_pairs, 2).
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    count = len(hashes)
    masks = _flip_masks(_BAND_BITS, threshold // (64 // _BAND_BITS))
    everyone = np.arange(count)
    found: list[np.ndarray] = []  # pair codes i * count + j
    for band in range(64 // _BAND_BITS):
        keys = ((hashes >> np.uint64(band * _BAND_BITS)) & np.uint64((1 << _BAND_BITS) - 1)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        sizes = np.bincount(keys, minlength=1 << _BAND_BITS)
        starts = np.cumsum(sizes) - sizes  # where each band value's hashes begin in `order`
        for mask in masks:
            partner = keys ^ mask
            matches = sizes[partner]
            total = int(matches.sum())
            if not total:
                continue
            i = np.repeat(everyone, matches)
            j = order[np.repeat(starts[partner] - (np.cumsum(matches) - matches), matches) + np.arange(total)]
            keep = i < j
            i, j = i[keep], j[keep]
            close = np.bitwise_count(hashes[i] ^ hashes[j]) <= threshold
            found.append(i[close].astype(np.int64) * count + j[close])
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    return np.stack([codes // count, codes % count], axis=1)


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
    kind: str  # exact | near | merged (exact and near evidence joined by union-find)
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
    min_correlation: float
    images: dict[str, int]
    exact_groups: list[DuplicateGroup] = field(default_factory=list)
    near_groups: list[DuplicateGroup] = field(default_factory=list)  # reported: leader clusters, no chaining
    labeled_near_groups: list[DuplicateGroup] = field(default_factory=list)  # from labeled-labeled pairs only
    near_units: list[DuplicateGroup] = field(default_factory=list)  # split units: components of every near pair
    labeled_near_units: list[DuplicateGroup] = field(default_factory=list)  # components of labeled-labeled pairs
    labeled_pairs: list[list[str]] = field(default_factory=list)  # every confirmed pair of labeled images
    large_units: list[dict] = field(default_factory=list)  # labeled split units over LARGE_UNIT_SHARE of a class
    label_conflicts: list[dict] = field(default_factory=list)
    leakage: dict[str, dict] = field(default_factory=dict)
    overlaps: dict[str, dict] = field(default_factory=dict)
    scopeguide: dict[str, dict] = field(default_factory=dict)
    scopeguide_files: list[str] = field(default_factory=list)
    black_box_files: list[str] = field(default_factory=list)
    segmented_corner: dict[str, float] = field(default_factory=dict)
    kvasir_seg_official: dict = field(default_factory=dict)
    per_class: dict[str, dict] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    video_duplicates: dict[str, list[list[str]]] = field(default_factory=dict)
    summary: str = ""

    def duplicate_sets(self) -> list[DuplicateGroup]:
        """Every exact and near group merged (union-find): files linked by any evidence share one set."""
        return merge_groups(self.exact_groups + self.near_groups)

    def labeled_sets(self) -> list[DuplicateGroup]:
        """Sets of two or more labeled images linked by evidence between labeled images alone (byte copies,
        confirmed near pairs): what a fold must keep together and where labels can conflict. An unlabeled or
        segmented frame that resembles two labeled images does not join them."""
        exact = [_labeled_members(g) for g in self.exact_groups]
        return merge_groups([g for g in exact if len(g.files) > 1] + self.labeled_near_groups)

    def split_units(self) -> list[DuplicateGroup]:
        """What a split must keep whole, over every part: connected components of all evidence (byte copies and
        every confirmed near pair), however long the chain. Not for reading: a slow pan becomes one unit."""
        return merge_groups(self.exact_groups + self.near_units)

    def labeled_split_units(self) -> list[DuplicateGroup]:
        """:meth:`split_units` of the labeled images from evidence between labeled images alone: what folds and
        validation carve-outs keep whole."""
        exact = [_labeled_members(g) for g in self.exact_groups]
        return merge_groups([g for g in exact if len(g.files) > 1] + self.labeled_near_units)

    def to_json(self) -> dict:
        return asdict(self)


def _labeled_members(group: DuplicateGroup) -> DuplicateGroup:
    keep = group.labeled_files()
    return DuplicateGroup(group.kind, *([column[i] for i in keep] for column in (
        group.files, group.parts, group.classes, group.fold2, group.fold5)), group.max_distance)


def merge_groups(groups: list[DuplicateGroup]) -> list[DuplicateGroup]:
    """Union-find over the files of ``groups``; each connected set becomes one ``merged`` group."""
    parent: dict[str, str] = {}
    rows: dict[str, tuple] = {}
    distance: dict[str, int] = defaultdict(int)

    def find(name: str) -> str:
        while parent.setdefault(name, name) != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for group in groups:
        for i, path in enumerate(group.files):
            rows[path] = (group.parts[i], group.classes[i], group.fold2[i], group.fold5[i])
            parent[find(path)] = find(group.files[0])
    for group in groups:
        root = find(group.files[0])
        distance[root] = max(distance[root], group.max_distance)
    members: dict[str, list[str]] = defaultdict(list)
    for path in rows:
        members[find(path)].append(path)
    merged = []
    for root, paths in members.items():
        paths.sort()
        parts, classes, fold2, fold5 = (list(column) for column in zip(*(rows[p] for p in paths)))
        merged.append(DuplicateGroup("merged", paths, parts, classes, fold2, fold5, distance[find(root)]))
    return sorted(merged, key=lambda g: g.files)


def confirmed_near_pairs(hashes: np.ndarray, thumbnails: list[bytes], threshold: int,
                         min_correlation: float) -> np.ndarray:
    """pHash candidates within ``threshold`` bits whose thumbnails correlate at ``min_correlation`` or more."""
    pairs = near_pairs(hashes, threshold)
    return pairs[thumbnail_correlations(thumbnails, pairs) >= min_correlation] if len(pairs) else pairs


@dataclass
class _Evidence:
    exact: list[DuplicateGroup]
    near: list[DuplicateGroup]
    labeled_near: list[DuplicateGroup]
    near_units: list[DuplicateGroup]
    labeled_near_units: list[DuplicateGroup]
    labeled_pairs: list[list[str]]


def _groups(rows: list[dict], features: dict[str, dict], threshold: int, min_correlation: float) -> _Evidence:
    """Exact groups; near groups (reported, leader clusters) and near units (split units, whole components) over
    every part and from pairs of labeled images alone (so two labeled images are never grouped because both
    resemble one unlabeled frame); and every confirmed pair of labeled images, by path."""
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
    pairs = confirmed_near_pairs(hashes, [features[sha]["thumbnail"] for sha in shas], threshold, min_correlation)
    labeled = np.asarray([any(r["part"] == "labeled" for r in by_sha[sha]) for sha in shas], bool)

    def near_groups(clusters: list[list[int]], keep: Callable[[dict], bool]) -> list[DuplicateGroup]:
        found = []
        for indices in clusters:
            members = [row for i in indices for row in by_sha[shas[i]] if keep(row)]
            sub = hashes[indices[:_DISTANCE_SAMPLE]]  # a bounded sample of the distances
            found.append(group("near", members, int(np.bitwise_count(sub[:, None] ^ sub[None, :]).max())))
        return sorted(found, key=lambda g: g.files)

    def is_labeled(row: dict) -> bool:
        return row["part"] == "labeled"

    labeled_pairs = pairs[labeled[pairs[:, 0]] & labeled[pairs[:, 1]]] if len(pairs) else pairs
    path_pairs = [[a["path"], b["path"]] for i, j in labeled_pairs for a in by_sha[shas[i]] if is_labeled(a)
                  for b in by_sha[shas[j]] if is_labeled(b)]
    for g in exact:
        members = [path for path, part in zip(g.files, g.parts) if part == "labeled"]
        path_pairs += [[a, b] for a, b in itertools.combinations(members, 2)]
    return _Evidence(
        exact=sorted(exact, key=lambda g: g.files),
        near=near_groups(near_clusters(len(shas), pairs), lambda row: True),
        labeled_near=near_groups(near_clusters(len(shas), labeled_pairs), is_labeled),
        near_units=near_groups(pair_components(len(shas), pairs), lambda row: True),
        labeled_near_units=near_groups(pair_components(len(shas), labeled_pairs), is_labeled),
        labeled_pairs=sorted(path_pairs))


_DISTANCE_SAMPLE = 512


def near_clusters(count: int, pairs: np.ndarray) -> list[list[int]]:
    """Near-duplicate groups that cannot chain: within a group every member is a confirmed near pair of the
    group's leader, so any two members are within twice the threshold (Hamming distance obeys the triangle
    inequality), however long a run of slowly changing frames links them.

    A connected component of confirmed pairs is kept whole when every member pairs with one leader (the common
    case: a few copies of one picture); otherwise it is cut by leader clustering, leaders taken by decreasing
    number of pairs, each member joining the first leader it pairs with. A leader left alone (all its pairs
    joined other leaders) is kept as a pair with its first neighbour, so no near pair is lost; merged with that
    neighbour's group (``duplicate_sets``) it sits within three times the threshold of every member, never more,
    because such a leader has no members of its own. Cost grows with the pairs, not with m².
    """
    if not len(pairs):
        return []
    graph = _pair_graph(count, pairs)
    degree = np.asarray((graph > 0).sum(1)).ravel()
    clusters: list[list[int]] = []
    for members in _components(graph, pairs):
        leader_of: dict[int, int] = {}
        for node in sorted(members, key=lambda n: (-degree[n], n)):
            if node in leader_of:
                continue
            leader_of[node] = node
            for neighbour in graph.indices[graph.indptr[node] : graph.indptr[node + 1]]:
                leader_of.setdefault(int(neighbour), node)
        by_leader: dict[int, list[int]] = defaultdict(list)
        for node, leader in leader_of.items():
            by_leader[leader].append(node)
        for leader, group in by_leader.items():
            if len(group) > 1:
                clusters.append(sorted(group))
            else:  # every pair of this leader joined another leader: keep one pair, lose no evidence
                clusters.append(sorted([leader, int(graph.indices[graph.indptr[leader]])]))
    return clusters


def _pair_graph(count: int, pairs: np.ndarray):
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(count, count)).tocsr()
    return graph + graph.T


def _components(graph, pairs: np.ndarray) -> list[list[int]]:
    """The connected components (sorted index lists) of the nodes that appear in ``pairs``."""
    _, labels = connected_components(graph, directed=False)
    components: dict[int, list[int]] = defaultdict(list)
    for index in np.unique(pairs):
        components[int(labels[index])].append(int(index))
    return list(components.values())


def pair_components(count: int, pairs: np.ndarray) -> list[list[int]]:
    """Split units: connected components of the confirmed pairs, kept whole however long the chain, so no
    confirmed pair can be cut apart by a split (reported groups, :func:`near_clusters`, cut chains)."""
    return _components(_pair_graph(count, pairs), pairs) if len(pairs) else []


def leakage(pairs: Iterable[Sequence[str]], fold_of: dict[str, int | None]) -> dict:
    """Leakage of a fold assignment, counted per confirmed pair: ``pairs`` whose two images lie in different folds
    (``fold_pairs``: how many between each two folds), the ``images`` they touch, and the duplicate ``groups``
    (connected components of those pairs' evidence) that span folds."""
    pairs = [tuple(pair) for pair in pairs]
    across: Counter[str] = Counter()
    images: set[str] = set()
    for a, b in pairs:
        fa, fb = fold_of.get(a), fold_of.get(b)
        if fa is not None and fb is not None and fa != fb:
            across[f"{min(fa, fb)}-{max(fa, fb)}"] += 1
            images.update((a, b))
    return {"pairs": sum(across.values()), "images": len(images), "groups": _spanning_units(pairs, fold_of),
            "fold_pairs": dict(sorted(across.items()))}


def _spanning_units(pairs: list[tuple[str, ...]], fold_of: dict[str, int | None]) -> int:
    """How many connected components of ``pairs`` hold images of more than one fold."""
    names = sorted({name for pair in pairs for name in pair})
    if not names:
        return 0
    number = {name: i for i, name in enumerate(names)}
    indices = np.asarray([[number[a], number[b]] for a, b in pairs], dtype=np.int64)
    spanning = 0
    for members in pair_components(len(names), indices):
        folds = {fold_of.get(names[i]) for i in members} - {None}
        spanning += len(folds) > 1
    return spanning


# A labeled split unit larger than this share of a class cannot be placed without skewing that class's folds;
# the audit and `splits` name it rather than cut it.
LARGE_UNIT_SHARE = 0.05


def _large_units(units: list[DuplicateGroup], class_sizes: Counter) -> list[dict]:
    found = []
    for unit in units:
        counts = Counter(unit.classes[i] for i in unit.labeled_files())
        worst = max(counts, key=lambda c: counts[c] / class_sizes[c])
        if len(unit.files) > 2 and counts[worst] > LARGE_UNIT_SHARE * class_sizes[worst]:
            found.append({"files": len(unit.files), "class": worst, "class_images": class_sizes[worst],
                          "first": unit.files[0]})
    return sorted(found, key=lambda u: -u["files"])


def _label_conflicts(merged: list[DuplicateGroup]) -> list[dict]:
    """Duplicate sets whose labeled members carry more than one class: the benchmark's truth contradicts itself."""
    conflicts = []
    for g in merged:
        labeled = g.labeled_files()
        if len({g.classes[i] for i in labeled}) > 1:
            conflicts.append({"files": [g.files[i] for i in labeled], "classes": [g.classes[i] for i in labeled],
                              "fold2": [g.fold2[i] for i in labeled], "fold5": [g.fold5[i] for i in labeled]})
    return conflicts


def _kvasir_seg_straddle(merged: list[DuplicateGroup], segmented: list[dict]) -> dict:
    """Duplicate sets of segmented images with members on both sides of Kvasir-SEG's official 880/120 split."""
    from hyperkvasir.data.splits import kvasir_seg_official_ids

    side = {stem: subset for subset, stems in kvasir_seg_official_ids().items() for stem in stems}
    listed = sum(1 for r in segmented if Path(r["path"]).stem in side)
    straddling = [g for g in merged if len({side.get(Path(f).stem) for f, p in zip(g.files, g.parts)
                                            if p == "segmented"} - {None}) > 1]
    return {"segmented_images": len(segmented), "in_official_lists": listed,
            "groups_straddling": len(straddling), "images_straddling": sum(
                1 for g in straddling for p in g.parts if p == "segmented")}


def _marks(rows: list[dict], features: dict[str, dict]) -> dict:
    """ScopeGuide and black-box counts and shares of ``rows`` (ScopeGuide frames are not counted as boxes)."""
    scope = sum(1 for r in rows if _has_scopeguide(features, r))
    box = sum(1 for r in rows if _has_black_box(features, r))
    n = len(rows)
    return {"images": n, "scopeguide": scope, "share": round(scope / n, 4) if n else 0.0,
            "black_box": box, "black_box_share": round(box / n, 4) if n else 0.0}


def _has_scopeguide(features: dict[str, dict], row: dict) -> bool:
    return (features.get(row["sha256"], {}).get("scopeguide") or 0) >= SCOPEGUIDE_MIN_SHARE


def _has_black_box(features: dict[str, dict], row: dict) -> bool:
    return (not _has_scopeguide(features, row)
            and (features.get(row["sha256"], {}).get("black_box") or 0) >= BLACK_BOX_MIN_HEIGHT)


def audit(
    root: str | Path, *, workers: int | None = None, threshold: int = NEAR_DUPLICATE_THRESHOLD,
    min_correlation: float = NEAR_DUPLICATE_MIN_CORRELATION,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> AuditReport:
    """Audit the tree at ``root`` (indexing it first, incrementally). The report is kept in the work dir under a
    key of the manifest's content, the parameters and the audit's own code, so a tree that did not change is not
    audited again (validate, splits, train and report all consult the audit)."""
    from hyperkvasir.data.index import build_index
    from hyperkvasir.data.layout import Release

    release = Release(root)
    manifest = build_index(release.root, workers=workers)
    key = _cache_key(manifest, threshold, min_correlation)
    cache = work_dir(release.root) / AUDIT_NAME
    with preparing(cache):  # every rank of a distributed run asks: one audits, the others read its report
        cached = _cached_report(cache, key)
        if cached is not None:
            log.debug("audit of %s: read from %s", release.root, cache)
            return cached
        report = _audit(release.root, manifest, workers, threshold, min_correlation, progress)
        with atomic_write(cache, "w") as handle:
            json.dump({"key": key, "report": report.to_json()}, handle)
    log.info("audit of %s: computed (%d images)", release.root, sum(report.images.values()))
    return report


AUDIT_NAME = "audit.json"


def _cache_key(manifest: pa.Table, threshold: int, min_correlation: float) -> str:
    """What an audit depends on: every manifest column but the mtimes, the parameters, and the code of the
    modules that decide it (a changed detector or rule is a new key)."""
    from hyperkvasir.data import pixels, taxonomy

    digest = hashlib.sha256(json.dumps([threshold, min_correlation]).encode())
    for module in (__file__, pixels.__file__, taxonomy.__file__):
        digest.update(Path(module).read_bytes())
    for column in manifest.drop_columns(["mtime_ns"]).columns:
        digest.update(json.dumps(column.to_pylist(), default=str).encode())
    return digest.hexdigest()


def _cached_report(path: Path, key: str) -> AuditReport | None:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or unreadable: audit again, never trust it
    if not isinstance(saved, dict) or saved.get("key") != key:
        return None
    fields = saved["report"]
    for name in ("exact_groups", "near_groups", "labeled_near_groups", "near_units", "labeled_near_units"):
        fields[name] = [DuplicateGroup(**group) for group in fields[name]]
    return AuditReport(**fields)


def _audit(root: Path, manifest: pa.Table, workers: int | None, threshold: int, min_correlation: float,
           progress: Callable[[Iterable, int], Iterable] | None) -> AuditReport:
    features = pixel_features(root, manifest, workers=workers, progress=progress)
    rows = [r for r in manifest.to_pylist() if r["kind"] == "image" and r["sha256"]]
    unreadable = {r["path"] for r in rows if features.get(r["sha256"], {}).get("pixel_error")}
    rows = [r for r in rows if r["path"] not in unreadable]  # an image that does not decode is not counted
    report = AuditReport(threshold, min_correlation, dict(Counter(r["part"] for r in rows)))
    report.unreadable = sorted(unreadable)
    evidence = _groups(rows, features, threshold, min_correlation)
    report.exact_groups, report.near_groups, report.labeled_near_groups = (evidence.exact, evidence.near,
                                                                           evidence.labeled_near)
    report.near_units, report.labeled_near_units = evidence.near_units, evidence.labeled_near_units
    report.labeled_pairs = evidence.labeled_pairs
    merged = report.duplicate_sets()
    labeled_sets = report.labeled_sets()
    report.label_conflicts = _label_conflicts(labeled_sets)
    labeled_rows = [r for r in rows if r["part"] == "labeled"]
    for scheme in ("fold2", "fold5"):
        report.leakage[scheme] = leakage(report.labeled_pairs, {r["path"]: r[scheme] for r in labeled_rows})
    report.large_units = _large_units(report.labeled_split_units(), Counter(r["class"] for r in labeled_rows))
    for other in ("segmented", "unlabeled"):
        found = {kind: {f for g in groups if "labeled" in g.parts for f, p in zip(g.files, g.parts) if p == other}
                 for kind, groups in (("exact", report.exact_groups), ("near", report.near_groups))}
        report.overlaps[f"{other}-in-labeled"] = {"exact": len(found["exact"]),
                                                  "near": len(found["near"] - found["exact"]),
                                                  "total": report.images.get(other, 0)}
    report.scopeguide_files = sorted(r["path"] for r in rows if _has_scopeguide(features, r))
    report.black_box_files = sorted(r["path"] for r in rows if _has_black_box(features, r))
    labeled = [r for r in rows if r["part"] == "labeled"]
    for cls in CLASSES:
        report.scopeguide[cls.folder] = _marks([r for r in labeled if r["class"] == cls.folder], features)
        report.per_class[cls.folder] = {
            "duplicates": sum(g.classes[i] == cls.folder for g in labeled_sets for i in g.labeled_files()),
            "label_conflicts": sum(c["classes"].count(cls.folder) for c in report.label_conflicts),
        }
    segmented = [r for r in rows if r["part"] == "segmented"]
    if segmented:
        report.segmented_corner = _marks(segmented, features)
        report.kvasir_seg_official = _kvasir_seg_straddle(report.split_units(), segmented)
    report.video_duplicates = _video_duplicates([r for r in manifest.to_pylist() if r["kind"] == "video"])
    report.summary = _summary(report, len(labeled), merged)
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


def _summary(report: AuditReport, labeled: int, merged: list[DuplicateGroup]) -> str:
    """A paste-ready paragraph (``merged``: the report's duplicate sets); a part absent from the copy is named,
    never summarised as empty."""
    sentences = []
    if report.unreadable:
        more = len(report.unreadable) - 10
        sentences.append(
            f"{len(report.unreadable):,} {'image does' if len(report.unreadable) == 1 else 'images do'} not decode "
            f"and {'was' if len(report.unreadable) == 1 else 'were'} left out of every count "
            f"({', '.join(report.unreadable[:10])}{f' and {more} more' if more > 0 else ''}); "
            f"`hyperkvasir validate` names each problem.")
    method = (f"64-bit pHash within {report.threshold} bits confirmed by thumbnail correlation "
              f"≥ {report.min_correlation}")
    if labeled:
        sets = report.labeled_sets()
        exact_extra = sum(len(g.labeled_files()) - 1 for g in report.exact_groups)
        leak2, leak5 = report.leakage["fold2"], report.leakage["fold5"]
        sentences.append(
            f"Of {labeled:,} labeled images, {sum(len(g.labeled_files()) for g in sets):,} fall into "
            f"{len(sets):,} duplicate groups ({exact_extra:,} byte-identical redundant copies; near duplicates by "
            f"{method}).")
        sentences.append(
            f"{leak2['pairs']:,} confirmed duplicate pairs ({leak2['images']} images, {leak2['groups']} duplicate "
            f"groups) lie across the two folds of the official 2-fold split and {leak5['pairs']:,} "
            f"({leak5['images']} images, {leak5['groups']} groups) across folds of the 5-fold split"
            + (", so test folds are not independent of training folds." if leak2["pairs"] or leak5["pairs"]
               else "."))
        if report.large_units:
            big = report.large_units[0]
            sentences.append(
                f"{len(report.large_units)} chains of near duplicates are too large to place without skewing a "
                f"class (largest: {big['files']} images, {big['class']} has {big['class_images']}); a split keeps "
                f"each whole.")
        if report.label_conflicts:
            pairs = Counter(" vs ".join(sorted(set(c["classes"]))) for c in report.label_conflicts)
            sentences.append(
                f"{len(report.label_conflicts)} duplicate groups carry conflicting labels "
                f"({', '.join(f'{k}: {v}' for k, v in pairs.most_common(3))}): the ground truth contradicts itself.")
        flagged = sum(v["scopeguide"] for v in report.scopeguide.values())
        top = [(name, v) for name, v in sorted(report.scopeguide.items(), key=lambda kv: -kv[1]["share"])
               if v["scopeguide"]][:3]
        if top:
            listed = ", ".join(f"{name} {v['share']:.0%}" for name, v in top)
            sentences.append(
                f"The teal ScopeGuide box appears in {flagged:,} labeled images ({flagged / labeled:.1%}), most "
                f"often in {listed}: a shortcut a classifier "
                f"can learn.")
        else:
            sentences.append("No labeled image shows the ScopeGuide box.")
    else:
        sentences.append("The labeled part is not in this copy, so no label, fold or leakage figure applies.")
    corner = report.segmented_corner
    if corner:
        seg = report.overlaps["segmented-in-labeled"]
        own = [g for g in merged if sum(p == "segmented" for p in g.parts) > 1]
        sentences.append(
            f"Of {corner['images']:,} segmented images, {len(own)} duplicate groups hold more than one segmented "
            f"image; {corner['black_box_share']:.0%} hide the lower-left corner under a black box and "
            f"{corner['share']:.0%} show the ScopeGuide box."
            + (f" {seg['exact'] + seg['near']:,} are also labeled images." if labeled else ""))
        official = report.kvasir_seg_official
        if official["in_official_lists"]:
            sentences.append(
                f"{official['groups_straddling']} duplicate groups ({official['images_straddling']} images) "
                f"straddle Kvasir-SEG's official 880/120 split.")
    if report.images.get("unlabeled"):
        unl = report.overlaps["unlabeled-in-labeled"]
        sentences.append(f"{unl['exact'] + unl['near']:,} of {unl['total']:,} unlabeled images duplicate "
                         f"labeled ones.")
    videos = report.video_duplicates
    if videos.get("exact") or videos.get("metadata") or report.images.get("videos"):
        sentences.append(f"Among the videos, {len(videos['exact'])} groups are byte-identical and "
                         f"{len(videos['metadata'])} more share resolution, frame count and size.")
    return " ".join(sentences)
