"""The classification datasets — labeled images of a split (:class:`LabeledImages`), image files for inference
(:class:`ImageFiles`) — and the data module of one fold (:class:`ClassifyData`).

``extra`` adds (path relative to the root, class index) pairs such as pseudo-labels. Samples are
``(uint8 CHW image tensor, class index in taxonomy order, file name)``; normalisation runs per
batch on the device (:func:`~hyperkvasir.datasets.transforms.normalise`). Images come from the pre-resized
cache (default) or straight from the JPEG through the same :func:`load_square`; augmentation randomness is
seeded per (seed, epoch, sample), so a run is reproducible whatever the number of loader workers, and a
resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hyperkvasir.classify.pseudo_labels import usable_pseudo_labels
from hyperkvasir.data.audit import AuditReport, audit
from hyperkvasir.data.download import ensure_parts
from hyperkvasir.data.imaging import ImageDecodeError, load_square
from hyperkvasir.data.index import build_index
from hyperkvasir.data.reviews import apply_reviews
from hyperkvasir.data.splits import assignment, drop_label_conflicts, protocol_subsets
from hyperkvasir.data.taxonomy import lookup
from hyperkvasir.datasets.cache import SquareCache, open_cache
from hyperkvasir.datasets.transforms import classification_transform
from hyperkvasir.engine.runs import loader_workers
from hyperkvasir.engine.task import TaskData
from hyperkvasir.errors import DataError, HyperKvasirError

log = logging.getLogger(__name__)


class LabeledImages(Dataset):
    """Labeled images named by file name (as in the split CSVs)."""

    def __init__(
        self,
        root: str | Path,
        files: list[str],
        *,
        input_size: int = 224,
        recipe: str = "paper",
        train: bool = False,
        cache: SquareCache | None = None,
        seed: int = 0,
        manifest: list[dict] | None = None,
        download: bool = False,
        extra: list[tuple[str, int]] = (),
        rare_below: int = 0,
        mask_corners: bool = False,
        relabel: dict[str, int] | None = None,
    ) -> None:
        self.root = ensure_parts(root, ("labeled",), download_missing=download).root
        rows = manifest if manifest is not None else build_index(self.root).to_pylist()
        by_name = {Path(r["path"]).name: r for r in rows if r["part"] == "labeled"}
        missing = [name for name in files if name not in by_name]
        if missing:
            raise HyperKvasirError(
                f"{self.root}: {len(missing)} files of the split are not in labeled-images/ "
                f"(first: {missing[0]}); run `hyperkvasir validate {self.root}`"
            )
        usable = [by_name[name] for name in files if by_name[name]["decodes"]]
        self.skipped = [Path(r["path"]).name for r in (by_name[n] for n in files) if not r["decodes"]]
        for name in self.skipped:
            log.warning("skipping %s: it does not decode", name)
        self.paths = [r["path"] for r in usable]
        self.names = [Path(r["path"]).name for r in usable]
        relabel = relabel or {}  # reviewed labels (reviews.csv) over the released ones, by file name
        self.labels = [relabel.get(name, lookup(r["class"]).index) for name, r in zip(self.names, usable)]
        for relpath, label in extra:  # pseudo-labelled images (e.g. from unlabeled-images/), read directly
            self.paths.append(relpath)
            self.names.append(Path(relpath).name)
            self.labels.append(label)
        self.input_size = input_size
        self.cache = cache
        self.mask_corners = mask_corners
        self.transform = classification_transform(recipe, input_size, train)
        # classes with fewer than ``rare_below`` training images get the stronger label-safe pipeline
        counts = Counter(self.labels)
        self.rare = {label for label, n in counts.items() if n < rare_below} if train else set()
        self.rare_transform = classification_transform("rare", input_size, True) if self.rare else None
        self.train, self.seed, self.epoch = train, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        path = self.paths[index]
        if self.cache is not None and path in self.cache:
            return np.array(self.cache[path])  # a writable copy of the memory-mapped row
        return load_square(self.root / path, self.input_size, mask_corners=self.mask_corners)

    def __getitem__(self, index: int):
        try:
            image = self.load(index)
        except ImageDecodeError as error:  # a file corrupted after indexing: skipped by the collate function
            log.warning("skipping %s", error)
            return None
        transform = self.rare_transform if self.labels[index] in self.rare else self.transform
        if self.train:
            transform.set_random_seed(hash((self.seed, self.epoch, index)) & 0x7FFFFFFF)
        return transform(image=image)["image"], self.labels[index], self.names[index]

    def class_counts(self) -> Counter:
        return Counter(self.labels)


class ImageFiles(Dataset):
    """Image files framed as a classifier was trained (the square of ``size`` px, the corner blanked with
    ``mask_corners``): ``(uint8 CHW image tensor, position in paths, file name)``; a file that does not decode
    is None, which :func:`~hyperkvasir.datasets.batches.collate_skipping` drops and counts."""

    def __init__(self, paths: list[Path], size: int, mask_corners: bool) -> None:
        self.paths, self.size, self.mask_corners = paths, size, mask_corners

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = load_square(self.paths[index], self.size, mask_corners=self.mask_corners)
        except ImageDecodeError:
            return None
        return torch.from_numpy(image).permute(2, 0, 1), index, Path(self.paths[index]).name


def open_labeled(
    root: Path,
    files: list[str],
    *,
    input_size: int,
    use_cache: bool,
    manifest: list[dict],
    progress=None,
    mask_corners: bool = False,
    cached: set[str] | None = None,
    **kwargs,
) -> LabeledImages:
    """A dataset over ``files``, with the shared cache of all decodable labeled images when ``use_cache`` (of
    the images named in ``cached`` only, when given)."""
    cache = None
    if use_cache:
        entries = [
            (r["path"], r["sha256"])
            for r in manifest
            if r["part"] == "labeled" and r["decodes"] and (cached is None or Path(r["path"]).name in cached)
        ]
        cache = open_cache(root, entries, input_size, progress=progress, mask_corners=mask_corners)
    return LabeledImages(
        root, files, input_size=input_size, cache=cache, manifest=manifest, mask_corners=mask_corners, **kwargs
    )


def balanced_weights(dataset: LabeledImages) -> list[float]:
    """1 / class count per sample: each class is drawn equally often on average, so the rare ones get seen."""
    counts = dataset.class_counts()
    return [1.0 / counts[label] for label in dataset.labels]


class ClassifyData(TaskData):
    """Train/val/test of one fold of a scheme over the manifest. The first process of each node builds the index
    and the uint8 cache (``prepare_data``); both are prepared under a lock in the work dir, so one process (one
    node on a shared file system) computes them while the others wait, then every process reads them. The audit
    behind the split is ``report`` when the caller has it (a benchmark obtains it once for all its folds), else
    obtained once here. Validation and test are not sharded: every process scores the whole set, so the metric
    that selects the checkpoint is computed over all of it. With ``balanced`` the training images are drawn
    class-balanced (:func:`balanced_weights`)."""

    def __init__(self, config, progress=None, report: AuditReport | None = None) -> None:
        super().__init__(batch_size=config.batch_size, workers=loader_workers(config.workers), seed=config.seed)
        self.config, self.progress, self.given_report = config, progress, report
        self.excluded: dict[str, int] = {}
        self.pseudo_report: dict = {}
        self.reviews_report: dict | None = None

    def prepare_data(self) -> None:
        manifest = build_index(self.config.root).to_pylist()
        if self.config.cache:
            open_labeled(
                Path(self.config.root),
                [],
                input_size=self.config.input_size,
                use_cache=True,
                manifest=manifest,
                progress=self.progress,
                mask_corners=self.config.mask_corners,
                cached=self._cached_names(),
            )

    @functools.cached_property
    def report(self) -> AuditReport:
        """The audit of the tree (split units, label conflicts), obtained once per datamodule."""
        return self.given_report if self.given_report is not None else audit(self.config.root)

    @functools.cached_property
    def fold_subsets(self) -> dict[str, list[str]]:
        """train/val/test (the part scored) of this fold under the run's protocol (a copy is changed in setup)."""
        config = self.config
        split = assignment(
            config.root,
            config.scheme,
            fraction=config.val_fraction,
            seed=config.seed,
            allow_ambiguous=config.exclude_conflicts,
            report=self.report,
        )
        return protocol_subsets(
            config.root,
            split,
            config.fold,
            config.protocol,
            fraction=config.val_fraction,
            seed=config.seed,
            report=self.report,
        )

    def _cached_names(self) -> set[str] | None:
        """Under the dev protocol the cache holds the training folds only, so no test image is ever decoded."""
        if self.config.protocol != "dev":
            return None
        return {name for names in self.fold_subsets.values() for name in names}

    def setup(self, stage: str | None = None) -> None:
        config, root = self.config, Path(self.config.root)
        manifest = build_index(root).to_pylist()
        subsets = {part: list(names) for part, names in self.fold_subsets.items()}
        self.excluded = drop_label_conflicts(root, subsets, self.report) if config.exclude_conflicts else {}
        relabels: dict[str, dict[str, int]] = {}
        if config.reviews:
            relabels, self.reviews_report = apply_reviews(
                config.reviews, root, subsets, manifest, on_test=config.reviews_on_test, sha256=config.reviews_sha256
            )
        extra, self.pseudo_report = (
            usable_pseudo_labels(
                config.pseudo_labels,
                root,
                scheme=config.scheme,
                fold=config.fold,
                seed=config.seed,
                val_fraction=config.val_fraction,
                test_files=subsets["test"],
            )
            if config.pseudo_labels
            else ([], {})
        )
        common = dict(
            input_size=config.input_size,
            use_cache=config.cache,
            manifest=manifest,
            mask_corners=config.mask_corners,
            cached=self._cached_names(),
        )
        self.train_set = open_labeled(
            root,
            subsets["train"],
            train=True,
            recipe=config.recipe,
            seed=config.seed,
            extra=extra,
            rare_below=config.rare_below,
            relabel=relabels.get("train"),
            **common,
        )
        self.val_set = open_labeled(root, subsets["val"], relabel=relabels.get("val"), **common)
        self.test_set = open_labeled(root, subsets["test"], relabel=relabels.get("test"), **common)
        if not len(self.train_set) or not len(self.val_set):
            raise DataError(
                f"{root}: fold {config.fold} leaves {len(self.train_set)} training and "
                f"{len(self.val_set)} validation images; the tree is too small for this split"
            )

    @property
    def skipped(self) -> int:
        return len(self.train_set.skipped) + len(self.val_set.skipped) + len(self.test_set.skipped)

    def sample_weights(self) -> list[float] | None:
        return balanced_weights(self.train_set) if self.config.balanced else None
