"""The one training engine (PyTorch Lightning): Trainer factory, callbacks, run folders, samplers. No task
knowledge lives here; a task supplies a LightningModule and a LightningDataModule."""

from hyperkvasir.engine.runs import RunFolder, distributed, pick_device, seed_everything
from hyperkvasir.engine.sampling import EpochSampler
from hyperkvasir.engine.trainer import EngineOptions, fit, zero_loss

__all__ = [
    "EngineOptions",
    "EpochSampler",
    "RunFolder",
    "distributed",
    "fit",
    "pick_device",
    "seed_everything",
    "zero_loss",
]
