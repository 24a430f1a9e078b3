"""Losses beyond cross-entropy: a penalty for the distance between ulcerative-colitis grades.

The six UC labels are one ordinal scale (``metrics/ordinal.py``); confusing grade 1 with grade 1-2 is a smaller
error than with grade 3, yet cross-entropy charges both alike. The class-distance-weighted cross-entropy of Polat
et al. (2022, "Class distance weighted cross-entropy loss for ulcerative colitis severity estimation") adds, for
an image whose truth is a UC grade, −Σ_j log(1 − p_j) · |pos(truth) − pos(j)| over the six grades j.
"""

from __future__ import annotations

import torch

from hyperkvasir.metrics.ordinal import UC_SCALE


def uc_distance_penalty(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The class-distance-weighted term over the batch (zero for images of other classes), averaged over all
    images so its weight follows the share of UC images in the batch."""
    grades = torch.as_tensor(UC_SCALE, device=logits.device)
    position = torch.full((logits.shape[1],), -1, dtype=torch.long, device=logits.device)
    position[grades] = torch.arange(len(UC_SCALE), device=logits.device)
    truth = position[targets]
    graded = truth >= 0
    if not bool(graded.any()):
        return logits.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) whole
    probs = torch.softmax(logits[graded].float(), 1)[:, grades].clamp(max=1 - 1e-6)
    distance = (truth[graded, None] - torch.arange(len(UC_SCALE), device=logits.device)[None, :]).abs().float()
    return -(torch.log1p(-probs) * distance).sum(1).sum() / len(targets)
