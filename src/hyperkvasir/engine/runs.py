"""Run folders, seeding, and the process facts every entry point needs (device, rank, world size)."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from hyperkvasir.errors import DataError, HyperKvasirError, require_output
from hyperkvasir.outputs import atomic_write


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_device(name: str | None) -> None:
    """Refuse a ``--device`` this machine does not have, before any work: a silent fall-back to the CPU would
    make a flag the command accepts one it ignores."""
    if name in (None, "auto", "cpu"):
        return
    try:
        device = torch.device(name)
    except RuntimeError:
        raise HyperKvasirError(f"--device {name}: not a device name; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise HyperKvasirError(
            f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s); use auto or cpu"
        )
    if device.type not in ("cuda", "cpu"):
        raise HyperKvasirError(f"--device {name}: only cpu and cuda are supported; use auto, cpu or cuda")


def pick_device(name: str) -> torch.device:
    """``auto`` → this process's GPU under torchrun (LOCAL_RANK), else CPU."""
    check_device(name)
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def distributed() -> tuple[int, int]:
    """(rank, world size) for inference under torchrun or SLURM's ``srun`` (the rule training follows:
    :func:`launched_world`), initialising the process group (NCCL on GPU, each rank on its own device; gloo on
    CPU). Under ``srun`` without torchrun, Lightning's SLURM environment names the main node and port."""
    import torch.distributed as dist

    world = launched_world()[0]
    if world > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
        if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
            from lightning.fabric.plugins.environments import SLURMEnvironment

            slurm = SLURMEnvironment(auto_requeue=False)
            os.environ.setdefault("MASTER_ADDR", slurm.main_address)
            os.environ.setdefault("MASTER_PORT", str(slurm.main_port))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", rank=global_rank(), world_size=world)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def from_rank_zero(value, world: int):
    """Rank 0's ``value`` on every rank (of the process group :func:`distributed` began)."""
    if world == 1:
        return value
    import torch.distributed as dist

    shared = [value]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def gathered(value, rank: int, world: int) -> list:
    """Every rank's ``value`` on rank 0, in rank order (the others get their own back, alone); the process group
    ends here, for all ranks together: a rank exiting while another still holds it can abort (gloo)."""
    if world == 1:
        return [value]
    import torch.distributed as dist

    shards: list = [None] * world
    dist.all_gather_object(shards, value)
    leave_together(world)
    return shards if rank == 0 else [value]


def barrier(world: int) -> None:
    """Wait until every rank of the process group :func:`distributed` began is here (alone: no wait)."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def leave_together(world: int) -> None:
    """End the process group for all ranks at once: a rank exiting while another still holds it can abort (gloo)."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def under_slurm_alone() -> bool:
    """Launched by ``srun`` with several tasks and no torchrun: the SLURM variables name rank and world."""
    return "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", 1)) > 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))


