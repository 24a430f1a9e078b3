"""Calibration of the audit's pixel checks on real release pixels (evidence for docs/calibration.md).

Prints, for the shared real sample (``$HYPERKVASIR_SHARED/real-sample``): the pHash distance of every image pair
against the thumbnail correlation that confirms near-identical pairs (both distributions), the ScopeGuide
detector's precision and recall against the by-eye labels in ``tests/data/real_scopeguide_labels.csv`` next to
the earlier saturated-green rule, and the black-box shares.

    HYPERKVASIR_SHARED=../shared/data python bench/real_calibration.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from hyperkvasir.data.audit import NEAR_DUPLICATE_MIN_CORRELATION, NEAR_DUPLICATE_THRESHOLD
from hyperkvasir.data.pixels import (
    BLACK_BOX_MIN_HEIGHT,
    SCOPEGUIDE_MIN_SHARE,
    pixel_evidence,
    thumbnail_correlations,
)

LABELS = Path(__file__).parents[1] / "tests" / "data" / "real_scopeguide_labels.csv"


def saturated_green_rule(path: Path) -> bool:
    """The detector before calibration: saturated green in the lower-left corner (kept here as the baseline)."""
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    h, w, _ = rgb.shape
    corner = rgb[int(h * 0.7) :, : int(w * 0.22)]
    r, g, b = corner[..., 0], corner[..., 1], corner[..., 2]
    return float(((g > 110) & (g > r + 50) & (g > b + 40)).mean()) >= 0.01


def main() -> None:
    sample = Path(os.environ.get("HYPERKVASIR_SHARED", "../shared/data")) / "real-sample"
    rows = [line.split(";") for line in LABELS.read_text().splitlines() if line and not line.startswith("#")][1:]
    paths = [sample / path for path, _ in rows]
    truth = np.asarray([int(flag) for _, flag in rows], bool)
    evidence = [pixel_evidence(path.read_bytes()) for path in paths]

    def precision_recall(flagged: np.ndarray) -> dict:
        tp = int((flagged & truth).sum())
        return {
            "flagged": int(flagged.sum()),
            "precision": round(tp / max(1, flagged.sum()), 4),
            "recall": round(tp / max(1, truth.sum()), 4),
        }

    scope = np.asarray([e["scopeguide"] >= SCOPEGUIDE_MIN_SHARE for e in evidence])
    box = np.asarray([not s and e["black_box"] >= BLACK_BOX_MIN_HEIGHT for s, e in zip(scope, evidence)])
    segmented = np.asarray([p.parts[-3] == "segmented-original" for p in paths])
    hashes = np.asarray([e["phash"] for e in evidence], np.uint64)
    upper = np.triu_indices(len(paths), 1)
    distance = np.bitwise_count(hashes[:, None] ^ hashes[None, :])[upper]
    correlation = thumbnail_correlations([e["thumbnail"] for e in evidence], np.stack(upper, axis=1))  # the audit's
    same = correlation >= NEAR_DUPLICATE_MIN_CORRELATION
    table = {
        int(d): {
            "pairs": int((distance == d).sum()),
            "confirmed": int(((distance == d) & same).sum()),
            "max_correlation_unconfirmed": round(float(correlation[(distance == d) & ~same].max()), 3)
            if ((distance == d) & ~same).any()
            else None,
        }
        for d in range(0, 17, 2)
    }
    print(
        json.dumps(
            {
                "images": len(paths),
                "scopeguide_truth": int(truth.sum()),
                "scopeguide_calibrated": precision_recall(scope),
                "scopeguide_saturated_green_baseline": precision_recall(
                    np.asarray([saturated_green_rule(p) for p in paths])
                ),
                "black_box_share": {
                    "segmented": round(float(box[segmented].mean()), 3),
                    "labeled polyps": round(float(box[[p.parent.name == "polyps" for p in paths]].mean()), 3),
                    "labeled other": round(
                        float(box[[p.parent.name not in ("polyps", "images") for p in paths]].mean()), 3
                    ),
                },
                "phash_threshold": NEAR_DUPLICATE_THRESHOLD,
                "min_correlation": NEAR_DUPLICATE_MIN_CORRELATION,
                "pairs_by_phash_distance": table,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
