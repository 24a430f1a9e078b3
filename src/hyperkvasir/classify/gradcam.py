"""Grad-CAM (Selvaraju et al., ICCV 2017) for the timm classifiers: where the top class's evidence lies.

The class score's gradient with respect to the last feature map (``forward_features``) is averaged per channel
to weight that map; the ReLU of the weighted sum, upsampled to the input, is the heat map. Overlays help spot
shortcuts such as the ScopeGuide thumbnail or burned-in borders.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from hyperkvasir.classify.module import ClassifyModule
from hyperkvasir.data.imaging import load_square
from hyperkvasir.datasets.transforms import normalise
from hyperkvasir.errors import HyperKvasirError


def grad_cam(model: nn.Module, images: torch.Tensor, target: torch.Tensor | None = None) -> np.ndarray:
    """Heat maps in [0, 1], shape (N, H, W), for normalised ``images`` (N, 3, H, W); target = top class."""
    if not hasattr(model, "forward_features") or not hasattr(model, "forward_head"):
        raise HyperKvasirError("Grad-CAM needs a single timm model (forward_features/forward_head), not an ensemble")
    model.eval()
    with torch.enable_grad():
        features = model.forward_features(images).detach().requires_grad_(True)
        logits = model.forward_head(features)
        target = logits.argmax(1) if target is None else target
        logits.gather(1, target[:, None]).sum().backward()
    weights = features.grad.mean(dim=(2, 3), keepdim=True)
    cams = torch.relu((weights * features).sum(1)).detach().cpu().numpy()
    out = np.zeros((len(cams), images.shape[2], images.shape[3]), np.float32)
    for i, cam in enumerate(cams):
        cam = cv2.resize(cam, (images.shape[3], images.shape[2]), interpolation=cv2.INTER_LINEAR)
        out[i] = cam / cam.max() if cam.max() > 0 else cam
    return out


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 image with the heat map (jet colours) blended over it."""
    colours = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return (image * (1 - alpha) + colours * alpha).astype(np.uint8)


def checkpoint_gradcam(checkpoint, paths: list, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, str]:
    """(uint8 HWC squares framed as in training, heat maps, model name) of a classification checkpoint on image
    files."""
    module, _ = ClassifyModule.from_checkpoint(checkpoint, device)
    config, spec = module.config, module.spec
    raw = np.stack([load_square(p, config.input_size, mask_corners=config.mask_corners) for p in paths])
    heat = grad_cam(module.model, normalise(torch.from_numpy(raw).permute(0, 3, 1, 2).to(device), spec.mean, spec.std))
    return raw, heat, config.model
