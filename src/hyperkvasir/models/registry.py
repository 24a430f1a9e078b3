"""Names → models. The paper's (Borgli et al. 2020, Table 3) and modern timm models, 23-class heads."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hyperkvasir.errors import HyperKvasirError
from hyperkvasir.models.weights import (
    keys_that_may_differ,
    load_user_weights,
    read_state_dict,
    resolve_pretrained,
)

NUM_CLASSES = 23


@dataclass(frozen=True)
class ModelSpec:
    name: str
    timm_names: tuple[str, ...]  # one, or two for the averaged ensemble
    paper: str | None  # row of Table 3 it reproduces
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_HALF = (0.5, 0.5, 0.5)  # the paper's PyTorch scripts normalise with mean = std = 0.5
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("resnet50", ("resnet50",), "Pre-Trained ResNet-50", _HALF, _HALF),
        ModelSpec("resnet152", ("resnet152",), "Pre-Trained ResNet-152", _HALF, _HALF),
        ModelSpec("densenet161", ("densenet161",), "Pre-Trained DenseNet-161", _HALF, _HALF),
        # trained jointly on the averaged logits: not the paper's row, which averages two independently trained models
        # (``benchmark --models resnet152,densenet161 --average resnet152+densenet161``)
        ModelSpec(
            "resnet152+densenet161",
            ("resnet152", "densenet161"),
            "ResNet-152 + DenseNet-161, trained jointly on averaged logits",
            _HALF,
            _HALF,
        ),
        ModelSpec("tf_efficientnet_lite0", ("tf_efficientnet_lite0",), None, _HALF, _HALF),
        ModelSpec("efficientnet_b0", ("efficientnet_b0",), None, *_IMAGENET),
        ModelSpec("convnext_tiny", ("convnext_tiny",), None, *_IMAGENET),
        ModelSpec("test_efficientnet", ("test_efficientnet",), None, _HALF, _HALF),  # tiny, for tests
    )
}


class AveragedEnsemble(nn.Module):
    """The paper's "Averaged ResNet-152 + DenseNet-161": the mean of the members' logits."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)


def model_names() -> list[str]:
    return list(MODELS)


def create_model(
    name: str,
    *,
    pretrained: bool = True,
    weights: str | None = None,
    weights_partial: bool = False,
    num_classes: int = NUM_CLASSES,
) -> tuple[nn.Module, str]:
    """(model, where its weights came from) for a registered name.

    ``weights`` for the averaged ensemble is a state dict of the whole ensemble (``members.0.…``) or one file
    per member, comma-separated. Without ``weights`` an ensemble member that would start from random
    initialisation is refused: the paper's ensemble starts from pretrained members.
    """
    import timm

    spec = MODELS.get(name)
    if spec is None:
        raise HyperKvasirError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    files = [w.strip() for w in weights.split(",")] if weights else []
    if files and len(files) not in (1, len(spec.timm_names)):
        raise HyperKvasirError(
            f"--weights names {len(files)} files; {name} takes one file or one per member ({len(spec.timm_names)})"
        )
    members = [timm.create_model(t, pretrained=False, num_classes=num_classes) for t in spec.timm_names]
    if len(members) == 1:
        source = (
            resolve_pretrained(members[0], spec.timm_names[0], files[0] if files else None, partial=weights_partial)
            if pretrained
            else "random"
        )
        return members[0], source
    model = AveragedEnsemble(members)
    if not pretrained:
        return model, "random"
    if len(files) == 1:  # one state dict of the whole ensemble
        may_differ = set().union(
            *(keys_that_may_differ(model, t, f"members.{i}.") for i, t in enumerate(spec.timm_names))
        )
        return model, load_user_weights(model, read_state_dict(files[0]), files[0], may_differ, partial=weights_partial)
    sources = [
        resolve_pretrained(member, timm_name, files[i] if files else None, partial=weights_partial)
        for i, (member, timm_name) in enumerate(zip(members, spec.timm_names))
    ]
    if "random" in sources:
        raise HyperKvasirError(
            f"{name}: no ImageNet weights for {', '.join(t for t, s in zip(spec.timm_names, sources) if s == 'random')}"
            f" here (offline, not in the local cache); pass --weights ENSEMBLE.pth or --weights A.pth,B.pth, or "
            f"--no-pretrained to train from random initialisation on purpose"
        )
    return model, "+".join(sources)
