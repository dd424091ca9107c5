"""Shape selection targets and losses (Points2Objects Eq. 2-5).

Hard labels (Eq. 2-3): one-hot of the exemplar nearest the ground-truth CAD model, trained with
softmax cross-entropy. Soft labels (Eq. 4-5): d(i, k) = [1 - ||phi_i - phi_k|| / r]_+ from the
SDF distance between the ground-truth model and every exemplar, trained with per-exemplar
sigmoid outputs. Eq. 4 as printed keeps only the positive term -d log S(z), which every logit
going to +inf minimises; we use the full binary cross-entropy with soft targets,
-[d log S(z) + (1 - d) log(1 - S(z))], summed over the K exemplars and averaged over objects.
The soft labels are not normalised (they need not sum to 1): the nearest exemplar gets the
largest value, 1 when the ground-truth model is itself an exemplar.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cad_perception_ros.model.points2objects.config import P2OConfig
from cad_perception_ros.model.points2objects.exemplars import ExemplarSet


class ShapeTargets(NamedTuple):
    """hard: (M,) int64 exemplar index (Eq. 2-3); soft: (M, E) float32 in [0, 1] (Eq. 5)."""

    hard: torch.Tensor
    soft: torch.Tensor


def hard_labels(index: torch.Tensor, num_exemplars: int) -> torch.Tensor:
    """One-hot targets (M, E) float32 from exemplar indices (M,)."""
    if index.ndim != 1:
        raise ValueError(f"hard_labels expects indices of shape (M,), got {tuple(index.shape)}")
    return F.one_hot(index.long(), num_exemplars).float()


def soft_labels(distances: torch.Tensor, radius: float) -> torch.Tensor:
    """Eq. 5: [1 - distance / radius]_+ for SDF distances (M, E) -> (M, E); inf -> 0."""
    if distances.ndim != 2:
        raise ValueError(f"soft_labels expects distances of shape (M, E), got {tuple(distances.shape)}")
    if radius <= 0:
        raise ValueError(f"soft_labels radius must be > 0, got {radius}")
    return torch.clamp(1.0 - distances / radius, min=0.0)


def shape_targets(exemplars: ExemplarSet, cad_ids: Sequence[str], config: P2OConfig) -> ShapeTargets:
    """Hard and soft targets for ground-truth CAD models `cad_ids` (M) against the E exemplars.

    Distances come from the set's model table (L2 over the flattened SDFs); with
    config.soft_label_distance == "rms" they are divided by sqrt(G^3). Exemplars of other classes
    get 0 when config.soft_labels_same_class (their table distance is inf anyway).
    """
    rows = exemplars.model_rows(cad_ids)
    dist = torch.from_numpy(exemplars.model_distances[rows]).double()  # (M, E)
    hard = dist.argmin(dim=1)  # (M,) nearest exemplar
    if config.soft_label_distance == "rms":
        dist = dist / float(np.sqrt(exemplars.grid ** 3))
    soft = soft_labels(dist, config.soft_label_radius)
    if config.soft_labels_same_class:
        same = torch.from_numpy(exemplars.model_class_ids[rows][:, None] == exemplars.class_ids[None, :])
        soft = soft * same
    return ShapeTargets(hard=hard, soft=soft.float())


def hard_label_loss(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Eq. 3: mean over M objects of the softmax cross-entropy of logits (M, E) to index (M,)."""
    if logits.ndim != 2 or index.shape != logits.shape[:1]:
        raise ValueError(f"hard_label_loss: logits (M, E) and index (M,) expected, got "
                         f"{tuple(logits.shape)} and {tuple(index.shape)}")
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, index.long())


def soft_label_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 4 (with its negative term): sigmoid BCE of logits (M, E) to soft targets (M, E),
    summed over exemplars, averaged over objects."""
    if logits.shape != targets.shape or logits.ndim != 2:
        raise ValueError(f"soft_label_loss: logits and targets must both be (M, E), got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    bce = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return bce.sum(dim=1).mean()


def shape_loss(logits: torch.Tensor, targets: ShapeTargets, mode: str) -> torch.Tensor:
    """L_z: "soft" (Eq. 4) or "hard" (Eq. 3) for logits (M, E)."""
    if mode == "soft":
        return soft_label_loss(logits, targets.soft)
    if mode == "hard":
        return hard_label_loss(logits, targets.hard)
    raise ValueError(f"shape label mode must be 'soft' or 'hard', got {mode!r}")


def select_exemplars(logits: torch.Tensor, exemplar_class_ids: torch.Tensor,
                     class_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Test time: argmax exemplar (M,) of logits (M, E), restricted to each object's class
    (M,) when `class_ids` is given (exemplar_class_ids: (E,))."""
    if class_ids is None:
        return logits.argmax(dim=1)
    allowed = class_ids[:, None] == exemplar_class_ids[None, :].to(class_ids.device)  # (M, E)
    masked = torch.where(allowed, logits, torch.full_like(logits, float("-inf")))
    return masked.argmax(dim=1)
