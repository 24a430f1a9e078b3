"""The Trainer factory and ``fit``: devices, strategy (DDP on NCCL or gloo, multi-node via torchrun or SLURM),
precision (bf16 or 16-bit mixed on GPU), batch norm synchronised over processes (GPU) or frozen on its running
statistics, checkpoints on the validation metric plus ``last.ckpt`` every epoch, early stopping, a rich per-batch
progress bar, TensorBoard logs, exact resume and a clear out-of-memory line. Under DDP each process trains on its
share of one seeded sequence and gradients are averaged, so N processes × batch B take the steps of one process ×
batch N·B when batch norm does not depend on the per-process batch (tests/train/test_scale_out.py)."""

from __future__ import annotations

import errno
import io
import logging
import signal
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.layer_sync import LayerSync

from hyperkvasir.engine.callbacks import EpochHistory, EpochSeeding, FrozenBatchNorm
from hyperkvasir.engine.runs import RunFolder, launched_world, load_checkpoint, seed_everything, under_slurm_alone
from hyperkvasir.errors import DataError, HyperKvasirError
from hyperkvasir.outputs import atomic_write

log = logging.getLogger(__name__)
DDP_TIMEOUT = timedelta(hours=3)


@dataclass(frozen=True)
class EngineOptions:
    epochs: int
    monitor: str  # the validation metric that chooses best.ckpt, e.g. "val_macro_f1"
    mode: str = "max"
    patience: int = 0  # early stopping after this many epochs without improvement (0 = off)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16-mixed or 16-mixed on GPU, 32 on CPU) | 32 | bf16-mixed | 16-mixed
    max_steps_per_epoch: int = 0  # 0 = whole epoch
    progress: bool = True
    sync_batchnorm: bool = False  # under DDP on GPUs: batch-norm statistics over the batches of every process
    freeze_batchnorm: bool = False  # batch norm in eval mode while training (engine.callbacks.FrozenBatchNorm)

    @classmethod
    def of_run(cls, config, *, monitor: str, progress: bool, **task_options) -> EngineOptions:
        """The options every task's run config states alike (epochs, seed, device, steps per epoch, batch-norm
        handling); ``task_options`` adds those only some tasks have (``patience``, ``precision``)."""
        return cls(
            epochs=config.epochs,
            monitor=monitor,
            seed=config.seed,
            device=config.device,
            max_steps_per_epoch=config.max_steps_per_epoch,
            progress=progress,
            sync_batchnorm=config.sync_batchnorm,
            freeze_batchnorm=config.freeze_batchnorm,
            **task_options,
        )


