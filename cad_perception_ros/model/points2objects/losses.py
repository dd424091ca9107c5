"""The multi-task loss of Points2Objects (Eq. 10) from its already computed terms."""
from __future__ import annotations

from typing import NamedTuple

import torch

from cad_perception_ros.model.points2objects.collision import collision_weight
from cad_perception_ros.model.points2objects.config import P2OConfig


class LossTerms(NamedTuple):
    """Scalar loss terms: L_key (Eq. 1), L_Rt (Eq. 7), L_s, L_z (Eq. 3 or 4), L_coll (Eq. 9)."""

    keypoint: torch.Tensor
    rt: torch.Tensor
    scale: torch.Tensor
    shape: torch.Tensor
    collision: torch.Tensor


def total_loss(terms: LossTerms, step: int, config: P2OConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 10: L_key + l_Rt L_Rt + l_s L_s + l_z L_z + l_coll(step) L_coll.

    l_coll is 0 before config.collision_warmup_steps. Returns the total and a dict of the
    weighted terms (floats, for logging)."""
    weights = {"keypoint": config.weight_keypoint, "rt": config.weight_rt, "scale": config.weight_scale,
               "shape": config.weight_shape, "collision": collision_weight(step, config)}
    weighted = {name: weights[name] * getattr(terms, name) for name in LossTerms._fields}
    total = torch.stack(list(weighted.values())).sum()
    return total, {name: float(value.detach()) for name, value in weighted.items()}
