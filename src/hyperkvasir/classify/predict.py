"""Batched inference of a trained classifier: class probabilities over a loader of labeled batches (what a run
scores, :func:`predict_probabilities`) and over images (the unlabeled part, a folder, files; :func:`predict_images`),
optionally averaged over flips; its predictions of the unlabeled part feed pseudo-labels
(``classify/pseudo_labels.py``).

Predictions are a Parquet table: ``path`` (relative to the release root for a part, as given otherwise; bytes of a
name that are no UTF-8 written as ``\\xff``), ``label`` (folder class name) and one probability column per class
in taxonomy order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader

from hyperkvasir.classify import gradcam
from hyperkvasir.classify.data import ImageFiles
from hyperkvasir.classify.decision import decide, rule_offsets
from hyperkvasir.classify.module import ClassifyModule
from hyperkvasir.data.inputs import output_names, resolve_inputs
from hyperkvasir.data.layout import escaped
from hyperkvasir.data.taxonomy import CLASSES
from hyperkvasir.datasets.batches import collate_skipping
from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.engine.runs import distributed, from_rank_zero, gathered, pick_device
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.outputs import atomic_write, refuse_replacing, staged_folder


def flip_averaged(forward, images: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities averaged over the image and its horizontal, vertical and double flips (TTA)."""
    views = (images, images.flip(-1), images.flip(-2), images.flip(-1, -2))
    return torch.stack([torch.softmax(forward(view).float(), 1) for view in views]).mean(0)


@torch.no_grad()
def predict_probabilities(
    module: ClassifyModule, loader: DataLoader, *, tta: bool = False
) -> tuple[list, np.ndarray, list]:
    """(file names, softmax probabilities (N, 23), true labels) over a loader of uint8 batches."""
    module.eval()
    names, probs, labels = [], [], []
    for batch in loader:
        if batch is None:
            continue
        images, targets, batch_names, _ = batch
        images = images.to(module.device, non_blocking=True)
        with torch.autocast(module.device.type, enabled=module.device.type == "cuda"):
            batch_probs = flip_averaged(module, images) if tta else torch.softmax(module(images).float(), 1)
        probs.append(batch_probs.float().cpu().numpy())
        names += batch_names
        labels += targets.tolist()
    return names, np.concatenate(probs) if probs else np.zeros((0, len(CLASSES))), labels


@torch.no_grad()
def predict_images(
    checkpoint: str | Path,
    inputs: list[str | Path],
    out: str | Path,
    *,
    part: str | None = None,
    batch_size: int = 64,
    workers: int = 2,
    device: str = "auto",
    progress=None,
    gradcam_dir: str | Path | None = None,
    tta: bool = False,
) -> dict:
    """Write the predictions Parquet (and, with ``gradcam_dir``, a Grad-CAM overlay PNG per image, at the image's
    path below the inputs' folder; the folder appears whole or not at all); returns counts (images scored, skipped
    as undecodable). ``label`` applies the checkpoint's decision rule when it has one; ``tta`` averages the
    probabilities over flips."""
    rank, world = distributed()  # under torchrun each process scores every world-th image
    torch_device = pick_device(device)
    module, state = ClassifyModule.from_checkpoint(checkpoint, torch_device)
    config, offsets = module.config, rule_offsets(state)
    all_paths, root = resolve_inputs(inputs, part)
    if not all_paths:
        raise HyperKvasirError(
            f"no images (.jpg, .png, .bmp, .tif) in {', '.join(map(str, inputs))}; pass image "
            f"files or folders of them, or a release root with --part"
        )
    paths = all_paths[rank::world]
    with _shared_staging(gradcam_dir, rank, world, reads=[root] if root else inputs) as gradcams:
        names = output_names(all_paths, inputs, root)[rank::world] if gradcams else []
        scored, matrix = _score(
            module.model,
            module.spec,
            paths,
            config,
            torch_device,
            batch_size=batch_size,
            workers=workers,
            tta=tta,
            progress=progress,
            gradcams=gradcams,
            names=names,
        )
        failed = [str(paths[i]) for i in sorted(set(range(len(paths))) - set(scored))]
        if world == 1 and not scored:
            raise DataError(
                f"none of the {len(paths)} inputs decodes as an image (first: {failed[0]}); nothing "
                f"written — check the files or the folder"
            )
        relative = [escaped(str(paths[i].relative_to(root) if root else paths[i])) for i in scored]
        columns = {"path": relative, "label": [CLASSES[int(i)].folder for i in decide(matrix, offsets)]}
        columns |= {c.folder: matrix[:, c.index].astype(np.float32) for c in CLASSES}
        shards = gathered(pa.table(columns), rank, world)  # every rank's overlays are written once this returns
        table = pa.concat_tables(shards) if len(shards) > 1 else shards[0]
    if rank != 0:
        return {"images": 0, "skipped": 0, "out": str(out), "rank": rank}
    with atomic_write(out) as handle:
        pq.write_table(table, handle)
    return {
        "images": table.num_rows,
        "skipped": len(all_paths) - table.num_rows,
        "out": str(out),
        "undecodable": failed,
    }


def _score(
    model,
    spec,
    paths: list[Path],
    config,
    device: torch.device,
    *,
    batch_size: int,
    workers: int,
    tta: bool,
    progress,
    gradcams: Path | None,
    names: list[str],
) -> tuple[list[int], np.ndarray]:
    """(indices of the decoded ``paths``, their class probabilities); with ``gradcams``, each one's overlay is
    written there as ``<name>.png``."""
    loader = DataLoader(
        ImageFiles(paths, config.input_size, config.mask_corners),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_skipping,
    )
    scored, probs = [], []
    for batch in progress(loader, len(loader)) if progress else loader:
        if batch is None:
            continue
        raw, positions, _, _ = batch
        indices = positions.tolist()
        images = normalise(raw.to(device), spec.mean, spec.std)
        with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
            batch_probs = flip_averaged(model, images) if tta else torch.softmax(model(images).float(), 1)
        if gradcams is not None:
            _write_gradcams(model, images, raw, [names[i] for i in indices], gradcams)
        probs.append(batch_probs.float().cpu().numpy())
        scored += indices
    return scored, np.concatenate(probs) if probs else np.zeros((0, len(CLASSES)), np.float32)


@contextlib.contextmanager
def _shared_staging(target: str | Path | None, rank: int, world: int, *, reads: list) -> Iterator[Path | None]:
    """The Grad-CAM folder's staging folder, the same one for every rank (rank 0 makes it and shares its path on
    the common file system), renamed into place whole by rank 0 once every rank's overlays are written; None
    without ``target``."""
    if target is None:
        yield None
    elif rank == 0:
        with staged_folder(target, "predict", option="--gradcam", reads=reads) as staging:
            yield from_rank_zero(staging, world)
    else:
        refuse_replacing(Path(target), "predict", "--gradcam", reads=reads)  # as rank 0 does: all stop together
        yield from_rank_zero(None, world)


def _write_gradcams(model, images: torch.Tensor, raw: torch.Tensor, names: list[str], folder: Path) -> None:
    heat = gradcam.grad_cam(model, images.float())
    for image, cam, name in zip(raw.permute(0, 2, 3, 1).numpy(), heat, names):
        ok, encoded = cv2.imencode(".png", gradcam.overlay(image, cam)[..., ::-1])
        with atomic_write(folder / f"{name}.png") as handle:
            handle.write(encoded.tobytes())
