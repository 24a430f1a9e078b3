"""Labeled images whose given label is doubtful, most doubtful first.

Evidence of two kinds, merged per image:

* the model's: *out-of-fold* probabilities — each image scored by the fold model of a test-protocol benchmark
  that did not train on it (``MODEL/test-fold-K/predictions-test.csv``, averaged over seeds) — judged by confident
  learning (cleanlab: ``find_label_issues`` flags, ``get_label_quality_scores`` ranks; the score is one minus the
  label's self-confidence);
* the audit's: labeled duplicates filed under different classes (``label_conflicts``), and labeled copies of
  segmented images (every segmented image is a polyp) filed under another class. These come first: the pixels
  themselves say that a label is wrong (for a conflict: one of the two).

The suggested class is the most probable class other than the given one (for an audit finding: the class of its
duplicate). For two ulcerative-colitis grades, ``grade_steps`` is their distance on the ordinal scale
(``metrics/ordinal.py``). The release is only read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hyperkvasir.classify.evaluate import read_probabilities
from hyperkvasir.classify.results import read_results, run_folder_of
from hyperkvasir.data.taxonomy import CLASSES, lookup
from hyperkvasir.errors import DataError, HyperKvasirError

FIELDS = ("file", "given", "suggested", "score", "reason", "grade_steps")
SEGMENTED_CLASS = "polyps"  # the release's segmented images are its polyp images


@dataclass
class OutOfFold:
    """Out-of-fold probabilities of a tree's labeled images: ``files`` relative to the root, ``given`` class
    indices, ``probabilities`` (N × 23), and the labeled files no fold model scored."""

    files: list[str]
    given: np.ndarray
    probabilities: np.ndarray
    unscored: list[str]
    model: str


def label_issues(root: str | Path, results_dir: str | Path) -> list[dict]:
    """Rows (``FIELDS``) for the doubtful labeled images of ``root``, most doubtful first."""
    return rank_issues(root, out_of_fold(root, results_dir))


def out_of_fold(root: str | Path, results_dir: str | Path) -> OutOfFold:
    """The first model's out-of-fold probabilities from a test-protocol benchmark of this tree: refused (one
    line) for a folder without results, a dev-protocol benchmark, a missing or malformed predictions file, or
    predictions of files this tree does not label."""
    from hyperkvasir.data.layout import Release

    results_dir = Path(results_dir)
    results = read_results(results_dir)
    if results.get("protocol") != "test":
        raise HyperKvasirError(
            f"--results {results_dir}: a {results.get('protocol')}-protocol benchmark scores only "
            f"validation carve-outs; label-issues needs every labeled image scored out of fold: "
            f"run `hyperkvasir benchmark ROOT --protocol test`"
        )
    model = next((name for name in results["models"] if not name.startswith("avg-")), None)
    if model is None:
        raise HyperKvasirError(
            f"--results {results_dir}: results.json names no trained model; pass a benchmark's --out folder"
        )
    sums: dict[str, np.ndarray] = {}
    counts: Counter = Counter()
    for run in results["models"][model].get("runs", []):
        for name, probabilities in read_probabilities(run_folder_of(results_dir, run) / "predictions-test.csv").items():
            sums[name] = sums.get(name, 0) + probabilities
            counts[name] += 1
    release = Release(root)
    release.require("labeled")
    labeled = {path.name: path for path in release.labeled_files()}
    foreign = sorted(set(sums) - set(labeled))
    if foreign or not sums:
        raise DataError(
            f"--results {results_dir}: {len(foreign) or 'no'} predicted files are labeled images of "
            f"{root}{f' (first: {foreign[0]})' if foreign else ''}; these are results of another tree — "
            f"benchmark this tree"
        )
    names = sorted(sums)
    return OutOfFold(
        files=[labeled[n].relative_to(release.root).as_posix() for n in names],
        given=np.asarray([lookup(labeled[n].parent.name).index for n in names]),
        probabilities=np.stack([sums[n] / counts[n] for n in names]).astype(np.float64),
        unscored=sorted(labeled[n].relative_to(release.root).as_posix() for n in set(labeled) - set(sums)),
        model=model,
    )


def rank_issues(root: str | Path, scored: OutOfFold) -> list[dict]:
    """Confident learning over the classes the tree labels, merged with the audit's findings (see module)."""
    from hyperkvasir.data.audit import audit

    doubt, flagged, suggested = _confident_learning(scored.given, scored.probabilities)
    position = {f: i for i, f in enumerate(scored.files)}
    rows: dict[str, dict] = {}
    for i in np.flatnonzero(flagged):
        rows[scored.files[i]] = _row(scored.files[i], scored.given[i], suggested[i], doubt[i], "confident learning")
    report = audit(root)
    findings = _audit_findings(report)
    for file, other, reason in findings:
        at = position.get(file)
        given = lookup(Path(file).parent.name).index
        row = rows.setdefault(file, _row(file, given, other, doubt[at] if at is not None else None, reason))
        if reason not in row["reason"]:
            row["reason"] += f"; {reason}"
    # the audit's findings first (a duplicate under another class is certain evidence), each group by the model's
    # doubt; a finding no fold model scored (added after the benchmark) has no score and ends its group
    audited = {file for file, _, _ in findings}
    return sorted(
        rows.values(), key=lambda r: (r["file"] not in audited, r["score"] is None, -(r["score"] or 0.0), r["file"])
    )


