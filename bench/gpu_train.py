"""Training steps of ResNet-50 at 224 with AMP and channels_last: fed by our loader vs random tensors.

The ratio (loader-fed / synthetic images per second) says how close the input pipeline keeps the GPU to its
compute limit; 1.0 means the loader is never the bottleneck. Run it on a machine with a GPU:

    python bench/gpu_train.py [--root TREE] [--workers 8] [--batch-size 128] [--steps 50]

On CPU (``--device cpu --steps 2 --batch-size 4``) it only checks that the script runs.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import timm
import torch
from torch.utils.data import DataLoader, RandomSampler

from hyperkvasir.data.index import build_index
from hyperkvasir.classify.data import open_labeled
from hyperkvasir.datasets.batches import collate_skipping
from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.synth.tree import make_synthetic_release


def steps_per_second(model, optimizer, scaler, batches, device, steps: int) -> float:
    model.train()
    for index, (images, targets) in enumerate(batches):
        if index == 5:  # warm-up done (cudnn autotuning, allocator)
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        if index == steps + 5:
            break
        images = normalise(images.to(device, non_blocking=True), (0.5,) * 3, (0.5,) * 3)
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(images), targets.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    root = args.root
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="hk-gpu-")) / "medium"
        make_synthetic_release(root, seed=0, scale="medium", workers=args.workers, parts=("labeled",))
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    manifest = build_index(root).to_pylist()
    files = [Path(r["path"]).name for r in manifest if r["part"] == "labeled" and r["decodes"]]
    dataset = open_labeled(root, files, input_size=224, use_cache=True, manifest=manifest, train=True)
    sampler = RandomSampler(dataset, replacement=True, num_samples=args.batch_size * (args.steps + 6))
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                        pin_memory=device.type == "cuda", collate_fn=collate_skipping, persistent_workers=False)

    def from_loader():
        for images, labels, _, _ in loader:
            yield images, labels

    def random_batches():
        images = torch.randint(0, 256, (args.batch_size, 3, 224, 224), dtype=torch.uint8, device=device)
        labels = torch.randint(0, 23, (args.batch_size,), device=device)
        while True:
            yield images, labels

    results = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "batch_size": args.batch_size, "workers": args.workers, "steps": args.steps}
    for name, batches in (("random_tensors", random_batches), ("our_loader", from_loader)):
        model = timm.create_model("resnet50", num_classes=23).to(device).to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
        rate = steps_per_second(model, optimizer, scaler, batches(), device, args.steps)
        results[f"{name}_img_per_s"] = round(rate * args.batch_size, 1)
    results["ratio"] = round(results["our_loader_img_per_s"] / results["random_tensors_img_per_s"], 3)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
