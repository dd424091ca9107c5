"""Per-CAD-model training tables of Points2Objects and the batch extension for the shared loop.

``targets.collate`` gives each object the row ``cad_pos`` of its ground-truth CAD model in the
CadTable. ``P2OTable`` holds, per row, the model's canonical surface points (for L_Rt, Eq. 7)
and its hard / soft shape-selection targets against the exemplar set (Eq. 2-5);
``extend_batch`` looks them up per object.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from cad_perception_ros.model.points2objects.config import P2OConfig
from cad_perception_ros.model.points2objects.exemplars import ExemplarSet
from cad_perception_ros.model.points2objects.shape_selection import shape_targets


class P2OTable(NamedTuple):
    """Rows of the CadTable: points (N, P, 3) float32 canonical, soft (N, E) float32, hard (N,) int64."""

    points: torch.Tensor
    soft: torch.Tensor
    hard: torch.Tensor


def build_table(cad_ids: list[str], cad_points: np.ndarray, exemplars: ExemplarSet, config: P2OConfig) -> P2OTable:
    """cad_ids (N) and their surface points (N, S, 3) -> P2OTable (first points_per_object points).

    Raises ValueError on a shape mismatch and KeyError for a CAD id the exemplar set does not know."""
    cad_points = np.asarray(cad_points, dtype=np.float32)
    if cad_points.ndim != 3 or cad_points.shape[0] != len(cad_ids) or cad_points.shape[2] != 3:
        raise ValueError(f"build_table: cad_points must be ({len(cad_ids)}, S, 3), got {cad_points.shape}")
    targets = shape_targets(exemplars, cad_ids, config)
    points = torch.from_numpy(np.ascontiguousarray(cad_points[:, :config.points_per_object]))
    return P2OTable(points, targets.soft, targets.hard)


def extend_batch(batch: dict[str, torch.Tensor], table: P2OTable) -> dict[str, torch.Tensor]:
    """Add cad_points (B, M, P, 3), shape_soft (B, M, E) and shape_hard (B, M) by batch["cad_pos"]."""
    rows = batch["cad_pos"].cpu()  # (B, M)
    device = batch["cad_pos"].device
    return {**batch, "cad_points": table.points[rows].to(device), "shape_soft": table.soft[rows].to(device),
            "shape_hard": table.hard[rows].to(device)}
