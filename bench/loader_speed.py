"""Training-input pipeline throughput, images per second on one core, at 224 with the paper's augmentation.

(a) torchvision ImageFolder + PIL + the paper's torchvision transforms (the baseline), (b) ours from JPEG
(DCT-scaled decode + albumentations), (c) ours from the pre-resized uint8 cache — measured in this one run on
the same images. Goals: (b) ≥ 4× and (c) ≥ 15× over (a).

Usage: python bench/loader_speed.py [--root TREE] [--images N]
"""

from __future__ import annotations

import os
import sys
import time

import cv2
import torch

torch.set_num_threads(1)
cv2.setNumThreads(1)

from _common import report, twin_root  # noqa: E402

from hyperkvasir.classify.data import LabeledImages, open_labeled  # noqa: E402
from hyperkvasir.data.index import build_index  # noqa: E402


def throughput(dataset, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        sample = dataset[i % len(dataset)]
        assert sample[0].shape[-1] == 224
    return count / (time.perf_counter() - started)


def main() -> None:
    sys.argv, images = [a for a in sys.argv if not a.startswith("--images")], 400
    args, root = twin_root(__doc__.splitlines()[0])
    from torchvision import datasets, transforms

    paper = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(256),
            transforms.Resize(224),
            transforms.RandomHorizontalFlip(),
            transforms.RandomVerticalFlip(),
            transforms.RandomRotation(90),
            transforms.ToTensor(),
            transforms.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )
    baseline = datasets.ImageFolder(str(root / "labeled-images"), transform=paper)
    manifest = build_index(root).to_pylist()
    files = sorted(os.path.basename(r["path"]) for r in manifest if r["part"] == "labeled" and r["decodes"])
    jpeg = LabeledImages(root, files, input_size=224, train=True, manifest=manifest)
    cached = open_labeled(root, files, input_size=224, use_cache=True, manifest=manifest, train=True)
    results = {"images": images, "threads": 1}
    for name, dataset in (("a_torchvision_imagefolder", baseline), ("b_ours_jpeg", jpeg), ("c_ours_cache", cached)):
        throughput(dataset, 20)  # warm-up
        results[f"{name}_img_per_s"] = round(throughput(dataset, images), 1)
    base = results["a_torchvision_imagefolder_img_per_s"]
    results["b_speedup"] = round(results["b_ours_jpeg_img_per_s"] / base, 2)
    results["c_speedup"] = round(results["c_ours_cache_img_per_s"] / base, 2)
    report(args, results)


if __name__ == "__main__":
    main()
