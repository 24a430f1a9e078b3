"""The next unlabeled images worth an expert's time: uncertain and unlike what is labeled or already chosen.

Uncertainty is one minus the margin between the classifier's two most probable classes (with ``classes``: the
probability of those classes instead, to aim at rare ones). Diversity is k-center greedy on the checkpoint's
embeddings: each step takes the eligible image with the highest uncertainty × cosine distance to its nearest
labeled or chosen image. Near duplicates never enter: an unlabeled image in an audit duplicate set with a labeled
or chosen image is skipped, and so is one closer than the duplicate distance to any of them. That distance is
calibrated on the tree's own duplicates (the audit's confirmed pairs, measured in this embedding).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import urllib.parse
from pathlib import Path

import numpy as np

from hyperkvasir.data.taxonomy import CLASSES, lookup
from hyperkvasir.errors import DataError

IDENTICAL = 1e-6  # the duplicate distance without enough pairs to calibrate on: only identical embeddings
DUPLICATE_QUANTILE = 0.9  # share of the tree's confirmed duplicate pairs that fall under the calibrated distance
MIN_PAIRS = 5  # confirmed pairs needed to calibrate
POOL = 20  # k-center greedy runs over the POOL × budget most uncertain images (the others rarely win a step)
FIELDS = ("rank", "file", "predicted", "probability", "uncertainty", "nearest_labeled", "distance")
# Label Studio serves local files under this URL, relative to its document root: start it with
# LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=ROOT, add a local-files
# storage at ROOT, then import label-studio.json into a project set up with label-studio.xml
LOCAL_FILES = "/data/local-files/?d="


def to_label(
    root: str | Path,
    checkpoint: str | Path,
    budget: int,
    *,
    classes: list[str] | None = None,
    workers: int = 0,
    progress=None,
) -> dict:
    """The ``budget`` images, in order of choice, with the calibrated duplicate distance and the counts."""
    from hyperkvasir.data.layout import Release
    from hyperkvasir.errors import require_range
    from hyperkvasir.label.embed import embed_parts

    require_range("--budget", budget, 1, None)
    aimed = [lookup(name).index for name in classes or []]
    release = Release(root)
    if "unlabeled" not in release.present_parts():
        raise DataError(f"{root}: no unlabeled-images/ part; to-label chooses among unlabeled images")
    # the segmented images, copies of labeled polyps, calibrate the duplicate distance
    parts = ("unlabeled", *(p for p in ("labeled", "segmented") if p in release.present_parts()))
    found = embed_parts(root, parts=parts, checkpoint=checkpoint, workers=workers, progress=progress)
    unlabeled = np.asarray([part == "unlabeled" for part in found.parts])
    labeled = np.asarray([part == "labeled" for part in found.parts])
    probabilities = found.probabilities[unlabeled]
    paths = [p for p, u in zip(found.paths, unlabeled) if u]
    labeled_paths = [p for p, known in zip(found.paths, labeled) if known]
    groups = duplicate_sets(root, found.paths)
    threshold, pairs = calibrated_distance(found.vectors, found.paths, groups)
    chosen, nearest, distance = choose(
        found.vectors[unlabeled],
        found.vectors[labeled],
        probabilities,
        budget,
        threshold=threshold,
        candidate_groups=[groups.get(p) for p in paths],
        labeled_groups={groups[p] for p in labeled_paths if p in groups},
        aimed=aimed,
    )
    decided = _decided(checkpoint, probabilities)
    rows = [
        {
            "rank": n + 1,
            "file": paths[i],
            "predicted": CLASSES[decided[i]].folder,
            "probability": round(float(probabilities[i, decided[i]]), 6),
            "uncertainty": round(float(_uncertainty(probabilities[i : i + 1])[0]), 6),
            "nearest_labeled": labeled_paths[nearest[n]] if nearest[n] >= 0 else None,
            "distance": round(float(distance[n]), 6),
        }
        for n, i in enumerate(chosen)
    ]
    return {
        "rows": rows,
        "duplicate_distance": threshold,
        "calibration_pairs": pairs,
        "unlabeled": len(paths),
        "budget": budget,
        "classes": [CLASSES[i].folder for i in aimed],
    }


def _uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """One minus the margin between the two most probable classes."""
    top = np.sort(probabilities, axis=1)[:, -2:]
    return 1.0 - (top[:, 1] - top[:, 0])


def choose(
    candidates: np.ndarray,
    labeled: np.ndarray,
    probabilities: np.ndarray,
    budget: int,
    *,
    threshold: float,
    candidate_groups: list[int | None],
    labeled_groups: set[int],
    aimed: list[int] | None = None,
) -> tuple[list[int], list[int], list[float]]:
    """The selection of ``to-label`` on given embeddings and class probabilities (one row per candidate): the
    uncertainty (or the probability of the ``aimed`` classes) weighting k-center greedy, near duplicates left out.
    Returns (chosen candidate rows in order, their nearest labeled row or −1, the distance that chose them);
    ``bench/label_loop.py`` runs the same selection in its simulated labeling loop."""
    weight = probabilities[:, aimed].sum(1) if aimed else _uncertainty(probabilities)
    return _greedy(candidates, labeled, weight, budget, threshold, candidate_groups, labeled_groups)


def duplicate_sets(root: str | Path, paths: list[str]) -> dict[str, int]:
    """Path → number of its audit duplicate set (byte copies and confirmed near pairs, over every part)."""
    from hyperkvasir.data.audit import audit

    known = set(paths)
    return {f: n for n, group in enumerate(audit(root).duplicate_sets()) for f in group.files if f in known}


def calibrated_distance(vectors: np.ndarray, paths: list[str], groups: dict[str, int]) -> tuple[float, int]:
    """(duplicate distance, pairs it was calibrated on): the DUPLICATE_QUANTILE of the cosine distances between
    members of the audit's duplicate sets in this embedding, or IDENTICAL with fewer than MIN_PAIRS (a fixed
    distance would mean something else in every embedding)."""
    members: dict[int, list[int]] = {}
    for row, path in enumerate(paths):
        if path in groups:
            members.setdefault(groups[path], []).append(row)
    distances = [
        1.0 - float(vectors[a] @ vectors[b])
        for rows in members.values()
        for n, a in enumerate(rows)
        for b in rows[n + 1 :]
    ]
    if len(distances) < MIN_PAIRS:
        return IDENTICAL, len(distances)
    return max(float(np.quantile(distances, DUPLICATE_QUANTILE)), IDENTICAL), len(distances)


def _greedy(
    candidates: np.ndarray,
    labeled: np.ndarray,
    weight: np.ndarray,
    budget: int,
    threshold: float,
    group_of: list[int | None],
    taken_groups: set[int],
) -> tuple[list[int], list[int], list[float]]:
    """k-center greedy weighted by ``weight`` over the most uncertain POOL × budget candidates: (chosen candidate
    rows in order, their nearest labeled row or −1, the distance that chose them)."""
    pool = np.argsort(-weight, kind="stable")[: POOL * budget]
    vectors = candidates[pool]
    if len(labeled):
        similarity = vectors @ labeled.T
        nearest_labeled = similarity.argmax(1)
        gap = 1.0 - similarity.max(1)
    else:
        nearest_labeled, gap = np.full(len(pool), -1), np.ones(len(pool))
    eligible = np.asarray([group_of[i] not in taken_groups for i in pool]) & (gap >= threshold)
    chosen, distances = [], []
    while len(chosen) < budget and eligible.any():
        best = int(np.argmax(np.where(eligible, weight[pool] * np.maximum(gap, 1e-6), -np.inf)))
        chosen.append(best)
        distances.append(float(gap[best]))
        gap = np.minimum(gap, 1.0 - vectors @ vectors[best])
        same = group_of[pool[best]]
        eligible &= (gap >= threshold) & np.asarray([same is None or group_of[i] != same for i in pool])
        eligible[best] = False
    return [int(pool[c]) for c in chosen], [int(nearest_labeled[c]) for c in chosen], distances


def _decided(checkpoint: str | Path, probabilities: np.ndarray) -> np.ndarray:
    """The checkpoint's decision (its decision rule when it has one) on ``probabilities``."""
    from hyperkvasir.classify.decision import decide
    from hyperkvasir.engine.runs import load_checkpoint

    rule = load_checkpoint(checkpoint, "classify", mmap=True).get("decision_rule")
    return decide(probabilities, np.asarray(rule["offsets"]) if rule else None)


