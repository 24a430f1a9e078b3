"""The video protocol's data: a video-level split, the frame dataset, and their DataModule.

Videos carry one label for the whole clip (no frame-level annotation, Borgli et al. 2020), so the split is by
video (stratified by the main finding in the 30-class vocabulary, duplicate videos kept together, seeded) and
the evaluation aggregates frame predictions per video: the mean of the probabilities, and the majority vote.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from hyperkvasir.data.audit import audit
from hyperkvasir.data.imaging import ImageDecodeError, load_square
from hyperkvasir.data.index import build_index, preparing
from hyperkvasir.data.taxonomy import VIDEO_CLASS_NAMES
from hyperkvasir.datasets.transforms import classification_transform
from hyperkvasir.engine.runs import loader_workers
from hyperkvasir.engine.task import TaskData
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.video.frames import extract_frames


def video_labels(root: str | Path) -> dict[str, int]:
    """Video path (relative to the root) → index in VIDEO_CLASS_NAMES, for videos whose finding maps."""
    rows = [r for r in build_index(root).to_pylist() if r["kind"] == "video" and r["decodes"]]
    return {r["path"]: VIDEO_CLASS_NAMES.index(r["finding_class"]) for r in rows if r["finding_class"]}


def video_split(
    root: str | Path, *, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0
) -> dict[str, list[str]]:
    """train/val/test lists of video paths: whole duplicate groups (also when their copies are filed under
    different findings), stratified by the finding of each group's first video, seeded."""
    labels = video_labels(root)
    if not labels:
        raise HyperKvasirError(f"{root}: no decodable video with a known finding; run `hyperkvasir validate {root}`")
    duplicates = audit(root).video_duplicates
    group_of = {
        path: min(group) for kind in ("exact", "metadata") for group in duplicates.get(kind, []) for path in group
    }
    members: dict[str, list[str]] = defaultdict(list)
    for path in sorted(labels):
        members[group_of.get(path, path)].append(path)
    groups: dict[int, dict[str, list[str]]] = defaultdict(dict)
    for key, paths in members.items():
        groups[labels[paths[0]]][key] = paths
    rng = random.Random(seed)
    split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for label in sorted(groups):
        keys = sorted(groups[label])
        rng.shuffle(keys)
        n = len(keys)
        n_test = max(1 if n >= 2 else 0, round(n * fractions[2]))
        n_val = max(1 if n >= 3 else 0, round(n * fractions[1]))
        for position, key in enumerate(keys):
            subset = "test" if position < n_test else "val" if position < n_test + n_val else "train"
            split[subset] += groups[label][key]
    return {k: sorted(v) for k, v in split.items()}


class VideoFrames(Dataset):
    """Frames of the chosen videos from a frames folder (``hyperkvasir video frames``), labelled by video."""

    def __init__(
        self,
        frames_dir: str | Path,
        labels: dict[str, int],
        videos: list[str],
        *,
        size: int = 224,
        transform=None,
        seed: int = 0,
    ) -> None:
        self.folder = Path(frames_dir)
        self.seed, self.epoch = seed, 0
        table = pq.read_table(self.folder / "frames.parquet").to_pylist()
        wanted = set(videos)
        self.items = [(r["path"], labels[r["video"]], r["video"]) for r in table if r["video"] in wanted]
        self.size, self.transform = size, transform

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path, label, video = self.items[index]
        try:
            image = load_square(self.folder / path, self.size)
        except ImageDecodeError:
            return None
        if self.transform is None:
            return torch.from_numpy(image).permute(2, 0, 1), label, video
        self.transform.set_random_seed(hash((self.seed, self.epoch, index)) & 0x7FFFFFFF)  # same in a resumed run
        tensor = self.transform(image=image)["image"]
        return tensor, label, video


class VideoData(TaskData):
    """Frames of the ``split`` videos (:func:`video_split`, made once by the caller) from a frames folder. With no
    validation video the checkpoint is chosen on training videos, which the caller must have accepted
    (``select_on_train``). With ``extract`` (``every``/``size`` of :func:`~hyperkvasir.video.frames.extract_frames`)
    the first process of each node extracts the frames first, resuming an earlier extraction, under the frames
    folder's lock: one process (one node on a shared file system) extracts while the others wait, then every
    process reads them. The extraction's report is ``extracted`` on the processes that ran it."""

    def __init__(
        self,
        frames_dir: str | Path,
        root: str | Path,
        split: dict[str, list[str]],
        *,
        size: int,
        batch_size: int,
        workers: int | None,
        seed: int,
        extract: dict | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, workers=loader_workers(workers), seed=seed)
        self.frames_dir, self.root, self.split, self.size = Path(frames_dir), root, split, size
        self.extract, self.extracted = extract, None

    def prepare_data(self) -> None:
        if self.extract is not None:
            self.frames_dir.mkdir(parents=True, exist_ok=True)
            with preparing(self.frames_dir / "frames.parquet"):  # a second node waits, then resumes: nothing left
                self.extracted = extract_frames(self.root, self.frames_dir, **self.extract)

    def setup(self, stage: str | None = None) -> None:
        self.labels = video_labels(self.root)
        if not self.split["train"] or not self.split["test"]:
            raise DataError(
                f"{self.root}: the video split leaves {len(self.split['train'])} training and "
                f"{len(self.split['test'])} test videos; at least one of each is needed (a class needs "
                f"two videos to reach the test part)"
            )
        self.train_set = VideoFrames(
            self.frames_dir,
            self.labels,
            self.split["train"],
            size=self.size,
            transform=classification_transform("paper", self.size, True),
            seed=self.seed,
        )
        self.val_set = VideoFrames(
            self.frames_dir, self.labels, self.split["val"] or self.split["train"], size=self.size
        )
        self.test_set = VideoFrames(self.frames_dir, self.labels, self.split["test"], size=self.size)
