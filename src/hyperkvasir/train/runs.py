"""What every training loop shares: seeding, device and process-group set-up, checkpoints, epoch history."""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from hyperkvasir.data.imaging import atomic_write


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """``auto`` → this process's GPU under torchrun (LOCAL_RANK), else CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def distributed() -> tuple[int, int]:
    """(rank, world size), initialising the process group under torchrun (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def save_checkpoint(state: dict, path: Path) -> None:
    with atomic_write(path) as handle:
        torch.save(state, handle)


def write_history(run: Path, history: list[dict]) -> None:
    """``metrics.json`` and ``metrics.csv``: one row per epoch."""
    with atomic_write(run / "metrics.json", "w") as handle:
        json.dump(history, handle, indent=2)
    keys = list(dict.fromkeys(k for row in history for k in row))
    with atomic_write(run / "metrics.csv", "w") as handle:
        writer = csv.DictWriter(handle, keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)


def training_state(model, optimizer, scheduler, scaler) -> dict:
    """The state a resumed run needs besides its own bookkeeping (epoch, history, best score)."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict()}


def restore_training_state(path: Path, model, optimizer, scheduler, scaler, device: torch.device) -> dict:
    """Load ``last.pt`` into the training objects; return the whole checkpoint for the bookkeeping."""
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    return state
