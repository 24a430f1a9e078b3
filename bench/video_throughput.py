"""Video inference throughput: frames/s of the shared decode alone vs decode + a classifier, and what scoring every
frame of the release would take (one run, one process, this machine's cores).

Videos: the twin's clips (a videos-only medium twin: 12 clips of 60 frames, 720×576 and 1280×1024, MPEG-4 Part 2),
re-encoded at the release's mean bit rate when ``$HYPERKVASIR_SHARED`` holds the release's video metadata (the
twin writes 1.5 Mbit/s; the release averages about 7.2 Mbit/s, and decoding cost grows with it). Measured:

- ``decode``: ``video/decode.py`` at the classifier's size (lowres decode, scaling, the JPEG round trip, framing),
  frames/s scored, at ``--every 1`` and ``--every 5`` (every frame is decoded either way; only the kept ones are
  converted);
- ``model``: the classifier (tf_efficientnet_lite0 at 224, the ``train classify`` default, random weights with
  denormals flushed: the same compute as trained ones) on uint8 batches of 32 already in memory;
- ``decode_and_model``: ``predict_videos`` end to end (``--part videos``, batch 32, decoding in the main process:
  ``--workers 0``), strips and Parquet included.

Extrapolation: the release's frames (from the metadata, about 1.06 M) at ``--every 1`` and ``--every 5`` on this
machine, and the decode workers (one core each) per GPU that 8 GPUs would need to keep each fed at
:data:`GPU_IMAGES_PER_S`.

Usage: python bench/video_throughput.py [--root TREE] [--json FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hyperkvasir.data.layout import Release
from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.models import MODELS, create_model
from hyperkvasir.video.decode import decode_frames, model_input
from hyperkvasir.video.predict import FrameModel, predict_videos

MODEL, SIZE, BATCH = "tf_efficientnet_lite0", 224, 32
# tf_efficientnet_lite0 at 224, AMP, NCHW, batch 1024 on one RTX 4090: 8,709.74 images/s — timm's published
# inference benchmark, results/benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv in huggingface/pytorch-image-models.
# No GPU was lent to measure our own (bench/gpu_train.py measures training, not inference).
GPU_IMAGES_PER_S = 8709.74
RELEASE_FRAMES = 1_059_519  # the sum of number-of-frames over the 373 videos of the release's video metadata


def _metadata() -> tuple[int, float | None]:
    """(frames of the release, its mean bit rate in bit/s or None) from the shared video metadata."""
    path = Path(os.environ.get("HYPERKVASIR_SHARED", "../shared/data")) / "official/hyper-kvasir-video-metadata.csv"
    if not path.is_file():
        return RELEASE_FRAMES, None
    rows = list(csv.DictReader(path.open(encoding="utf-8"), delimiter=";"))
    seconds = sum(float(r["length"]) for r in rows)
    return sum(int(r["number-of-frames"]) for r in rows), sum(float(r["kilobytes"]) for r in rows) * 8000 / seconds


def _reencode(videos: list[Path], bit_rate: float, folder: Path) -> list[Path]:
    """Each video re-encoded (MPEG-4 Part 2, as the twin) at ``bit_rate``."""
    import av

    out = []
    for video in videos:
        target = folder / video.name
        with av.open(str(video)) as source, av.open(str(target), "w", format="avi") as sink:
            stream = sink.add_stream("mpeg4", rate=25)
            decoded = source.streams.video[0]
            stream.width, stream.height, stream.pix_fmt = decoded.width, decoded.height, "yuv420p"
            stream.codec_context.bit_rate = int(bit_rate)
            for frame in source.decode(decoded):
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"))):
                    sink.mux(packet)
            for packet in stream.encode():
                sink.mux(packet)
        out.append(target)
    return out


def _decode_fps(videos: list[Path], every: int) -> tuple[float, int]:
    started, frames = time.perf_counter(), 0
    for video in videos:
        for _, _, rgb in decode_frames(video, every=every, size=SIZE):
            model_input(rgb, SIZE)
            frames += 1
    return frames / (time.perf_counter() - started), frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="a release or twin with labeled-videos/ (default: a fresh twin)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    torch.set_flush_denormal(True)  # random weights make denormals that slow a CPU up to 6× (trained ones need not)
    scratch = Path(tempfile.mkdtemp(prefix="hk-video-bench-"))
    release_frames, bit_rate = _metadata()
    twin = args.root is None
    if twin:
        from hyperkvasir.synth.tree import make_synthetic_release

        args.root = make_synthetic_release(scratch / "twin", seed=0, scale="medium", parts=("videos",)).root
    videos = Release(args.root).video_files()
    if twin and bit_rate:
        tree = scratch / "reencoded"
        (tree / "labeled-videos").mkdir(parents=True)
        videos = _reencode(videos, bit_rate, tree / "labeled-videos")
        args.root = tree
    results: dict = {
        "videos": len(videos),
        "bit_rate_mbit_s": round(bit_rate / 1e6, 2) if twin and bit_rate else "as found",
        "model": f"{MODEL} at {SIZE}, batch {BATCH}",
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    for every in (1, 5):
        fps, frames = _decode_fps(videos, every)
        results[f"decode_fps_every{every}"] = round(fps, 1)
        results[f"frames_every{every}"] = frames

    network, _ = create_model(MODEL, pretrained=False, num_classes=23)
    network.eval()
    spec = MODELS[MODEL]
    batch = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), dtype=torch.uint8)
    for _ in range(2):  # warm-up
        network(normalise(batch, spec.mean, spec.std))
    started, rounds = time.perf_counter(), 10
    for _ in range(rounds):
        network(normalise(batch, spec.mean, spec.std))
    results["model_fps"] = round(rounds * BATCH / (time.perf_counter() - started), 1)

    model = FrameModel(
        lambda images: torch.softmax(network(normalise(images, spec.mean, spec.std)).float(), 1),
        tuple(f"class{i}" for i in range(23)),
        SIZE,
        torch.device("cpu"),
        {"bench": MODEL},
    )
    started = time.perf_counter()
    summary = predict_videos(model, [args.root], scratch / "out", part="videos", every=1, batch_size=BATCH)
    results["decode_and_model_fps"] = round(summary["frames"] / (time.perf_counter() - started), 1)

    # scored frames/s here: measured end to end at every 1; at every 5, the measured decode then the model, in turn
    here = {1: results["decode_and_model_fps"], 5: 1 / (1 / results["decode_fps_every5"] + 1 / results["model_fps"])}
    results["release_frames"] = release_frames
    results["extrapolation"] = {
        f"every{every}": {
            "frames_scored": release_frames // every,
            "hours_here": round(release_frames / every / here[every] / 3600, 1),
            "minutes_8_gpus_fed": round(release_frames / every / (8 * GPU_IMAGES_PER_S) / 60, 1),
            "decode_workers_per_gpu": int(np.ceil(GPU_IMAGES_PER_S / results[f"decode_fps_every{every}"])),
        }
        for every in (1, 5)
    }
    results["gpu_images_per_s_assumed"] = f"{GPU_IMAGES_PER_S} ({MODEL} 224 AMP, RTX 4090, timm's benchmark CSV)"
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