def launched_world() -> tuple[int, int, int]:
    """(world size, processes on this node, nodes) as torchrun or SLURM launched this process (1, 1, 1 alone)."""
    if "WORLD_SIZE" in os.environ:
        world = int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        return world, local, max(1, world // local)
    if under_slurm_alone():
        world, nodes = int(os.environ["SLURM_NTASKS"]), int(os.environ.get("SLURM_NNODES", 1))
        return world, world // nodes, nodes
    return 1, 1, 1


def global_rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", 0)))


MAX_LOADER_WORKERS = 8  # decoding a 64–512 px JPEG batch rarely needs more; each worker holds a copy of the dataset


def loader_workers(requested: int | None = None) -> int:
    """Data-loading processes for this rank: ``requested`` when given, else the cores this process may use
    shared by the ranks on its node, less one for the rank itself (at most :data:`MAX_LOADER_WORKERS`). Eight
    ranks on a 64-core node get 7 each, one process on 2 cores gets 1; a fixed default would oversubscribe the
    node under torchrun or idle a large one."""
    if requested is not None:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(MAX_LOADER_WORKERS, cores // launched_world()[1] - 1))


def load_checkpoint(
    path: str | Path,
    task: str | None = None,
    device: torch.device | str = "cpu",
    *,
    mmap: bool = False,
    remedy: str | None = None,
) -> dict:
    """A toolkit checkpoint read safely (``weights_only``: tensors and plain values, never code); with ``task``,
    one of that task. Anything else is refused with one line that ends in ``remedy`` (what to do; by default,
    pass a best.ckpt of ``hyperkvasir train``). ``mmap`` maps the tensors instead of reading them (a look at the
    metadata costs no read of the weights)."""
    path = Path(path)
    remedy = remedy or f"pass a best.ckpt written by `hyperkvasir train{f' {task}' if task else ''}`"
    if not path.is_file():
        raise HyperKvasirError(f"{path}: checkpoint not found; {remedy}")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except Exception as error:  # a file that is no checkpoint (empty, truncated), or one that carries code
        raise HyperKvasirError(
            f"{path}: not a hyperkvasir checkpoint that loads safely ({type(error).__name__}); {remedy}"
        ) from None
    found = checkpoint.get("hyper_parameters", {}).get("task") if isinstance(checkpoint, dict) else None
    if found not in ("classify", "segment", "video") or "state_dict" not in checkpoint:
        raise HyperKvasirError(f"{path}: not a hyperkvasir checkpoint (no task recorded); {remedy}")
    if task is not None and found != task:
        raise HyperKvasirError(f"{path}: a {found} checkpoint, not a {task} one; {remedy}")
    return checkpoint


def checkpoint_config(checkpoint: dict, path: str | Path, config_type: type, models) -> object:
    """The run config a checkpoint of :func:`load_checkpoint` carries, as ``config_type``. An option this version
    does not know, or a model outside ``models`` (the task's registry), means a newer toolkit wrote it: refused by
    name rather than guessed at."""
    from hyperkvasir.version import __version__

    config = checkpoint["hyper_parameters"].get("config")
    known = {field.name for field in dataclasses.fields(config_type)}
    unknown = sorted(set(config) - known) if isinstance(config, dict) else ["(no config recorded)"]
    if not unknown and config.get("model") not in models:
        unknown = [f"model {config.get('model')!r}"]
    if unknown:
        raise HyperKvasirError(
            f"{path}: {', '.join(map(str, unknown))} unknown to hyperkvasir {__version__} (a "
            f"newer version wrote this checkpoint?); upgrade hyperkvasir to load it"
        )
    return config_type(**config)


def checkpoint_task(path: str | Path) -> str:
    """The ``task`` a toolkit checkpoint was trained for (its weights are mapped, not read: the caller loads them
    once afterwards)."""
    return load_checkpoint(path, mmap=True)["hyper_parameters"]["task"]


def _default(field: dataclasses.Field):
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


_HELD: dict[Path, object] = {}  # run folders this process holds the lock of


class RunFolder:
    """``config.json`` (the resolved config, world size and devices), checkpoints, logs and curves of one run.

    A new run refuses a folder that holds a run; ``resume`` reads the saved config back. A run that fails
    before its first checkpoint leaves no folder behind.
    """

    def __init__(self, path: str | Path) -> None:
        require_output(path, folder=True)
        self.path = Path(path)

    @property
    def last(self) -> Path:
        return self.path / "last.ckpt"

    @property
    def best(self) -> Path:
        return self.path / "best.ckpt"

    def config_for(self, config, resume: bool):
        """``config`` for a new run; for a resumed one the saved config, with this call's root and out. A resume
        continues the run as it was made: options that decide what it computes must not differ from the saved
        ones (a resumed run that silently trained with the old ones would report what was not asked)."""
        if not resume:
            return config
        from hyperkvasir.provenance import differing_keys

        fields = {f.name: f for f in dataclasses.fields(config)}
        saved = {k: v for k, v in self.saved_config().items() if k in fields}
        # a field left at its default asks for nothing: it takes the saved value
        differ = [
            key
            for key in differing_keys(saved, dataclasses.asdict(config))
            if getattr(config, key) != _default(fields[key])
        ]
        if differ:
            shown = ", ".join(f"{key} {saved.get(key)!r} → {getattr(config, key)!r}" for key in differ)
            raise HyperKvasirError(
                f"{self.path}: --resume continues the run as it was made, but {shown} differ "
                f"from it; drop those options, or start a new run in another --out"
            )
        return type(config)(**{**saved, "root": config.root, "out": config.out})

    def saved_config(self) -> dict:
        config = self.path / "config.json"
        if not config.is_file():
            raise HyperKvasirError(
                f"{self.path}: no run to resume here (no config.json); drop --resume or pick the run folder with --out"
            )
        try:
            saved = json.loads(config.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError):
            saved = None
        if not isinstance(saved, dict):
            raise DataError(
                f"{config}: damaged (not a JSON object of the run's options), so the run cannot be "
                f"continued as it was made; restore the file or start a new run in another --out"
            )
        return saved

    def lock(self) -> None:
        """Hold the run folder for this process until it exits or trains there again: a second training started
        into the same folder by another process stops at once instead of reporting the other's checkpoint."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        key = self.path.resolve()
        if key in _HELD:  # this process trained here before (a rerun, a resume): its own lock is no obstacle
            _HELD.pop(key).close()
        handle = open(self.path / ".run.lock", "w")  # noqa: SIM115  (held until the process exits)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise HyperKvasirError(
                f"{self.path}: another training is running in this folder; wait for it or choose another --out"
            ) from None
        _HELD[key] = handle

    def start(self, config, *, resume: bool) -> bool:
        """Write ``config.json`` for a new run (after taking the folder's lock); returns whether this call created
        the folder."""
        if not resume and (self.last.exists() or self.best.exists()):
            raise HyperKvasirError(
                f"{self.path}: a run is already there; pass --resume to continue it or choose another --out"
            )
        created = not self.path.exists()
        if global_rank() == 0:
            self.lock()
        if resume:
            return False
        if global_rank() == 0:
            world, local, nodes = launched_world()
            record = dataclasses.asdict(config) | {
                "world_size": world,
                "nodes": nodes,
                "devices_per_node": local,
                "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            }
            with atomic_write(self.path / "config.json", "w") as handle:
                json.dump(record, handle, indent=2)
        return created

    def discard(self, created: bool) -> None:
        """Remove a folder this run created when the run failed before its first checkpoint."""
        if created and global_rank() == 0 and not self.last.exists():
            shutil.rmtree(self.path, ignore_errors=True)
