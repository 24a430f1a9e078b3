"""Evaluate predictions CSVs from any model against the release, with the paper's metrics; the majority-class
baseline; a checkpoint on a labelled folder (external validation).

Predictions: ``file-name,label`` then optional probability columns (design.md; written by
:func:`write_predictions`). Truth: an official split CSV (``file-name;class-name;split-index``), a
``file-name,label`` CSV, or the class folders of a release. Labels may use any of the three class namings;
everything is joined on file name.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from hyperkvasir.classify.decision import decide, decision_probabilities, rule_offsets
from hyperkvasir.data.audit import AuditReport
from hyperkvasir.data.inputs import PREDICT_IMAGE_SUFFIXES
from hyperkvasir.data.layout import Release
from hyperkvasir.data.splits import assignment
from hyperkvasir.data.taxonomy import CLASSES, lookup
from hyperkvasir.errors import DataError, HyperKvasirError, ReleaseFormatError, UnknownClassError
from hyperkvasir.metrics.calibration import calibration, plot_reliability
from hyperkvasir.metrics.classification import (
    average_folds,
    classification_metrics,
    plot_confusion_matrix,
    scored_metrics,
)
from hyperkvasir.outputs import atomic_write


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """(lower-cased header, rows) of a CSV; a row whose fields do not line up with the header is refused with its
    line number, since a shifted row would be read as another file's label."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except IsADirectoryError:
        raise HyperKvasirError(f"{path}: is a folder; pass a CSV file") from None
    except FileNotFoundError:
        raise HyperKvasirError(f"{path}: no such file; check the path") from None
    except OSError as error:
        raise ReleaseFormatError(path, f"cannot read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ReleaseFormatError(path, "is not a text CSV (binary content); pass a predictions or split CSV") from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise ReleaseFormatError(path, "file is empty")
    delimiter = ";" if lines[0][1].count(";") > lines[0][1].count(",") else ","
    rows = []
    for number, line in lines:
        try:
            rows.append(next(csv.reader([line], delimiter=delimiter, strict=True)))
        except csv.Error as error:
            raise ReleaseFormatError(
                path, f"not a CSV row ({error}); quote names holding {delimiter!r}", number
            ) from None
        if len(rows[-1]) != len(rows[0]):
            raise ReleaseFormatError(
                path,
                f"{len(rows[-1])} fields where the header has {len(rows[0])}; give every row one value per column",
                number,
            )
    header, *body = rows
    return [h.strip().lower() for h in header], body


def _labels(path: Path, name_column: str, label_column: str) -> dict[str, int]:
    header, body = _rows(path)
    if name_column not in header or label_column not in header:
        raise ReleaseFormatError(path, f"header needs {name_column!r} and {label_column!r}; found {header}", 1)
    at_name, at_label = header.index(name_column), header.index(label_column)
    names = [row[at_name] for row in body]
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise ReleaseFormatError(path, f"{len(repeated)} file names repeated: {', '.join(repeated[:5])}")
    unknown = sorted({row[at_label] for row in body if _safe_lookup(row[at_label]) is None})
    if unknown:
        raise ReleaseFormatError(
            path, f"unknown classes {', '.join(map(repr, unknown[:5]))}; use folder, split-CSV or paper class names"
        )
    return {row[at_name]: lookup(row[at_label]).index for row in body}


def _safe_lookup(name: str):
    try:
        return lookup(name)
    except HyperKvasirError:
        return None


def read_probabilities(path: Path) -> dict[str, np.ndarray]:
    """File name → the 23 class probabilities of a predictions CSV (``file-name,label,<class>…``); a missing
    file, column or a value that is no probability is refused with the file and line."""
    if not path.is_file():
        raise DataError(
            f"{path}: missing predictions of a benchmark run; finish the benchmark (rerun it: it "
            f"resumes) or pass another --results"
        )
    header, body = _rows(path)
    columns = [c.folder for c in CLASSES]
    absent = [c for c in ("file-name", *columns) if c not in header]
    if absent:
        raise ReleaseFormatError(
            path,
            f"no column {absent[0]!r}; a benchmark's predictions CSV has file-name, "
            f"label and one probability per class",
            1,
        )
    at = [header.index(c) for c in columns]
    found = {}
    for number, row in enumerate(body, start=2):
        try:
            values = np.asarray([float(row[i]) for i in at])
        except ValueError:
            values = np.asarray([np.nan])
        if not np.isfinite(values).all() or (values < 0).any() or (values > 1).any():
            raise ReleaseFormatError(path, "a probability that is not a number in [0, 1]", number)
        name = row[header.index("file-name")]
        if name in found:
            raise ReleaseFormatError(path, f"{name} is listed twice; one row per image", number)
        found[name] = values
    return found


def write_predictions(path: Path, names: list[str], probs: np.ndarray, decided: np.ndarray) -> None:
    """The documented predictions CSV: ``file-name,label,<one probability column per class folder name>``; the
    label is the decision (with the decision rule's offsets when the run fitted them)."""
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file-name", "label", *(c.folder for c in CLASSES)])
        for name, label, row in zip(names, decided, probs):
            writer.writerow([name, CLASSES[int(label)].folder, *(f"{p:.6f}" for p in row)])


def read_predictions(path: str | Path) -> dict[str, int]:
    """File name → predicted class index from a predictions CSV."""
    return _labels(Path(path), "file-name", "label")


def read_truth(path: str | Path) -> dict[str, int]:
    """File name → true class index from an official split CSV or a ``file-name,label`` CSV."""
    path = Path(path)
    header, _ = _rows(path)
    return _labels(path, "file-name", "class-name" if "class-name" in header else "label")


def truth_from_release(root: str | Path) -> dict[str, int]:
    """File name → class index from the class folders of a release's labeled part."""
    release = Release(root)
    release.require("labeled")
    return {path.name: lookup(path.parent.name).index for path in release.labeled_files()}


def evaluate_predictions(predictions: dict[str, int], truth: dict[str, int], source: str = "predictions") -> dict:
    """Metrics over the predicted files; a prediction for a file the truth does not know is a data error (exit 1,
    like an unknown class in the file)."""
    if not predictions:
        raise DataError(f"{source}: no predictions to evaluate")
    unknown = sorted(set(predictions) - set(truth))
    if unknown:
        raise DataError(
            f"{source}: {len(unknown)} predicted files are not in the truth "
            f"(first: {', '.join(unknown[:5])}); check the file names and the fold"
        )
    names = sorted(predictions)
    return scored_metrics([truth[n] for n in names], [predictions[n] for n in names])


def majority_baseline(root: Path, scheme: str, seed: int, report: AuditReport | None = None) -> dict:
    """Always predict the training folds' most frequent class, per test fold, averaged (the paper's row);
    ``report``: the tree's audit when the caller has it."""
    split = assignment(root, scheme, seed=seed, report=report)
    folds = []
    for fold in range(split.k):
        subsets = split.subsets(fold)
        train = Counter(split.files[n][0].index for n in subsets["train"] + subsets["val"])
        majority = train.most_common(1)[0][0]
        truth = [split.files[n][0].index for n in subsets["test"]]
        if truth:
            folds.append(classification_metrics(truth, [majority] * len(truth)))
    return average_folds(folds)


def truth_from_imagefolder(folder: str | Path) -> dict[Path, int]:
    """Image path → class index from class subfolders named in any of the three namings (folder, split CSV,
    paper ID); images may sit at any depth below their class folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HyperKvasirError(f"{folder}: not a folder; pass a folder of class subfolders")
    truth: dict[Path, int] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            cls = lookup(sub.name)
        except UnknownClassError as error:
            raise HyperKvasirError(f"{sub}: a class subfolder must be named after a class; {error}") from None
        truth |= {p: cls.index for p in sorted(sub.rglob("*")) if p.suffix.lower() in PREDICT_IMAGE_SUFFIXES}
    if not truth:
        raise HyperKvasirError(f"{folder}: no images in class subfolders (e.g. {folder}/polyps/*.jpg)")
    return truth


def evaluate_checkpoint(
    checkpoint: str | Path,
    images: str | Path,
    out: str | Path,
    *,
    labels: str | Path | None = None,
    workers: int | None = None,
    device: str = "auto",
    progress=None,
) -> dict:
    """External validation: a classification checkpoint on a labelled folder (class subfolders, or any images
    with a ``file-name,label`` CSV): the official metrics with the checkpoint's decision rule, per class, and
    calibration (ECE, reliability diagram). Writes predictions.parquet, metrics.json and two PNGs to ``out``."""
    # torch and the model load only for this command: reading and scoring CSVs (compare, label issues) stays light
    from hyperkvasir.classify.predict import predict_images
    from hyperkvasir.engine.runs import checkpoint_task, load_checkpoint, loader_workers

    checkpoint_task(checkpoint)  # a file that is no checkpoint is refused before the folder is read
    if labels is not None:
        by_name = read_truth(labels)
        found = {p.name: p for p in Path(images).rglob("*") if p.name in by_name}
        missing = sorted(set(by_name) - set(found))
        if missing:
            raise ReleaseFormatError(
                Path(labels), f"{len(missing)} listed files are not under {images} (first: {missing[0]})"
            )
        truth = {found[name]: index for name, index in by_name.items()}
    else:
        truth = truth_from_imagefolder(images)
    out = Path(out)
    summary = predict_images(
        checkpoint,
        list(truth),
        out / "predictions.parquet",
        workers=loader_workers(workers),
        device=device,
        progress=progress,
    )
    rows = pq.read_table(out / "predictions.parquet").to_pylist()
    probabilities = np.asarray([[row[c.folder] for c in CLASSES] for row in rows])
    true = [truth[Path(row["path"])] for row in rows]
    offsets = rule_offsets(load_checkpoint(checkpoint, "classify", mmap=True))
    metrics = scored_metrics(true, decide(probabilities, offsets))
    metrics |= {
        "calibration": calibration(decision_probabilities(probabilities, offsets), true, len(CLASSES)),
        "decision_rule_applied": offsets is not None,
        "undecodable": summary["undecodable"],
        "checkpoint": str(checkpoint),
        "images": str(images),
    }
    with atomic_write(out / "metrics.json", "w") as handle:
        json.dump(metrics, handle, indent=2)
    plot_reliability(metrics["calibration"], out / "reliability.png", "reliability")
    plot_confusion_matrix(metrics, out / "confusion.png", f"external validation: macro F1 {metrics['macro_f1']:.3f}")
    return metrics
