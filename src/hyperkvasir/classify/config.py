"""The classification run config (``ClassifyConfig``) and its one checker, called by ``train classify``, the
benchmark and every API that builds a config, before any file is written."""

from __future__ import annotations

from dataclasses import dataclass, field

from hyperkvasir.data.reviews import read_reviews
from hyperkvasir.data.splits import DEFAULT_VALIDATION_FRACTION, PROTOCOLS
from hyperkvasir.datasets.transforms import RECIPES
from hyperkvasir.engine.runs import check_device
from hyperkvasir.errors import HyperKvasirError, require_choice, require_compatible, require_ranges

LOSSES = ("ce", "logit-adjusted", "uc-ordinal")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "plateau")  # the paper's ReduceLROnPlateau is "plateau"


@dataclass
class ClassifyConfig:
    """Everything that determines a run; saved as ``config.json`` and read back by ``--resume``."""

    root: str
    model: str = "tf_efficientnet_lite0"
    fold: int = 0  # the test fold
    scheme: str = "official-2fold"
    out: str = "runs/classify"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "sgd"  # sgd (the paper: momentum 0.9) | adamw
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | plateau (the paper's ReduceLROnPlateau, factor 0.1, patience 10)
    patience: int = 0  # early stopping after this many epochs without a better validation macro-F1 (0 = off)
    input_size: int = 224
    recipe: str = "paper"  # paper | modern
    balanced: bool = False  # class-balanced sampling for the rare classes
    label_smoothing: float = 0.0
    loss: str = "ce"  # ce | logit-adjusted (Menon et al. 2021: CE of logits + tau·log prior; tau 1 = balanced softmax)
    # | uc-ordinal (CE plus the class-distance-weighted term over the UC grades, classify/losses.py)
    logit_tau: float = 1.0
    rare_below: int = 0  # classes with fewer training images get the strong label-safe augmentation (0 = off)
    decision_rule: bool = False  # per-class logit offsets fitted on the validation carve-out, applied at test/predict
    tta: bool = False  # test-time flips (identity, horizontal, vertical, both) averaged at test
    mask_corners: bool = False  # blank the ScopeGuide corner (imaging.CORNER_MASK) in every image, predict included
    pretrained: bool = True
    weights: str | None = None
    weights_partial: bool = False  # load only the matching tensors of --weights (counts go to weights_from)
    val_fraction: float = DEFAULT_VALIDATION_FRACTION
    seed: int = 0
    workers: int | None = None  # data-loading processes per rank; None = engine.runs.loader_workers()
    cache: bool = True
    amp: bool = True  # used on GPU only
    sync_batchnorm: bool = False  # under DDP: batch-norm statistics over the global batch (no effect on one process)
    freeze_batchnorm: bool = False  # batch norm on its running statistics while training (fine-tuning, CPU DDP)
    device: str = "auto"
    max_steps_per_epoch: int = 0  # 0 = whole epoch; tests use a few steps
    pseudo_labels: str | None = None  # CSV path,label (from `hyperkvasir predict` + pseudo-labels) added to training
    exclude_conflicts: bool = False  # leave out images whose duplicates carry another class (audit label conflicts)
    reviews: str | None = None  # reviews.csv of `hyperkvasir review`: applied to training and validation labels
    reviews_on_test: bool = False  # apply the reviews to the test labels too (the metrics then say so)
    reviews_sha256: str | None = None  # the reviews file's content when the run began: a changed file is refused
    protocol: str = "test"  # test | dev (score the validation carve-out; select on a second carve-out)
    extra: dict = field(default_factory=dict)


def check_classify_config(config: ClassifyConfig) -> None:
    """Every numeric option in range and every choice valid before any file is written."""
    require_ranges(
        ("--epochs", config.epochs, 1, None),
        ("--batch-size", config.batch_size, 1, None),
        ("--input-size", config.input_size, 16, 2048),
        ("--lr", config.lr, 0, None),
        ("--fold", config.fold, 0, None),
        ("--patience", config.patience, 0, None),
        ("--workers", config.workers, 0, None),
        ("--logit-tau", config.logit_tau, 0, None),
        ("--rare-below", config.rare_below, 0, None),
        ("val_fraction", config.val_fraction, 0.01, 0.9),
        ("label_smoothing", config.label_smoothing, 0, 0.99),
    )
    check_device(config.device)
    require_compatible(config.weights, config.pretrained)
    require_choice("recipe", config.recipe, RECIPES)
    require_choice("optimizer", config.optimizer, OPTIMIZERS)
    require_choice("schedule", config.schedule, SCHEDULES)
    require_choice("protocol", config.protocol, PROTOCOLS)
    require_choice("loss", config.loss, LOSSES)
    if config.reviews_on_test and not config.reviews:
        raise HyperKvasirError(
            "--reviews-on-test applies the --reviews file to the test labels; give --reviews FILE or drop it"
        )
    if config.reviews:
        read_reviews(config.reviews)  # a missing or malformed file stops the run before any folder is made


def scored_part(config: ClassifyConfig) -> str:
    """What a run scores, as its file names say it: ``test`` (the test fold) or ``dev`` (the validation
    carve-out of the training folds)."""
    return "dev" if config.protocol == "dev" else "test"
