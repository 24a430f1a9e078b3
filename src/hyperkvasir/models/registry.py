"""Names → models. The paper's (Borgli et al. 2020, Table 3) and modern timm models, 23-class heads."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hyperkvasir.errors import HyperKvasirError
from hyperkvasir.models.weights import resolve_pretrained

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

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("resnet50", ("resnet50",), "Pre-Trained ResNet-50", _HALF, _HALF),
    ModelSpec("resnet152", ("resnet152",), "Pre-Trained ResNet-152", _HALF, _HALF),
    ModelSpec("densenet161", ("densenet161",), "Pre-Trained DenseNet-161", _HALF, _HALF),
    ModelSpec("resnet152+densenet161", ("resnet152", "densenet161"), "Averaged ResNet-152 + DenseNet-161",
              _HALF, _HALF),
    ModelSpec("tf_efficientnet_lite0", ("tf_efficientnet_lite0",), None, _HALF, _HALF),
    ModelSpec("efficientnet_b0", ("efficientnet_b0",), None, *_IMAGENET),
    ModelSpec("convnext_tiny", ("convnext_tiny",), None, *_IMAGENET),
    ModelSpec("test_efficientnet", ("test_efficientnet",), None, _HALF, _HALF),  # tiny, for tests
)}


class AveragedEnsemble(nn.Module):
    """The paper's "Averaged ResNet-152 + DenseNet-161": the mean of the members' logits."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)


def model_names() -> list[str]:
    return list(MODELS)


def create_model(name: str, *, pretrained: bool = True, weights: str | None = None,
                 num_classes: int = NUM_CLASSES) -> tuple[nn.Module, str]:
    """(model, where its weights came from) for a registered name."""
    import timm

    spec = MODELS.get(name)
    if spec is None:
        raise HyperKvasirError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    members, sources = [], []
    for timm_name in spec.timm_names:
        model = timm.create_model(timm_name, pretrained=False, num_classes=num_classes)
        sources.append(resolve_pretrained(model, timm_name, weights) if pretrained else "random")
        members.append(model)
    model = members[0] if len(members) == 1 else AveragedEnsemble(members)
    return model, "+".join(sources)
