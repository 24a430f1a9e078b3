"""Shared fixtures: synthetic twins built once per session, the real release files through an env variable."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from hyperkvasir.synth.tree import SynthInfo, make_synthetic_release  # noqa: E402


@pytest.fixture(scope="session")
def tiny_twin(tmp_path_factory: pytest.TempPathFactory) -> SynthInfo:
    """A clean tiny twin; read-only by convention (copy it with ``twin_copy`` to mutate)."""
    return make_synthetic_release(tmp_path_factory.mktemp("tiny") / "hk", seed=0, scale="tiny")


@pytest.fixture(scope="session")
def faulty_twin(tmp_path_factory: pytest.TempPathFactory) -> SynthInfo:
    return make_synthetic_release(tmp_path_factory.mktemp("faulty") / "hk", seed=3, scale="tiny", faults=True)


@pytest.fixture
def twin_copy(tiny_twin: SynthInfo, tmp_path: Path) -> Path:
    """A private copy of the tiny twin for tests that change files."""
    return Path(shutil.copytree(tiny_twin.root, tmp_path / "hk", ignore=shutil.ignore_patterns(".hyperkvasir")))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``$HYPERKVASIR_SHARED``: real files of the release (official split CSVs, video metadata, samples)."""
    value = os.environ.get("HYPERKVASIR_SHARED")
    if not value or not Path(value, "official", "2_fold_split.csv").is_file():
        pytest.skip("real release files absent: set HYPERKVASIR_SHARED to the folder holding official/")
    return Path(value)


@pytest.fixture
def interrupt_after_first_epoch(monkeypatch):
    """Make a training module stop (KeyboardInterrupt) right after its first epoch was saved; undo with the
    returned function before resuming."""

    def arm(module) -> callable:
        real = module.write_history

        def interrupt(run, history):
            real(run, history)
            raise KeyboardInterrupt

        monkeypatch.setattr(module, "write_history", interrupt)
        return lambda: monkeypatch.setattr(module, "write_history", real)

    return arm


def real_release_tree(shared: Path, root: Path, *, labeled: bool = True, segmented: bool = True) -> Path:
    """The shared real sample laid out as the release (labeled-images/, segmented-images/, official_splits/)."""
    sample = shared / "real-sample"
    if not (sample / "labeled-lower-gi").is_dir() or not (sample / "segmented-original").is_dir():
        pytest.skip("real pixel sample absent: HYPERKVASIR_SHARED has no real-sample/ folder")
    if labeled:
        shutil.copytree(sample / "labeled-lower-gi", root / "labeled-images")
        shutil.copytree(shared / "official", root / "official_splits", ignore=shutil.ignore_patterns("kvasir-seg"))
    if segmented:
        for kind in ("images", "masks"):
            shutil.copytree(sample / "segmented-original" / kind, root / "segmented-images" / kind)
        shutil.copyfile(
            sample / "segmented-original" / "kvasir-seg-bboxes.json", root / "segmented-images" / "bounding-boxes.json"
        )
    return root


@pytest.fixture(scope="session")
def real_tree(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real labeled lower-GI images and real Kvasir-SEG pairs in the released layout (read-only by convention)."""
    return real_release_tree(shared_data, tmp_path_factory.mktemp("real") / "hk")


@pytest.fixture(scope="session")
def real_audit(real_tree: Path):
    from hyperkvasir.data.audit import audit

    return audit(real_tree, workers=2)


@pytest.fixture
def crash_after_first_epoch(monkeypatch):
    """``arm()`` makes every engine run die right after its first epoch was checkpointed (as a power cut would)
    and returns the function that disarms it before resuming."""
    import lightning as L

    from hyperkvasir.engine.callbacks import EpochHistory

    def crash(self, trainer, module) -> None:
        raise RuntimeError("simulated crash after the first epoch")

    def arm():
        monkeypatch.setattr(EpochHistory, "on_train_epoch_end", crash, raising=False)
        return lambda: monkeypatch.setattr(EpochHistory, "on_train_epoch_end", L.Callback.on_train_epoch_end)

    return arm


@pytest.fixture
def run_cli():
    """``run(args, processes=1)``: the ``hyperkvasir`` command in a fresh Python process, or on ``processes``
    processes through torchrun (gloo on CPU); fails the test with the command's stderr when it fails."""
    import subprocess
    import sys

    def run(args: list, processes: int = 1) -> subprocess.CompletedProcess:
        launcher = (
            ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] if processes > 1 else []
        )
        done = subprocess.run(
            [sys.executable, *launcher, "-m", "hyperkvasir", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=300,
            env=os.environ | {"OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    return run


@pytest.fixture
def small_disk(tmp_path: Path):
    """``mount(size)``: a tmpfs of ``size`` (e.g. "64k") under tmp_path, unmounted afterwards; skips where
    mounting is not permitted (not root, or no CAP_SYS_ADMIN in a container)."""
    import subprocess

    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk-{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture(scope="session")
def classify_checkpoint(tiny_twin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier trained one epoch on the tiny twin (32 px, random start): for commands that need any
    checkpoint."""
    from hyperkvasir.classify.config import ClassifyConfig
    from hyperkvasir.classify.train import train_classify

    run = tmp_path_factory.mktemp("ckpt") / "run"
    train_classify(
        ClassifyConfig(
            root=str(tiny_twin.root),
            out=str(run),
            model="test_efficientnet",
            epochs=1,
            input_size=32,
            workers=0,
            pretrained=False,
        )
    )
    return run / "best.ckpt"


@pytest.fixture(scope="session")
def tiny_bench(tiny_twin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-fold test-protocol benchmark of the tiny twin (32 px, one epoch): every labeled image scored out of
    fold."""
    from hyperkvasir.classify.benchmark import run_benchmark
    from hyperkvasir.classify.config import ClassifyConfig

    out = tmp_path_factory.mktemp("bench") / "bench"
    base = ClassifyConfig(
        root=str(tiny_twin.root),
        model="test_efficientnet",
        epochs=1,
        input_size=32,
        batch_size=8,
        workers=0,
        pretrained=False,
    )
    run_benchmark(tiny_twin.root, ["test_efficientnet"], out, base=base)
    return out
