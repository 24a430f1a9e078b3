"""The notebook face of the toolkit: torchvision-style datasets and a model loader.

    from hyperkvasir import HyperKvasirClassification, load_model
    test = HyperKvasirClassification("/data/hyper-kvasir", fold=0, split="test")
    image, label = test[0]                      # float tensor normalised as the models expect, class index
    model = load_model("runs/f0/best.ckpt")
    probabilities = model.predict(test.paths[:8])   # (8, 23); model.classes names the columns

Splits are the toolkit's: the official (or grouped) folds with the validation carve-out, Kvasir-SEG's
880/120 or the duplicate-aware segmentation split, the video-level split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hyperkvasir.data.taxonomy import CLASSES, VIDEO_CLASS_NAMES
from hyperkvasir.datasets.transforms import normalise

PAPER_MEAN = PAPER_STD = (0.5, 0.5, 0.5)  # the paper's scripts normalise this way; models record their own


def _figure(image: torch.Tensor, title: str, mask: torch.Tensor | None = None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4, 4))
    axis.imshow(image.permute(1, 2, 0).numpy())
    if mask is not None:
        axis.contour(mask.numpy(), levels=[0.5], colors="lime", linewidths=1.5)
    axis.set(title=title, xticks=[], yticks=[])
    figure.tight_layout()
    return figure


class HyperKvasirClassification(Dataset):
    """The 23 labeled classes: ``(image, class index)`` of one split of one fold.

    ``image`` is the paper's centre square at ``input_size``, a float tensor normalised with ``mean``/``std``
    (or whatever ``transform`` makes of the uint8 CHW tensor). ``classes`` are the released folder names in the
    paper's order (letters A–W).
    """

    def __init__(
        self,
        root: str | Path,
        fold: int = 0,
        split: str = "train",
        scheme: str = "official-2fold",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        download: bool = False,
        input_size: int = 224,
        mean: Sequence[float] = PAPER_MEAN,
        std: Sequence[float] = PAPER_STD,
    ) -> None:
        from hyperkvasir.classify.data import LabeledImages
        from hyperkvasir.data.download import ensure_parts
        from hyperkvasir.data.splits import assignment

        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, not {split!r}")
        release = ensure_parts(root, ("labeled", "splits"), download_missing=download)
        files = assignment(release.root, scheme).subsets(fold)[split]
        self.images = LabeledImages(release.root, files, input_size=input_size)
        self.transform, self.mean, self.std = transform, tuple(mean), tuple(std)
        self.classes = [c.folder for c in CLASSES]

    @property
    def paths(self) -> list[Path]:
        return [self.images.root / p for p in self.images.paths]

    def __len__(self) -> int:
        return len(self.images)

    def raw(self, index: int) -> torch.Tensor:
        """The uint8 CHW image, before normalisation."""
        return torch.from_numpy(self.images.load(index)).permute(2, 0, 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.raw(index)
        image = self.transform(image) if self.transform else normalise(image[None], self.mean, self.std)[0]
        return image, self.images.labels[index]

    def plot(self, index: int):
        """A matplotlib Figure of the image titled with its class."""
        return _figure(self.raw(index), f"{self.classes[self.images.labels[index]]} ({self.images.names[index]})")


class HyperKvasirSegmentation(Dataset):
    """Polyp images and masks: ``(image, mask)`` of ``train``/``val``/``test`` under ``scheme`` (``segmentation``
    or ``kvasir-seg-official``), resized to ``size``; the mask is a float {0, 1} tensor."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        scheme: str = "segmentation",
        size: int = 352,
        download: bool = False,
        mean: Sequence[float] = PAPER_MEAN,
        std: Sequence[float] = PAPER_STD,
    ) -> None:
        from hyperkvasir.data.download import ensure_parts
        from hyperkvasir.data.segmentation_splits import segmentation_scheme_split
        from hyperkvasir.segment.data import SegmentedPolyps

        release = ensure_parts(root, ("segmented",), download_missing=download)
        names = getattr(segmentation_scheme_split(release.root, scheme), split)
        self.polyps = SegmentedPolyps(release.root, list(names), size=size)
        self.mean, self.std = tuple(mean), tuple(std)

    @property
    def paths(self) -> list[Path]:
        return list(self.polyps.images)

    def __len__(self) -> int:
        return len(self.polyps)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.polyps[index]
        return normalise(sample["image"][None], self.mean, self.std)[0], sample["mask"]

    def plot(self, index: int):
        """The image with the mask's outline."""
        sample = self.polyps[index]
        return _figure(sample["image"], sample["name"], sample["mask"])


