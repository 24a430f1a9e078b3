"""The audit's entry point: index the tree, gather pixel evidence, group it, and derive every figure of the
report; or read the report the work dir keeps for an unchanged tree."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa

from hyperkvasir.data.audit.cache import AUDIT_NAME, cache_key, read_report, write_report
from hyperkvasir.data.audit.groups import collect_evidence
from hyperkvasir.data.audit.leakage import kvasir_seg_straddle, label_conflicts, large_units, leakage
from hyperkvasir.data.audit.pixel_cache import has_black_box, has_scopeguide, mark_counts, pixel_features
from hyperkvasir.data.audit.report import AuditReport
from hyperkvasir.data.audit.search import NEAR_DUPLICATE_MIN_CORRELATION, NEAR_DUPLICATE_THRESHOLD
from hyperkvasir.data.audit.summary import summary
from hyperkvasir.data.index import build_index, preparing
from hyperkvasir.data.layout import Release
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.outputs import work_dir

log = logging.getLogger("hyperkvasir.data.audit")  # the package's logger: one name for the audit's records


def audit(
    root: str | Path,
    *,
    workers: int | None = None,
    threshold: int = NEAR_DUPLICATE_THRESHOLD,
    min_correlation: float = NEAR_DUPLICATE_MIN_CORRELATION,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> AuditReport:
    """Audit the tree at ``root`` (indexing it first, incrementally). The report is kept in the work dir under a
    key of the manifest's content, the parameters and the audit's own code, so a tree that did not change is not
    audited again (validate, splits, train and report all consult the audit)."""
    release = Release(root)
    manifest = build_index(release.root, workers=workers)
    key = cache_key(manifest, threshold, min_correlation)
    cache = work_dir(release.root) / AUDIT_NAME
    with preparing(cache):  # every rank of a distributed run asks: one audits, the others read its report
        cached = read_report(cache, key)
        if cached is not None:
            log.debug("audit of %s: read from %s", release.root, cache)
            return cached
        report = _audit(release.root, manifest, workers, threshold, min_correlation, progress)
        write_report(cache, key, report)
    log.info("audit of %s: computed (%d images)", release.root, sum(report.images.values()))
    return report


def _audit(
    root: Path,
    manifest: pa.Table,
    workers: int | None,
    threshold: int,
    min_correlation: float,
    progress: Callable[[Iterable, int], Iterable] | None,
) -> AuditReport:
    features = pixel_features(root, manifest, workers=workers, progress=progress)
    rows = [r for r in manifest.to_pylist() if r["kind"] == "image" and r["sha256"]]
    unreadable = {r["path"] for r in rows if features.get(r["sha256"], {}).get("pixel_error")}
    rows = [r for r in rows if r["path"] not in unreadable]  # an image that does not decode is not counted
    report = AuditReport(threshold, min_correlation, dict(Counter(r["part"] for r in rows)))
    report.unreadable = sorted(unreadable)
    evidence = collect_evidence(rows, features, threshold, min_correlation)
    report.exact_groups, report.near_groups, report.labeled_near_groups = (
        evidence.exact,
        evidence.near,
        evidence.labeled_near,
    )
    report.near_units, report.labeled_near_units = evidence.near_units, evidence.labeled_near_units
    report.labeled_pairs = evidence.labeled_pairs
    merged = report.duplicate_sets()
    labeled_sets = report.labeled_sets()
    report.label_conflicts = label_conflicts(labeled_sets)
    labeled_rows = [r for r in rows if r["part"] == "labeled"]
    for scheme in ("fold2", "fold5"):
        report.leakage[scheme] = leakage(report.labeled_pairs, {r["path"]: r[scheme] for r in labeled_rows})
    report.large_units = large_units(report.labeled_split_units(), Counter(r["class"] for r in labeled_rows))
    for other in ("segmented", "unlabeled"):
        found = {
            kind: {f for g in groups if "labeled" in g.parts for f, p in zip(g.files, g.parts) if p == other}
            for kind, groups in (("exact", report.exact_groups), ("near", report.near_groups))
        }
        report.overlaps[f"{other}-in-labeled"] = {
            "exact": len(found["exact"]),
            "near": len(found["near"] - found["exact"]),
            "total": report.images.get(other, 0),
        }
    report.scopeguide_files = sorted(r["path"] for r in rows if has_scopeguide(features, r))
    report.black_box_files = sorted(r["path"] for r in rows if has_black_box(features, r))
    for cls in CLASSES:
        report.scopeguide[cls.folder] = mark_counts([r for r in labeled_rows if r["class"] == cls.folder], features)
        report.per_class[cls.folder] = {
            "duplicates": sum(g.classes[i] == cls.folder for g in labeled_sets for i in g.labeled_files()),
            "label_conflicts": sum(c["classes"].count(cls.folder) for c in report.label_conflicts),
        }
    segmented = [r for r in rows if r["part"] == "segmented"]
    if segmented:
        report.segmented_corner = mark_counts(segmented, features)
        report.kvasir_seg_official = kvasir_seg_straddle(report.split_units(), segmented)
    report.video_duplicates = _video_duplicates([r for r in manifest.to_pylist() if r["kind"] == "video"])
    report.summary = summary(report, len(labeled_rows), merged)
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
    metadata = sorted(
        sorted(r["path"] for r in rows)
        for rows in by_meta.values()
        if len(rows) > 1 and len({r["sha256"] for r in rows}) > 1
    )
    return {"exact": exact, "metadata": metadata}
