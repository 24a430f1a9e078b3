"""Scale-out as users run it: `benchmark` under torchrun (two gloo processes on CPU) — every rank takes part in
every fold and seed, rank 0 alone writes and prints, all ranks leave together."""

from __future__ import annotations

import json
from pathlib import Path

RECIPE = "model: test_efficientnet\nepochs: 1\ninput_size: 32\nbatch_size: 4\nworkers: 0\npretrained: false\n"


def test_benchmark_under_torchrun_runs_every_fold_and_seed_on_every_rank(tiny_twin, tmp_path: Path,
                                                                        run_cli) -> None:
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    out = tmp_path / "bench"
    done = run_cli(["benchmark", tiny_twin.root, "--config", tmp_path / "tiny.yaml", "--seeds", "2", "--out", out],
                   processes=2)
    assert done.stdout.count("# Classification benchmark") == 1, "rank 0 alone prints the results"
    results = json.loads((out / "results.json").read_text())
    runs = results["models"]["test_efficientnet"]["runs"]
    assert len(runs) == 4
    for run in runs:
        config = json.loads((out / run["run"] / "config.json").read_text())
        assert config["world_size"] == 2 and (out / run["run"] / "metrics-test.json").is_file()
        provenance = json.loads((out / run["run"] / "metrics-test.json").read_text())["provenance"]
        assert provenance["world_size"] == 2 and provenance["effective_batch"] == 8


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_predict_under_srun_without_torchrun_shards_over_the_tasks(tiny_twin, tmp_path: Path) -> None:
    """Two tasks as ``srun -n 2`` starts them (SLURM_PROCID / SLURM_NTASKS, no WORLD_SIZE): each scores its
    share, rank 0 writes the one table, which equals a one-process run."""
    import os
    import subprocess
    import sys

    import pyarrow.parquet as pq

    from hyperkvasir.classify.module import TrainConfig, train_classifier
    from hyperkvasir.cli import main

    train_classifier(TrainConfig(root=str(tiny_twin.root), out=str(tmp_path / "t"), model="test_efficientnet",
                                 epochs=1, input_size=32, batch_size=8, workers=0, pretrained=False))
    argv = ["predict", str(tmp_path / "t" / "best.ckpt"), str(tiny_twin.root), "--part", "unlabeled", "--workers",
            "0"]
    port = str(_free_port())
    base = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")}
    tasks = [subprocess.Popen([sys.executable, "-m", "hyperkvasir", *argv, "--out", str(tmp_path / "srun.parquet")],
                              env=base | {"SLURM_NTASKS": "2", "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank),
                                          "SLURM_NNODES": "1", "SLURM_NODELIST": "localhost", "SLURM_JOB_ID": "1",
                                          "SLURM_JOB_NAME": "predict", "MASTER_ADDR": "127.0.0.1",
                                          "MASTER_PORT": port, "OMP_NUM_THREADS": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outputs = []
    for task in tasks:
        stdout, err = task.communicate(timeout=300)
        assert task.returncode == 0, err[-2000:]
        outputs.append(stdout)
    assert outputs[0].strip() and not outputs[1].strip(), "task 1 scored its share and left the report to task 0"
    assert main([*argv, "--out", str(tmp_path / "one.parquet")]) == 0
    two = sorted(pq.read_table(tmp_path / "srun.parquet").to_pylist(), key=lambda r: r["path"])
    one = sorted(pq.read_table(tmp_path / "one.parquet").to_pylist(), key=lambda r: r["path"])
    assert [r["path"] for r in two] == [r["path"] for r in one] and len(one) == tiny_twin.unlabeled


def test_a_batch_of_unloadable_images_is_a_zero_step_through_every_parameter() -> None:
    import torch

    from hyperkvasir.classify.module import ClassifierModule, TrainConfig

    module = ClassifierModule(TrainConfig(root=".", model="test_efficientnet", pretrained=False))
    loss = module.training_step(None, 0)
    assert loss is not None and float(loss) == 0.0
    loss.backward()
    assert all(p.grad is not None for p in module.parameters() if p.requires_grad), "DDP sees every parameter"
    assert torch.equal(next(module.parameters()).grad, torch.zeros_like(next(module.parameters())))
