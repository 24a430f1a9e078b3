"""Run every benchmark once on one medium twin and print each one's JSON (``make bench``).

The GPU benchmark runs only where CUDA is available; the real-pixel calibration only where
``$HYPERKVASIR_SHARED`` holds the real sample.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    from hyperkvasir.synth.tree import make_synthetic_release

    root = Path(tempfile.mkdtemp(prefix="hk-bench-")) / "medium"
    print(f"synthesising a medium twin at {root} …", flush=True)
    make_synthetic_release(root, seed=0, scale="medium", workers=os.cpu_count() or 1)
    runs = [
        [name, "--root", str(root)]
        for name in ("index_speed.py", "loader_speed.py", "video_frames.py", "engine_overhead.py")
    ]
    runs.append(["scale.py"])  # synthesises its own full-scale twin (about 10 minutes in all)
    if (Path(os.environ.get("HYPERKVASIR_SHARED", "../shared/data")) / "real-sample").is_dir():
        runs.append(["real_calibration.py"])
    import torch

    if torch.cuda.is_available():
        runs.append(["gpu_train.py", "--root", str(root)])
    failed = []
    for script, *args in runs:
        print(f"\n== {script}", flush=True)
        if subprocess.run([sys.executable, str(HERE / script), *args], cwd=HERE).returncode:
            failed.append(script)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
