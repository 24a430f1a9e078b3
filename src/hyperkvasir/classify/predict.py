"""Batched inference of a trained classifier over images (the unlabeled part, a folder, files), and the
pseudo-labels that let the 99,417 unlabeled images feed a student model.

Predictions are a Parquet table: ``path`` (relative to the release root for a part, absolute otherwise),
``label`` (folder class name) and one probability column per class in taxonomy order.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset

from hyperkvasir.classify.decision import decide
from hyperkvasir.classify.module import flip_averaged
from hyperkvasir.data.imaging import ImageDecodeError, atomic_write, load_square
from hyperkvasir.data.inputs import resolve_inputs
from hyperkvasir.data.taxonomy import CLASSES, lookup
from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.engine.runs import distributed, pick_device
from hyperkvasir.models import MODELS


class _Images(Dataset):
    def __init__(self, paths: list[Path], size: int, mask_corners: bool) -> None:
        self.paths, self.size, self.mask_corners = paths, size, mask_corners

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = load_square(self.paths[index], self.size, mask_corners=self.mask_corners)
        except ImageDecodeError:
            return None
        return torch.from_numpy(image).permute(2, 0, 1), index


def _collate(batch):
    kept = [b for b in batch if b is not None]
    if not kept:
        return None
    images, indices = zip(*kept)
    return torch.stack(images), list(indices)


def load_classifier(checkpoint: str | Path, device: torch.device):
    """(timm model in eval mode, its training config, the decision rule's offsets or None) from a checkpoint of
    ``train classify``: the config carries the input size and whether corners are masked, which predict repeats."""
    from hyperkvasir.classify.module import load_classifier_checkpoint

    module, state = load_classifier_checkpoint(checkpoint, device)
    rule = state.get("decision_rule")
    return module.model, module.config, np.asarray(rule["offsets"]) if rule else None


@torch.no_grad()
def predict_images(checkpoint: str | Path, inputs: list[str | Path], out: str | Path, *, part: str | None = None,
                   batch_size: int = 64, workers: int = 2, device: str = "auto", progress=None,
                   gradcam_dir: str | Path | None = None, tta: bool = False) -> dict:
    """Write the predictions Parquet (and, with ``gradcam_dir``, a Grad-CAM overlay PNG per image); returns
    counts (images scored, skipped as undecodable). ``label`` applies the checkpoint's decision rule when it
    has one; ``tta`` averages the probabilities over flips."""
    rank, world = distributed()  # under torchrun each process scores every world-th image
    torch_device = pick_device(device)
    model, config, offsets = load_classifier(checkpoint, torch_device)
    spec = MODELS[config.model]
    all_paths, root = resolve_inputs(inputs, part)
    if not all_paths:
        raise HyperKvasirError(f"no images (.jpg, .png, .bmp, .tif) in {', '.join(map(str, inputs))}; pass image "
                               f"files or folders of them, or a release root with --part")
    paths = all_paths[rank::world]
    loader = DataLoader(_Images(paths, config.input_size, config.mask_corners), batch_size=batch_size,
                        num_workers=workers, collate_fn=_collate)
    scored, probs = [], []
    batches = progress(loader, len(loader)) if progress else loader
    for batch in batches:
        if batch is None:
            continue
        raw, indices = batch
        images = normalise(raw.to(torch_device), spec.mean, spec.std)
        with torch.no_grad(), torch.autocast(torch_device.type, enabled=torch_device.type == "cuda"):
            batch_probs = flip_averaged(model, images) if tta else torch.softmax(model(images).float(), 1)
        if gradcam_dir is not None:
            _write_gradcams(model, images, raw, [paths[i] for i in indices], Path(gradcam_dir))
        probs.append(batch_probs.float().cpu().numpy())
        scored += indices
    matrix = np.concatenate(probs) if probs else np.zeros((0, len(CLASSES)), np.float32)
    failed = [str(paths[i]) for i in sorted(set(range(len(paths))) - set(scored))]
    if world == 1 and not scored:
        raise DataError(f"none of the {len(paths)} inputs decodes as an image (first: {failed[0]}); nothing "
                        f"written — check the files or the folder")
    names = [str(paths[i].relative_to(root)) if root else str(paths[i]) for i in scored]
    columns = {"path": names, "label": [CLASSES[int(i)].folder for i in decide(matrix, offsets)]}
    columns |= {c.folder: matrix[:, c.index].astype(np.float32) for c in CLASSES}
    table = pa.table(columns)
    if world > 1:
        import torch.distributed as dist

        shards: list = [None] * world
        dist.all_gather_object(shards, table)
        # every rank leaves the group together: a rank exiting while another still holds it can abort (gloo)
        dist.barrier()
        dist.destroy_process_group()
        if rank != 0:
            return {"images": 0, "skipped": 0, "out": str(out), "rank": rank}
        table = pa.concat_tables(shards)
    with atomic_write(out) as handle:
        pq.write_table(table, handle)
    return {"images": table.num_rows, "skipped": len(all_paths) - table.num_rows, "out": str(out),
            "undecodable": failed}


def pseudo_labels(predictions: str | Path, out: str | Path, *, threshold: float = 0.9,
                  per_class: dict[str, float] | None = None, max_per_class: int | None = None) -> dict[str, int]:
    """Keep predictions whose top probability reaches its class threshold; write ``path,label`` CSV.

    ``per_class`` overrides the threshold by class name (any naming), so rare classes can be taken at a lower
    confidence; ``max_per_class`` keeps the most confident images of each class. Returns the count per class.
    """
    table = pq.read_table(predictions).to_pylist()
    thresholds = {c.folder: threshold for c in CLASSES}
    thresholds |= {lookup(name).folder: value for name, value in (per_class or {}).items()}
    chosen: dict[str, list[tuple[float, str]]] = {c.folder: [] for c in CLASSES}
    for row in table:
        confidence = row[row["label"]]
        if confidence >= thresholds[row["label"]]:
            chosen[row["label"]].append((confidence, row["path"]))
    with atomic_write(out, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "label"])
        counts = {}
        for folder, items in chosen.items():
            items.sort(reverse=True)
            kept = items[:max_per_class] if max_per_class else items
            writer.writerows((path, folder) for _, path in kept)
            counts[folder] = len(kept)
    return counts


def teacher_path(pseudo_label_csv: str | Path) -> Path:
    """Where the teacher's provenance lives beside a pseudo-label CSV (``pl.csv`` → ``pl.teacher.json``)."""
    path = Path(pseudo_label_csv)
    return path.with_name(f"{path.stem}.teacher.json")


def write_teacher(checkpoint: str | Path, pseudo_label_csv: str | Path) -> dict:
    """Record the teacher's run, scheme and folds beside its pseudo-labels, so a student can prove it never
    trains on its own test fold through them."""
    from hyperkvasir.classify.module import load_classifier_checkpoint

    config = dataclasses.asdict(load_classifier_checkpoint(checkpoint)[0].config)
    record = {"checkpoint": str(Path(checkpoint).resolve()), "run": str(Path(checkpoint).resolve().parent),
              "model": config["model"], "scheme": config["scheme"], "test_fold": config["fold"],
              "seed": config["seed"], "val_fraction": config["val_fraction"]}
    with atomic_write(teacher_path(pseudo_label_csv), "w") as handle:
        json.dump(record, handle, indent=2)
    return record


def usable_pseudo_labels(path: str | Path, root: str | Path, *, scheme: str, fold: int,
                         test_files: list[str]) -> tuple[list[tuple[str, int]], dict]:
    """Pseudo-labels a student may train on: the teacher must have held out the student's test fold under the
    same scheme, and unlabeled images the audit links to a test image are dropped (counted in the report)."""
    sidecar = teacher_path(path)
    if not sidecar.is_file():
        raise HyperKvasirError(f"{path}: no {sidecar.name} beside it, so the teacher's training folds are unknown; "
                               f"write pseudo-labels with `hyperkvasir predict … --part unlabeled --pseudo-labels`")
    teacher = json.loads(sidecar.read_text())
    if (teacher["scheme"], teacher["test_fold"]) != (scheme, fold):
        raise HyperKvasirError(
            f"{path}: the teacher ({teacher['run']}) held out fold {teacher['test_fold']} of {teacher['scheme']}, so "
            f"it trained on images of this run's test fold {fold} of {scheme}; use a teacher trained with "
            f"--scheme {scheme} --fold {fold}")
    rows = read_pseudo_labels(path)
    from hyperkvasir.data.audit import audit

    test = set(test_files)
    linked = {f for group in audit(root).duplicate_sets()
              if any(Path(f).name in test for f, p in zip(group.files, group.parts) if p == "labeled")
              for f, p in zip(group.files, group.parts) if p != "labeled"}
    kept = [(relpath, label) for relpath, label in rows if relpath not in linked]
    return kept, {"file": str(path), "teacher": teacher["run"], "rows": len(rows), "used": len(kept),
                  "dropped_duplicates_of_test_images": len(rows) - len(kept)}


def read_pseudo_labels(path: str | Path) -> list[tuple[str, int]]:
    """(path relative to the release root, class index) rows of a pseudo-label CSV."""
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != ["path", "label"]:
            raise HyperKvasirError(f"{path}: expected header 'path,label', found {reader.fieldnames}")
        for number, row in enumerate(reader, start=2):
            try:
                rows.append((row["path"], lookup(row["label"]).index))
            except HyperKvasirError as error:
                raise HyperKvasirError(f"{path}:{number}: {error}") from None
    return rows


def _write_gradcams(model, images: torch.Tensor, raw: torch.Tensor, paths: list[Path], folder: Path) -> None:
    import cv2

    from hyperkvasir.classify.gradcam import grad_cam, overlay

    heat = grad_cam(model, images.float())
    folder.mkdir(parents=True, exist_ok=True)
    for image, cam, path in zip(raw.permute(0, 2, 3, 1).numpy(), heat, paths):
        ok, encoded = cv2.imencode(".png", overlay(image, cam)[..., ::-1])
        with atomic_write(folder / f"{path.stem}.png") as handle:
            handle.write(encoded.tobytes())
