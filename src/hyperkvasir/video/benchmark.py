"""``benchmark --task video``: frames → a frame classifier on the video classes → per-video evaluation.

The run (``OUT/run``, through the engine; frames in ``OUT/run/frames``) trains on the frames of the training
videos and chooses its checkpoint on the validation videos (video-level accuracy of the mean probability); the
test videos are scored per video by mean probability and by majority vote. A rerun with finished results is
skipped; an unfinished run continues from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hyperkvasir.outputs import atomic_write
from hyperkvasir.video.config import VideoConfig, check_video_config
from hyperkvasir.video.train import train_video


def run_video_benchmark(config: VideoConfig, out: str | Path) -> dict:
    check_video_config(config)
    out = Path(out)
    if (out / "results.json").is_file():
        return json.loads((out / "results.json").read_text())
    run = dataclasses.replace(config, out=str(out / "run"))
    results = train_video(run, resume=(out / "run" / "last.ckpt").is_file())
    if not results:
        return {}
    with atomic_write(out / "results.json", "w") as handle:
        json.dump(results, handle, indent=2)
    test_metrics = results["test"]
    frames = results["frames"]
    lines = [
        "# Video benchmark (per-video evaluation of a frame classifier)",
        "",
        f"Videos train/val/test: {results['split']}; {frames} frames (every {config.every}th, "
        f"{config.size} px); model {config.model}.",
        "",
        f"Protocol: video-level split (seeded, duplicate videos kept together); checkpoint chosen on "
        f"{results['validation_from']}; test videos never seen in training or selection.",
        "",
        "| aggregation | accuracy | macro F1 | MCC |",
        "|---|---|---|---|",
    ]
    for key in ("mean_probability", "majority_vote"):
        m = test_metrics[key]
        lines.append(f"| {key.replace('_', ' ')} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['mcc']:.3f} |")
    with atomic_write(out / "results.md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return results
