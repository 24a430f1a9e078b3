"""Scale-out as users run it: `benchmark` under torchrun (two gloo processes on CPU) — every rank takes part in
every fold and seed, rank 0 alone writes and prints, all ranks leave together."""

from __future__ import annotations

import json
from pathlib import Path

RECIPE = "model: test_efficientnet\nepochs: 1\ninput_size: 32\nbatch_size: 4\nworkers: 0\npretrained: false\n"


def test_benchmark_under_torchrun_runs_every_fold_and_seed_on_every_rank(tiny_twin, tmp_path: Path, run_cli) -> None:
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    out = tmp_path / "bench"
    done = run_cli(
        ["benchmark", tiny_twin.root, "--config", tmp_path / "tiny.yaml", "--seeds", "2", "--out", out], processes=2
    )
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

    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.classify.train import train_classify
    from hyperkvasir.cli import main

    train_classify(
        ClassifyConfig(
            root=str(tiny_twin.root),
            out=str(tmp_path / "t"),
            model="test_efficientnet",
            epochs=1,
            input_size=32,
            batch_size=8,
            workers=0,
            pretrained=False,
        )
    )
    argv = ["predict", str(tmp_path / "t" / "best.ckpt"), str(tiny_twin.root), "--part", "unlabeled", "--workers", "0"]
    port = str(_free_port())
    base = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")}
    tasks = [
        subprocess.Popen(
            [sys.executable, "-m", "hyperkvasir", *argv, "--out", str(tmp_path / "srun.parquet")],
            env=base
            | {
                "SLURM_NTASKS": "2",
                "SLURM_PROCID": str(rank),
                "SLURM_LOCALID": str(rank),
                "SLURM_NNODES": "1",
                "SLURM_NODELIST": "localhost",
                "SLURM_JOB_ID": "1",
                "SLURM_JOB_NAME": "predict",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
                "OMP_NUM_THREADS": "1",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
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

    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.classify.module import ClassifyModule

    module = ClassifyModule(ClassifyConfig(root=".", model="test_efficientnet", pretrained=False))
    loss = module.training_step(None, 0)
    assert loss is not None and float(loss) == 0.0
    loss.backward()
    assert all(p.grad is not None for p in module.parameters() if p.requires_grad), "DDP sees every parameter"
    assert torch.equal(next(module.parameters()).grad, torch.zeros_like(next(module.parameters())))


def test_segment_benchmark_under_torchrun_scores_the_one_process_test_part(tiny_twin, tmp_path: Path, run_cli) -> None:
    from hyperkvasir.cli import main

    flags = [
        "--task",
        "segment",
        "--models",
        "test_efficientnet",
        "--epochs",
        "1",
        "--input-size",
        "64",
        "--batch-size",
        "2",
        "--workers",
        "0",
    ]
    done = run_cli(["benchmark", tiny_twin.root, *flags, "--out", tmp_path / "two"], processes=2)
    assert done.stdout.count("# Polyp segmentation benchmark") == 1, "rank 0 alone writes and prints"
    assert main(["benchmark", str(tiny_twin.root), *flags, "--out", str(tmp_path / "one")]) == 0
    two, one = (json.loads((tmp_path / n / "results.json").read_text())["metrics"] for n in ("two", "one"))
    assert two["world_size"] == 2 and one["world_size"] == 1 and two["n"] == one["n"] >= 1
    assert sorted(p.name for p in (tmp_path / "two" / "run" / "predictions").iterdir()) == sorted(
        p.name for p in (tmp_path / "one" / "run" / "predictions").iterdir()
    ), "the same test images"
    assert json.loads((tmp_path / "two" / "run" / "config.json").read_text())["world_size"] == 2


def test_video_benchmark_under_torchrun_splits_and_scores_as_one_process(tmp_path: Path, run_cli) -> None:
    from hyperkvasir.cli import main
    from hyperkvasir.synth.tree import make_synthetic_release

    twin = make_synthetic_release(tmp_path / "hk", seed=5, scale="tiny", parts=("videos",), videos=18)
    flags = [
        "--task",
        "video",
        "--models",
        "test_efficientnet",
        "--epochs",
        "1",
        "--input-size",
        "32",
        "--batch-size",
        "4",
        "--workers",
        "0",
    ]
    done = run_cli(["benchmark", twin.root, *flags, "--out", tmp_path / "two"], processes=2)
    assert done.stdout.count("# Video benchmark") == 1, "rank 0 alone writes and prints"
    assert main(["benchmark", str(twin.root), *flags, "--out", str(tmp_path / "one")]) == 0
    two, one = (json.loads((tmp_path / n / "results.json").read_text()) for n in ("two", "one"))
    assert two["split"] == one["split"] == {"train": 6, "val": 6, "test": 6}
    assert two["frames"] == one["frames"] > 0, "frames extracted once, by the first process, for both ranks"
    assert sorted(two["test"]["predictions"]) == sorted(one["test"]["predictions"]), "the same test videos"
    assert json.loads((tmp_path / "two" / "run" / "config.json").read_text())["world_size"] == 2


def test_grouped_benchmark_under_torchrun_computes_the_audit_once(
    twin_copy: Path, tmp_path: Path, run_cli, monkeypatch
) -> None:
    """Both ranks need the audit (split units for grouped-2fold) for every fold; one process computes it under
    the work dir's lock, the other reads its report: counted by the audit's own log line across both ranks."""
    monkeypatch.setenv("COLUMNS", "1000")  # one log record, one line
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    done = run_cli(
        [
            "benchmark",
            twin_copy,
            "--config",
            tmp_path / "tiny.yaml",
            "--scheme",
            "grouped-2fold",
            "--out",
            tmp_path / "bench",
        ],
        processes=2,
    )
    assert done.stderr.count(": computed (") == 1, done.stderr[-3000:]
    assert done.stdout.count("# Classification benchmark (grouped-2fold") == 1


def test_two_processes_learn_as_one_process_with_their_joint_batch(tiny_twin, tmp_path: Path, run_cli) -> None:
    """2 processes × batch 4 and 1 process × batch 8, same seed, learning rate 0.05, three SGD steps through the
    toolkit's trainer: the weights agree within 1e-5 (float32 all-reduce order; measured 1.5e-8) when batch norm
    runs on its running statistics (--freeze-batchnorm; SyncBatchNorm does not run on CPU). Batch statistics of
    4 instead of 8 images make them differ (measured 2.6), so the check can fail."""
    import torch

    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.classify.module import ClassifyModule
    from hyperkvasir.classify.train import train_classify
    from hyperkvasir.engine.runs import seed_everything

    common = dict(
        model="test_efficientnet", epochs=1, input_size=32, lr=0.05, workers=0, pretrained=False, max_steps_per_epoch=3
    )
    train_classify(
        ClassifyConfig(
            root=str(tiny_twin.root), out=str(tmp_path / "one"), batch_size=8, freeze_batchnorm=True, **common
        )
    )
    (tmp_path / "two.yaml").write_text("".join(f"{k}: {str(v).lower()}\n" for k, v in common.items()))
    for name, flag in (("two", "--freeze-batchnorm"), ("batch-stats", "--train-batchnorm")):
        run_cli(
            [
                "train",
                "classify",
                tiny_twin.root,
                "--config",
                tmp_path / "two.yaml",
                "--batch-size",
                "4",
                flag,
                "--out",
                tmp_path / name,
            ],
            processes=2,
        )

    def weights(name: str) -> dict:
        return torch.load(tmp_path / name / "last.ckpt", weights_only=True)["state_dict"]

    def distance(a: dict, b: dict) -> float:
        return max(
            float((a[k].float() - b[k].float()).abs().max())
            for k in a
            if k.startswith("model.") and a[k].is_floating_point()
        )

    seed_everything(0)  # as the engine does before building the module
    start = ClassifyModule(ClassifyConfig(root=".", **common)).state_dict()
    one, two = weights("one"), weights("two")
    assert json.loads((tmp_path / "two" / "config.json").read_text())["freeze_batchnorm"] is True
    assert [json.loads((tmp_path / n / "metrics.json").read_text())[0]["train_images"] for n in ("one", "two")] == [
        24,
        24,
    ]
    assert distance(start, one) > 1e-2, "the weights moved (measured 0.033): this is learning, not lr 0"
    assert distance(one, two) < 1e-5
    assert distance(one, weights("batch-stats")) > 1e-3
