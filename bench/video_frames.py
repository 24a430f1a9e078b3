"""Frame extraction throughput (frames per second): ours vs a plain decode-every-frame loop vs the ffmpeg CLI.

All three write every frame of every labeled video as JPEG, in one run on the same tree; ours runs with one
process per core, the plain loop in one process (PyAV decode → RGB array → PIL JPEG), ffmpeg where present.

Usage: python bench/video_frames.py [--root TREE]
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import av
from _common import report, twin_root
from PIL import Image

from hyperkvasir.data.layout import Release
from hyperkvasir.video.frames import extract_frames


def plain_loop(videos: list[Path], out: Path) -> int:
    count = 0
    for video in videos:
        with av.open(str(video)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                Image.fromarray(frame.to_ndarray(format="rgb24")).save(
                    out / f"{video.stem}_{index:06d}.jpg", quality=90
                )
                count += 1
    return count


def main() -> None:
    args, root = twin_root(__doc__.splitlines()[0])
    videos = Release(root).video_files()
    scratch = Path(tempfile.mkdtemp(prefix="hk-frames-"))
    results: dict = {"videos": len(videos)}
    started = time.perf_counter()
    frames = extract_frames(root, scratch / "ours").frames
    results["ours_fps"] = round(frames / (time.perf_counter() - started), 1)
    (scratch / "plain").mkdir()
    started = time.perf_counter()
    frames_plain = plain_loop(videos, scratch / "plain")
    results["plain_loop_fps"] = round(frames_plain / (time.perf_counter() - started), 1)
    results["frames"] = frames
    if shutil.which("ffmpeg"):
        (scratch / "ffmpeg").mkdir()
        started = time.perf_counter()
        for video in videos:
            subprocess.run(
                [
                    "ffmpeg",
                    "-loglevel",
                    "error",
                    "-i",
                    str(video),
                    "-q:v",
                    "3",
                    str(scratch / "ffmpeg" / f"{video.stem}_%06d.jpg"),
                ],
                check=True,
            )
        results["ffmpeg_cli_fps"] = round(frames_plain / (time.perf_counter() - started), 1)
    else:
        results["ffmpeg_cli_fps"] = "ffmpeg not installed"
    results["speedup_vs_plain"] = round(results["ours_fps"] / results["plain_loop_fps"], 2)
    shutil.rmtree(scratch)
    report(args, results)


if __name__ == "__main__":
    main()