def label_studio_tasks(rows: list[dict], model_version: str) -> list[dict]:
    """A Label Studio task list: each image as a local-files URL relative to the release root (serve the root as
    Label Studio's document root) and the model's class as a pre-annotation of the ``class`` choices."""
    return [
        {
            "data": {"image": LOCAL_FILES + urllib.parse.quote(row["file"]), "file": row["file"]},
            "predictions": [
                {
                    "model_version": model_version,
                    "score": row["probability"],
                    "result": [
                        {
                            "from_name": "class",
                            "to_name": "image",
                            "type": "choices",
                            "value": {"choices": [row["predicted"]]},
                        }
                    ],
                }
            ],
        }
        for row in rows
    ]


def label_studio_config() -> str:
    """The labeling interface the tasks' pre-annotations fit: the image and one choice per class."""
    choices = "\n".join(f'    <Choice value="{c.folder}"/>' for c in CLASSES)
    return (
        f'<View>\n  <Image name="image" value="$image"/>\n  <Choices name="class" toName="image" '
        f'choice="single" showInline="false">\n{choices}\n  </Choices>\n</View>\n'
    )


def write_queue(out: str | Path, summary: dict, model_version: str) -> list[Path]:
    """``OUT/to-label.csv``, ``OUT/label-studio.json`` and ``OUT/label-studio.xml``: all three are written and
    flushed to temp files first and renamed only then, so a full disk leaves the previous set (or none), never a
    mix."""
    from hyperkvasir.outputs import atomic_write

    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary["rows"])
    contents = {
        "to-label.csv": table.getvalue(),
        "label-studio.json": json.dumps(label_studio_tasks(summary["rows"], model_version), indent=2),
        "label-studio.xml": label_studio_config(),
    }
    with contextlib.ExitStack() as staged:
        for name, text in contents.items():
            handle = staged.enter_context(atomic_write(Path(out) / name, "w"))
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # a full disk fails here, before any file is renamed
    return [Path(out) / name for name in contents]
