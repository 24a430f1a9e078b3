"""The report's labeling section: the doubtful labels (`label-issues` on the benchmark given with ``--results``)
and a map of the labeled images' embeddings (kept in the work dir by `embed`), duplicates and label conflicts
marked. Each part appears only when its input exists; otherwise the section says how to get it. Nothing here
trains or embeds: the report stays as fast as its inputs allow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hyperkvasir.data.layout import Release
from hyperkvasir.data.tables import read_split_csv
from hyperkvasir.errors import HyperKvasirError
from hyperkvasir.report import figures as fig

ISSUE_ROWS = 30  # rows of the table; the command lists them all
ISSUE_HEADER = ["rank", "file", "given", "suggested", "score", "grade steps", "reason"]


def labeling_section(release: Release, report, results: Path | None, sink: fig.FigureSink) -> dict:
    """``issues`` (a table or None) with ``issues_note``, and ``map`` ((caption, data URI) or None) with
    ``map_note``."""
    issues, issues_note = _issues(release.root, results)
    embedding_map, map_note = _map(release, report, sink)
    return {"issues": issues, "issues_note": issues_note, "map": embedding_map, "map_note": map_note}


def _issues(root: Path, results: Path | None) -> tuple[dict | None, str]:
    from hyperkvasir.label.issues import out_of_fold, rank_issues

    how = (
        "run `hyperkvasir benchmark ROOT --out BENCH` (the test protocol scores every labeled image out of fold), "
        "then `hyperkvasir report ROOT --results BENCH`"
    )
    if results is None:
        return None, f"No benchmark results given: {how}."
    if "models" not in json.loads((results / "results.json").read_text()):
        return None, f"{results} holds no classification benchmark, whose out-of-fold probabilities rank labels: {how}."
    try:
        scored = out_of_fold(root, results)
        rows = rank_issues(root, scored)
    except HyperKvasirError as error:  # a dev-protocol benchmark, cleanlab absent, results of another tree
        return None, f"Not from these results: {error}"
    table = {
        "header": ISSUE_HEADER,
        "rows": [
            [
                str(n),
                r["file"],
                r["given"],
                r["suggested"],
                "–" if r["score"] is None else f"{r['score']:.3f}",
                "" if r["grade_steps"] is None else str(r["grade_steps"]),
                r["reason"],
            ]
            for n, r in enumerate(rows[:ISSUE_ROWS], 1)
        ],
    }
    note = (
        f"{len(rows)} doubtful labels among {len(scored.files):,} labeled images scored out of fold by "
        f"{scored.model} (confident learning with cleanlab; the audit's duplicates under another class first)"
        f"{f'; the first {ISSUE_ROWS} shown' if len(rows) > ISSUE_ROWS else ''}. All of them: `hyperkvasir "
        f"label-issues ROOT --results {results} --out issues.csv`; step through them with `hyperkvasir review`."
    )
    return (table if rows else None), note


def _map(release: Release, report, sink: fig.FigureSink) -> tuple[tuple[str, str] | None, str]:
    from sklearn.decomposition import PCA

    from hyperkvasir.label.embed import stored_embeddings

    if release.part("labeled") is None:
        return None, "The tree has no labeled images to map."
    kept = stored_embeddings(release.root, "labeled")
    if kept is None:
        return None, (
            "No embeddings of the labeled images as they are now in the work dir: run `hyperkvasir embed "
            "ROOT` (or with `--checkpoint best.ckpt`, a trained classifier's view), then make the report "
            "again."
        )
    found, model = kept
    if len(found.paths) < 3:
        return None, f"Only {len(found.paths)} labeled images have an embedding; a map needs three or more."
    projection = PCA(n_components=2, random_state=0).fit(found.vectors)
    points = projection.transform(found.vectors)
    folds, scheme = _folds(release, found.paths)
    in_sets = {f for group in report.duplicate_sets() if len(group.files) > 1 for f in group.files}
    conflicting = {f for conflict in report.label_conflicts for f in conflict["files"]}
    duplicate = np.asarray([p in in_sets for p in found.paths])
    conflict = np.asarray([p in conflicting for p in found.paths])
    explained = float(projection.explained_variance_ratio_.sum())
    title = (
        f"{len(found.paths):,} labeled images, {model} embeddings, PCA to two components "
        f"({explained:.0%} of the variance)"
    )
    uri = sink.figure(
        "embedding-map",
        fig.embedding_map(points, [Path(p).parent.name for p in found.paths], folds, duplicate, conflict, title),
    )
    caption = (
        f"Embedding map: {title}; folds of the {scheme}. Ringed: members of a duplicate set "
        f"({int(duplicate.sum())}); crossed: label conflicts ({int(conflict.sum())}). Images of one class far "
        f"inside another's cloud are worth a look; a fold that sits apart from the other is a shift between "
        f"folds."
    )
    return (caption, uri), ""


def _folds(release: Release, paths: list[str]) -> tuple[list[str], str]:
    """Each image's fold: of the official 2-fold split where the tree has it, else of grouped-2fold."""
    csv = release.split_csv(2)
    if csv is not None:
        fold_of = {row.file_name: f"fold {row.fold}" for row in read_split_csv(csv)}
        scheme = "official 2-fold split"
    else:
        from hyperkvasir.data.splits import assignment

        fold_of = {
            name: f"fold {fold}"
            for name, (_, fold, _) in assignment(release.root, "grouped-2fold", allow_ambiguous=True).files.items()
        }
        scheme = "leakage-free grouped-2fold split (no official split in the tree)"
    return [fold_of.get(Path(p).name, "no fold") for p in paths], scheme