class HyperKvasirVideoFrames(Dataset):
    """Frames of the videos of one split of the video-level split, from a folder of ``hyperkvasir video frames``:
    ``(image, video class index)``; ``classes`` are the 30 video classes."""

    def __init__(
        self,
        root: str | Path,
        frames_dir: str | Path,
        split: str = "train",
        size: int = 224,
        seed: int = 0,
        mean: Sequence[float] = PAPER_MEAN,
        std: Sequence[float] = PAPER_STD,
    ) -> None:
        from hyperkvasir.video.data import VideoFrames, video_labels, video_split

        self.frames = VideoFrames(frames_dir, video_labels(root), video_split(root, seed=seed)[split], size=size)
        self.mean, self.std = tuple(mean), tuple(std)
        self.classes = list(VIDEO_CLASS_NAMES)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label, _ = self.frames[index]
        return normalise(image[None], self.mean, self.std)[0], label

    def plot(self, index: int):
        image, label, video = self.frames[index]
        return _figure(image, f"{self.classes[label]} ({video})")


class LoadedModel:
    """A trained checkpoint ready for images: ``predict`` takes paths or uint8 HWC arrays."""

    def __init__(
        self,
        module,
        task: str,
        size: int,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        rule: dict | None = None,
        mask_corners: bool = False,
    ) -> None:
        self.module, self.task, self.size, self.mean, self.std = module.eval(), task, size, mean, std
        self.rule = rule  # the decision rule stored in the checkpoint, if the run fitted one
        self.offsets = np.asarray(rule["offsets"]) if rule else None
        self.mask_corners = mask_corners  # as in training: the corner is blanked before the square is cut
        self.classes = (
            [c.folder for c in CLASSES]
            if task == "classify"
            else list(VIDEO_CLASS_NAMES)
            if task == "video"
            else ["polyp"]
        )

    def _batch(self, images: Sequence[str | Path | np.ndarray]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        from hyperkvasir.data.imaging import blank_corner, centre_square, decode_rgb, header_size, load_square

        squares, sizes = [], []
        for item in images:
            if isinstance(item, (str, Path)) and self.task != "segment":  # the decoder training and predict use
                sizes.append(header_size(item)[::-1])
                squares.append(load_square(item, self.size, mask_corners=self.mask_corners))
                continue
            rgb = decode_rgb(item) if isinstance(item, (str, Path)) else np.asarray(item, dtype=np.uint8)
            sizes.append(rgb.shape[:2])
            rgb = blank_corner(rgb) if self.mask_corners else rgb
            if self.task == "segment":
                import cv2

                squares.append(cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_LINEAR))
            else:
                squares.append(centre_square(rgb, self.size))
        return torch.from_numpy(np.stack(squares)).permute(0, 3, 1, 2), sizes

    @torch.no_grad()
    def predict(self, images: Sequence[str | Path | np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """Class probabilities (N, classes) for classify and video checkpoints; for segmentation a list of
        polyp-probability maps at each image's own size."""
        batch, sizes = self._batch(images)
        output = self.module(batch.to(self.module.device)).float()
        if self.task != "segment":
            return torch.softmax(output, 1).cpu().numpy()
        import cv2

        maps = torch.sigmoid(output)[:, 0].cpu().numpy()
        return [cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m, (h, w) in zip(maps, sizes)]

    def decide(self, probabilities: np.ndarray) -> list[str]:
        """Class names from ``predict``'s probabilities, with the checkpoint's decision rule when it has one."""
        from hyperkvasir.classify.decision import decide

        return [self.classes[i] for i in decide(probabilities, self.offsets)]


def load_model(checkpoint: str | Path, device: str = "cpu") -> LoadedModel:
    """Any task's ``best.ckpt``, loaded safely (tensors and plain values only)."""
    from hyperkvasir.engine.runs import checkpoint_task

    task = checkpoint_task(checkpoint)
    if task == "classify":
        from hyperkvasir.classify.module import ClassifyModule

        module, state = ClassifyModule.from_checkpoint(checkpoint, device)
        return LoadedModel(
            module,
            task,
            module.config.input_size,
            mean=module.spec.mean,
            std=module.spec.std,
            rule=state.get("decision_rule"),
            mask_corners=module.config.mask_corners,
        )
    if task == "segment":
        from hyperkvasir.segment.module import SegmentModule

        module, _ = SegmentModule.from_checkpoint(checkpoint, device)
        return LoadedModel(module, task, module.config.size, mean=module.mean, std=module.std)
    from hyperkvasir.video.module import VideoModule

    module, _ = VideoModule.from_checkpoint(checkpoint, device)
    return LoadedModel(module, task, module.config.size, mean=module.spec.mean, std=module.spec.std)
