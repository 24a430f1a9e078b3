"""Training steps of ResNet-50 at 224 with mixed precision and channels_last through the engine: fed by our
loader vs by random tensors already on the device.

The ratio (loader-fed / synthetic images per second) says how close the input pipeline keeps the GPU to its
compute limit; 1.0 means the loader is never the bottleneck. Run it on a machine with a GPU:

    python bench/gpu_train.py [--root TREE] [--workers 8] [--batch-size 128] [--steps 50]

On CPU (``--device cpu --steps 2 --batch-size 4``) it only checks that the script runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).parent))
from _engine_timing import StepTimer  # noqa: E402

from hyperkvasir.classify.config import ClassifyConfig  # noqa: E402
from hyperkvasir.classify.data import ClassifyData  # noqa: E402
from hyperkvasir.classify.module import ClassifyModule  # noqa: E402
from hyperkvasir.engine import EngineOptions, RunFolder  # noqa: E402
from hyperkvasir.engine.trainer import build_trainer  # noqa: E402
from hyperkvasir.synth.tree import make_synthetic_release  # noqa: E402

WARMUP = 5


class RandomImages(Dataset):
    """One fixed random uint8 batch's worth of samples: no decoding, no augmentation."""

    def __init__(self, count: int) -> None:
        self.images = torch.randint(0, 256, (count, 3, 224, 224), dtype=torch.uint8)
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        return self.images[index % len(self.images)], index % 23, "random", 0


class RandomData(L.LightningDataModule):
    def __init__(self, batch_size: int, steps: int) -> None:
        super().__init__()
        self.train_set = RandomImages(batch_size * (steps + WARMUP))
        self.val_set = RandomImages(batch_size)
        self.batch_size = batch_size
        self.skipped = 0

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, collate_fn=_stack)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, collate_fn=_stack)


def _stack(batch):
    images, labels, names, skipped = zip(*batch)
    return torch.stack(images), torch.as_tensor(labels), list(names), 0


def rate(config: ClassifyConfig, data: L.LightningDataModule, steps: int) -> float:
    timer = StepTimer(WARMUP, steps)
    run = RunFolder(Path(tempfile.mkdtemp(prefix="hk-gpu-")) / "run")
    run.start(config, resume=False)
    trainer = build_trainer(
        run.path,
        EngineOptions(
            epochs=1, monitor="val_macro_f1", device=config.device, max_steps_per_epoch=WARMUP + steps, progress=False
        ),
    )
    trainer.callbacks.append(timer)
    trainer.fit(ClassifyModule(config), datamodule=data)
    return timer.rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    root = args.root
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="hk-gpu-")) / "medium"
        make_synthetic_release(root, seed=0, scale="medium", workers=args.workers, parts=("labeled",))
    torch.backends.cudnn.benchmark = True
    config = ClassifyConfig(
        root=str(root),
        model="resnet50",
        input_size=224,
        batch_size=args.batch_size,
        workers=args.workers,
        pretrained=False,
        epochs=1,
        device=args.device,
        balanced=True,
    )  # draws with replacement, so a small tree feeds every step
    results = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else "cpu",
        "batch_size": args.batch_size,
        "workers": args.workers,
        "steps": args.steps,
    }
    results["random_tensors_img_per_s"] = round(rate(config, RandomData(args.batch_size, args.steps), args.steps), 1)
    results["our_loader_img_per_s"] = round(rate(config, ClassifyData(config), args.steps), 1)
    results["ratio"] = round(results["our_loader_img_per_s"] / results["random_tensors_img_per_s"], 3)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
