"""The 23-class classification dataset over the manifest and a split.

``extra`` adds (path relative to the root, class index) pairs such as pseudo-labels. Samples are
``(uint8 CHW image tensor, class index in taxonomy order, file name)``; normalisation runs per
batch on the device (:func:`~hyperkvasir.datasets.transforms.normalise`). Images come from the pre-resized
cache (default) or straight from the JPEG through the same :func:`load_square`; augmentation randomness is
seeded per (seed, epoch, sample), so a run is reproducible whatever the number of loader workers, and a
resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from hyperkvasir.data.download import ensure_parts
from hyperkvasir.data.imaging import ImageDecodeError, load_square
from hyperkvasir.data.index import build_index
from hyperkvasir.data.taxonomy import lookup
from hyperkvasir.datasets.cache import SquareCache, open_cache
from hyperkvasir.datasets.transforms import classification_transform
from hyperkvasir.errors import HyperKvasirError

log = logging.getLogger(__name__)


class LabeledImages(Dataset):
    """Labeled images named by file name (as in the split CSVs)."""

    def __init__(
        self, root: str | Path, files: list[str], *, input_size: int = 224, recipe: str = "paper",
        train: bool = False, cache: SquareCache | None = None,
        seed: int = 0, manifest: list[dict] | None = None, download: bool = False,
        extra: list[tuple[str, int]] = (),
    ) -> None:
        self.root = ensure_parts(root, ("labeled",), download_missing=download).root
        rows = manifest if manifest is not None else build_index(self.root).to_pylist()
        by_name = {Path(r["path"]).name: r for r in rows if r["part"] == "labeled"}
        missing = [name for name in files if name not in by_name]
        if missing:
            raise HyperKvasirError(f"{self.root}: {len(missing)} files of the split are not in labeled-images/ "
                                   f"(first: {missing[0]}); run `hyperkvasir validate {self.root}`")
        usable = [by_name[name] for name in files if by_name[name]["decodes"]]
        self.skipped = [Path(r["path"]).name for r in (by_name[n] for n in files) if not r["decodes"]]
        for name in self.skipped:
            log.warning("skipping %s: it does not decode", name)
        self.paths = [r["path"] for r in usable]
        self.names = [Path(r["path"]).name for r in usable]
        self.labels = [lookup(r["class"]).index for r in usable]
        for relpath, label in extra:  # pseudo-labelled images (e.g. from unlabeled-images/), read directly
            self.paths.append(relpath)
            self.names.append(Path(relpath).name)
            self.labels.append(label)
        self.input_size = input_size
        self.cache = cache
        self.transform = classification_transform(recipe, input_size, train)
        self.train, self.seed, self.epoch = train, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        path = self.paths[index]
        if self.cache is not None and path in self.cache:
            return np.array(self.cache[path])  # a writable copy of the memory-mapped row
        return load_square(self.root / path, self.input_size)

    def __getitem__(self, index: int):
        try:
            image = self.load(index)
        except ImageDecodeError as error:  # a file corrupted after indexing: skipped by the collate function
            log.warning("skipping %s", error)
            return None
        if self.train:
            self.transform.set_random_seed(hash((self.seed, self.epoch, index)) & 0x7FFFFFFF)
        return self.transform(image=image)["image"], self.labels[index], self.names[index]

    def class_counts(self) -> Counter:
        return Counter(self.labels)


def open_labeled(root: Path, files: list[str], *, input_size: int, use_cache: bool, manifest: list[dict],
                 progress=None, **kwargs) -> LabeledImages:
    """A dataset over ``files``, with the shared cache of all decodable labeled images when ``use_cache``."""
    cache = None
    if use_cache:
        entries = [(r["path"], r["sha256"]) for r in manifest if r["part"] == "labeled" and r["decodes"]]
        cache = open_cache(root, entries, input_size, progress=progress)
    return LabeledImages(root, files, input_size=input_size, cache=cache, manifest=manifest, **kwargs)


def balanced_sampler(dataset: LabeledImages, seed: int, epoch: int) -> WeightedRandomSampler:
    """Draws each class equally often on average (weights 1 / class count): the rare classes get seen."""
    counts = dataset.class_counts()
    weights = torch.as_tensor([1.0 / counts[label] for label in dataset.labels], dtype=torch.double)
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return WeightedRandomSampler(weights, num_samples=len(dataset), replacement=True, generator=generator)
