"""A U-Net decoder on a timm encoder (``features_only=True``); encoders pretrained as in models/weights.py."""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

from hyperkvasir.errors import HyperKvasirError
from hyperkvasir.models.weights import resolve_pretrained

# Encoders by name: the offline-capable default and stronger ones (weights need a file or the hub).
ENCODERS = ("tf_efficientnet_lite0", "efficientnet_b3", "resnet50", "convnext_tiny", "test_efficientnet")


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(True),
        nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(True),
    )


class UNet(nn.Module):
    """Encoder features (strides 2…32, or 4…32) upsampled and fused deepest-first; one logit per pixel."""

    def __init__(self, encoder: nn.Module, decoder_channels: tuple[int, ...] = (256, 128, 64, 32)) -> None:
        super().__init__()
        self.encoder = encoder
        skips = list(encoder.feature_info.channels())[::-1]  # deepest first
        blocks, channels = [], skips[0]
        for index, skip in enumerate(skips[1:]):
            out = decoder_channels[min(index, len(decoder_channels) - 1)]
            blocks.append(_block(channels + skip, out))
            channels = out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)[::-1]
        y = features[0]
        for block, skip in zip(self.blocks, features[1:]):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], 1))
        return F.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear", align_corners=False)


def create_unet(
    encoder: str = "tf_efficientnet_lite0",
    *,
    pretrained: bool = True,
    weights: str | None = None,
    weights_partial: bool = False,
) -> tuple[UNet, str]:
    """(model, where the encoder's weights came from)."""
    if encoder not in ENCODERS:
        raise HyperKvasirError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}")
    backbone = timm.create_model(encoder, pretrained=False, features_only=True)
    source = resolve_pretrained(backbone, encoder, weights, partial=weights_partial) if pretrained else "random"
    return UNet(backbone), source