def _precision(choice: str, gpu: bool) -> str:
    if choice != "auto":
        return choice
    if not gpu:
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def _quiet_lightning() -> None:
    """Lightning's start-up banners and tips are noise on our stderr; its warnings and errors stay."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


class BesideTargetCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file beside their target and renamed: Lightning's own writer goes through
    fsspec, whose temp file lives in the system temp folder (often small on clusters, and the move across file
    systems is a copy, not atomic). A full disk is one line naming the file."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            with atomic_write(path) as handle:
                handle.write(buffer.getbuffer())
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise DataError(
                f"{path}: the disk is full ({error.strerror}); free space there and rerun (--resume "
                f"continues from last.ckpt when the run folder holds one)"
            ) from None


class TimmSyncBatchNorm(LayerSync):
    """SyncBatchNorm through timm's converter: torch's (Lightning's ``sync_batchnorm=True``) turns timm's
    ``BatchNormAct2d`` — normalisation and activation in one layer — into a bare ``SyncBatchNorm``, silently
    dropping the activation. Parameter and buffer names are unchanged, so checkpoints load into the plain model."""

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        from timm.layers import convert_sync_batchnorm

        return convert_sync_batchnorm(model)

    def revert(self, model: torch.nn.Module) -> torch.nn.Module:
        return model  # Lightning never reverts during fit; a checkpoint's weights load into the plain model


def zero_loss(module: L.LightningModule) -> torch.Tensor:
    """The loss of a batch whose every image failed to load: zero, but through every parameter, so the step is
    like any other to DDP's gradient synchronisation and 16-bit loss scaling (a ``None`` step hangs DDP)."""
    return sum(parameter.sum() for parameter in module.parameters() if parameter.requires_grad) * 0.0


def build_trainer(run: Path, options: EngineOptions) -> L.Trainer:
    _quiet_lightning()
    gpu = torch.cuda.is_available() and options.device != "cpu"
    world, local, nodes = launched_world()
    strategy: object = "auto"
    if world > 1:
        from lightning.pytorch.strategies import DDPStrategy

        # other ranks wait while rank 0 indexes and caches; a first index of the full release takes long
        strategy = DDPStrategy(process_group_backend="nccl" if gpu else "gloo", timeout=DDP_TIMEOUT)
    checkpoint = ModelCheckpoint(
        dirpath=run,
        filename="best",
        monitor=options.monitor,
        mode=options.mode,
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
        save_on_train_epoch_end=False,
    )  # after validation, with the epoch's history
    callbacks: list = [EpochSeeding(options.seed), EpochHistory(run), checkpoint]
    if options.freeze_batchnorm:
        callbacks.append(FrozenBatchNorm())
    plugins: list = [BesideTargetCheckpointIO(), *_cluster_environment()]
    if options.sync_batchnorm and world > 1:  # one process: its batch is the global batch already
        if not gpu:
            raise HyperKvasirError(
                "--sync-batchnorm: torch's SyncBatchNorm runs on GPUs only; drop it on CPU, or "
                "pass --freeze-batchnorm (batch norm on its running statistics)"
            )
        plugins.append(TimmSyncBatchNorm())
    if options.patience:
        callbacks.append(
            EarlyStopping(
                monitor=options.monitor, mode=options.mode, patience=options.patience, check_on_train_epoch_end=False
            )
        )
    if options.progress:
        callbacks.append(RichProgressBar(leave=False, console_kwargs={"stderr": True}))  # stdout stays for --json
    return L.Trainer(
        max_epochs=options.epochs,
        accelerator="gpu" if gpu else "cpu",
        devices=local if world > 1 else 1,
        num_nodes=nodes,
        strategy=strategy,
        precision=_precision(options.precision, gpu),
        callbacks=callbacks,
        logger=TensorBoardLogger(run, name="tensorboard", version=""),
        default_root_dir=run,
        limit_train_batches=options.max_steps_per_epoch or 1.0,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        enable_progress_bar=options.progress,
        enable_model_summary=False,
        plugins=plugins,
    )


def _cluster_environment() -> list:
    """Lightning's SLURM environment when ``srun`` launched the tasks without torchrun (it would miss an
    interactive job otherwise, and each task would train alone)."""
    if not under_slurm_alone():
        return []
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)]


def fit(
    build: Callable[[], tuple[L.LightningModule, L.LightningDataModule]],
    folder: RunFolder,
    options: EngineOptions,
    *,
    config,
    resume: bool,
) -> tuple[L.Trainer, L.LightningModule, L.LightningDataModule]:
    """Start the run folder (``config`` recorded), seed, ``build`` the module and datamodule, and train until the
    last epoch (or an early stop); ``resume`` continues from ``last.ckpt`` exactly. A run that fails before its
    first checkpoint leaves no folder behind."""
    created = folder.start(config, resume=resume)
    try:
        seed_everything(options.seed)
        module, datamodule = build()
        resume_from = folder.last if resume and folder.last.exists() else None
        if resume_from is not None:  # Lightning would fail on a truncated or foreign file with its traceback
            load_checkpoint(
                resume_from,
                module.hparams["task"],
                mmap=True,
                remedy="delete it and pass --resume again to train this run from its start, or "
                "start a new run with another --out",
            )
        trainer = build_trainer(folder.path, options)
        on_interrupt = signal.getsignal(signal.SIGINT)
        try:
            trainer.fit(
                module,
                datamodule=datamodule,
                weights_only=True,  # a foreign run folder cannot run code
                ckpt_path=resume_from,
            )
        except SystemExit as error:  # Lightning ends a Ctrl-C with exit(1), leaving Ctrl-C ignored: give both back
            if not isinstance(error.__context__, KeyboardInterrupt):
                raise
            signal.signal(signal.SIGINT, on_interrupt)
            raise KeyboardInterrupt from None
        except torch.OutOfMemoryError:
            batch = getattr(datamodule, "batch_size", None)
            raise HyperKvasirError(
                f"out of GPU memory{f' at batch size {batch}' if batch else ''}; lower --batch-size"
                f"{f' (try {max(1, batch // 2)})' if batch else ''} or --input-size"
            ) from None
    except BaseException:
        folder.discard(created)
        raise
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # every rank finishes training before rank 0 tests alone; the group stays up for the next fold or seed
        # of a benchmark (a group destroyed and made again can read the old one's addresses) and is left by
        # every rank together when the command ends (``cli.main``)
        torch.distributed.barrier()
    return trainer, module, datamodule
