"""Grad-CAM lights the region that decides: a small conv net learns a class carried by one bright patch, placed at
random on noise, and its Grad-CAM of that class puts the heat on the patch of each image."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hyperkvasir.classify.gradcam import grad_cam

HEIGHT, WIDTH, PATCH = 32, 48, 8  # not square, so a swapped height and width would misplace the heat


class PatchNet(nn.Module):
    """Two convolutions (the second at stride 2, so the map is upsampled back), global average pooling, a linear
    head: the timm split into ``forward_features`` and ``forward_head`` that Grad-CAM needs."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU()
        )
        self.head = nn.Linear(8, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _images(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(images, labels, patch corners): Gaussian noise everywhere; class 1 adds a bright patch at a random place."""
    images = rng.normal(0, 0.5, (n, 3, HEIGHT, WIDTH)).astype(np.float32)
    labels = rng.integers(0, 2, n)
    corners = np.stack([rng.integers(0, HEIGHT - PATCH, n), rng.integers(0, WIDTH - PATCH, n)], 1)
    for image, label, (y, x) in zip(images, labels, corners):
        if label:
            image[:, y : y + PATCH, x : x + PATCH] += 2.0
    return torch.from_numpy(images), torch.from_numpy(labels), corners


def test_gradcam_puts_the_heat_on_the_patch_that_carries_the_class() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = PatchNet()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        images, labels, _ = _images(rng, 32)
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimiser.step()
    images, labels, corners = _images(rng, 64)
    with torch.no_grad():
        assert (model(images).argmax(1) == labels).float().mean() >= 0.95  # it learned the patch

    positive = labels.numpy() == 1
    heat = grad_cam(model, images[positive], torch.ones(int(positive.sum()), dtype=torch.long))
    assert heat.shape == (positive.sum(), HEIGHT, WIDTH)
    ratios, peaks_inside = [], []
    for cam, (y, x) in zip(heat, corners[positive]):
        inside = np.zeros((HEIGHT, WIDTH), bool)
        inside[y : y + PATCH, x : x + PATCH] = True
        ratios.append(cam[inside].mean() / max(cam[~inside].mean(), 1e-6))
        peak = np.unravel_index(cam.argmax(), cam.shape)
        peaks_inside.append(y - 2 <= peak[0] < y + PATCH + 2 and x - 2 <= peak[1] < x + PATCH + 2)
    # per unit area the patch holds at least ten times the heat of the rest, in every image; the hottest pixel
    # lies on the patch (2 px of upsampling blur allowed)
    assert min(ratios) >= 10, sorted(ratios)[:5]
    assert all(peaks_inside)
