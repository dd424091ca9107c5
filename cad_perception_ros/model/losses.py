"""Loss functions: CenterNet focal loss, masked berHu, rotation errors, weighted means."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_heatmap_loss(logits: torch.Tensor, target: torch.Tensor,
                       class_weights: torch.Tensor | None = None,
                       alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet penalty-reduced focal loss.

    logits, target: (B, C, h, w), target Gaussian peaks = 1; class_weights (C,) or None.
    Normalised by the number of peaks.
    """
    prob = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = (target >= 0.999).to(logits.dtype)
    pos_loss = -torch.log(prob) * (1 - prob) ** alpha * pos
    neg_loss = -torch.log(1 - prob) * prob ** alpha * (1 - target) ** beta * (1 - pos)
    loss = pos_loss + neg_loss  # (B, C, h, w)
    if class_weights is not None:
        loss = loss * class_weights.view(1, -1, 1, 1)
    return loss.sum() / pos.sum().clamp_min(1.0)


def berhu_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked reverse Huber (ROCA Eq. 17), c = 1/5 of the largest absolute error in the batch.

    pred, target, mask: same shape; mask 1 where the target depth is valid.
    """
    diff = (pred - target).abs() * mask
    c = (0.2 * diff.max().detach()).clamp_min(1e-6)
    loss = torch.where(diff <= c, diff, (diff ** 2 + c ** 2) / (2 * c))
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


def rotation_error(rotation: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Per-item rotation loss of (N, 3, 3) matrices -> (N,).

    "l1": sum |R - R_gt| (ROCA Eq. 10); "chordal": |R - R_gt|_F^2 = 4 (1 - cos angle)."""
    diff = (rotation - target).flatten(1)  # (N, 9)
    if kind == "l1":
        return diff.abs().sum(1)
    if kind == "chordal":
        return diff.pow(2).sum(1)
    raise ValueError(f"rotation loss must be 'l1' or 'chordal', got {kind!r}")


def weighted_mean(per_item: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """per_item (N,), weights (N,) >= 0 -> scalar weighted mean (0 when all weights are 0)."""
    return (per_item * weights).sum() / weights.sum().clamp_min(1e-6)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pred, target (N, P, D), mask (N, P) -> (N,) mean L1 over masked entries per item."""
    per = (pred - target).abs().sum(-1) * mask  # (N, P)
    return per.sum(1) / mask.sum(1).clamp_min(1.0)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float = 0.5) -> torch.Tensor:
    """ROCA Eq. 15 with squared L2 distances: (N, D) each -> (N,)."""
    d_pos = (anchor - positive).pow(2).sum(-1)
    d_neg = (anchor - negative).pow(2).sum(-1)
    return F.relu(d_pos - d_neg + margin)