def _confident_learning(given: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(doubt per image, cleanlab's issue flags, suggested class index) over the classes present in ``given``:
    cleanlab wants every class it is shown to have examples."""
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:
        raise HyperKvasirError("label-issues needs cleanlab: pip install 'hyperkvasir[label]'") from None

    present = np.unique(given)
    if len(present) < 2:
        raise DataError("label-issues needs labeled images of at least two classes")
    local = np.searchsorted(present, given)
    probs = probabilities[:, present] + 1e-12  # the classes no image is filed under are left out, then rescaled
    probs /= probs.sum(1, keepdims=True)
    quality = get_label_quality_scores(local, probs, method="self_confidence")
    flagged = find_label_issues(local, probs, filter_by="prune_by_noise_rate")
    others = probs.copy()
    others[np.arange(len(local)), local] = -1
    return 1.0 - quality, flagged, present[others.argmax(1)]


def _audit_findings(report) -> list[tuple[str, int, str]]:
    """(labeled file, class its duplicate says, reason) for labeled duplicates filed under different classes and
    for labeled copies of segmented images filed under another class than polyps."""
    findings = []
    for conflict in report.label_conflicts:
        for file, cls in zip(conflict["files"], conflict["classes"]):
            other = Counter(c for c in conflict["classes"] if c != cls).most_common(1)[0][0]
            findings.append((file, lookup(other).index, f"duplicate filed as {other}"))
    polyp = lookup(SEGMENTED_CLASS)
    for group in report.duplicate_sets():
        if "segmented" not in group.parts:
            continue
        for file, part, cls in zip(group.files, group.parts, group.classes):
            if part == "labeled" and cls and lookup(cls).index != polyp.index:
                findings.append((file, polyp.index, "copy of a segmented image (a polyp)"))
    return findings


def _row(file: str, given: int, suggested: int, score: float | None, reason: str) -> dict:
    from hyperkvasir.metrics.ordinal import UC_SCALE

    steps = (
        abs(UC_SCALE.index(int(given)) - UC_SCALE.index(int(suggested)))
        if int(given) in UC_SCALE and int(suggested) in UC_SCALE
        else None
    )
    return {
        "file": file,
        "given": CLASSES[int(given)].folder,
        "suggested": CLASSES[int(suggested)].folder,
        "score": None if score is None else round(float(score), 6),
        "reason": reason,
        "grade_steps": steps,
    }
