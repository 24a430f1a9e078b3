"""Audit a release: exact and near duplicates in and across parts, label conflicts, cross-fold leakage, part
overlaps and the frame marks a classifier can learn (ScopeGuide box, Kvasir-SEG's black box).

Exact duplicates share a SHA-256 (from the manifest). Near duplicates are proposed by a 64-bit perceptual hash
(pHash of the centre of the field of view) within :data:`NEAR_DUPLICATE_THRESHOLD` bits and confirmed by the
correlation of 16 × 16 thumbnails (:data:`NEAR_DUPLICATE_MIN_CORRELATION`); both were calibrated on real release
pixels (``docs/calibration.md``). One module per concern, each importing only the ones above it here:

* ``search``: the thresholds and the near-duplicate search (multi-index hashing, thumbnail confirmation);
* ``pixel_cache``: pixel evidence per content hash, kept in ``pixels.parquet`` of the work dir, and frame marks;
* ``groups``: duplicate groups — reported groups (leader clusters) vs split units (whole components);
* ``leakage``: pairs across folds, units too large to place, label conflicts, Kvasir-SEG's official split;
* ``report``: :class:`AuditReport`; ``summary``: its paste-ready paragraph;
* ``cache``: the report kept in ``audit.json`` under a key of the manifest, the parameters and this code;
* ``compute``: :func:`audit`, the entry point.
"""

from hyperkvasir.data.audit.compute import audit
from hyperkvasir.data.audit.groups import DuplicateGroup, merge_groups, near_clusters, pair_components
from hyperkvasir.data.audit.leakage import leakage
from hyperkvasir.data.audit.pixel_cache import PIXELS_NAME
from hyperkvasir.data.audit.report import AuditReport
from hyperkvasir.data.audit.search import (
    NEAR_DUPLICATE_MIN_CORRELATION,
    NEAR_DUPLICATE_THRESHOLD,
    confirmed_near_pairs,
    near_pairs,
)

__all__ = [
    "NEAR_DUPLICATE_MIN_CORRELATION",
    "NEAR_DUPLICATE_THRESHOLD",
    "PIXELS_NAME",
    "AuditReport",
    "DuplicateGroup",
    "audit",
    "confirmed_near_pairs",
    "leakage",
    "merge_groups",
    "near_clusters",
    "near_pairs",
    "pair_components",
]
