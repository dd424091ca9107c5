"""Collision metrics of predicted scenes (Points2Objects Table 3), for any model's predictions.

Each prediction is its retrieved CAD model placed by its alignment (x_cam = R diag(s) x + t). Per
image, every unordered pair of predictions is tested with ``collision.intersection_volumes`` on
the models' SDF grids (computed once per CAD model from the database's occupancy grids), and
``summarize_collisions`` gives the mean intersection volume per image (m^3) and the colliding
pairs. Predictions without a CAD model in the database are left out.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cad_perception_ros.model.points2objects.collision import (
    CollisionMetrics,
    PairVolumes,
    intersection_volumes,
    summarize_collisions,
)
from cad_perception_ros.model.points2objects.config import P2OConfig
from cad_perception_ros.model.points2objects.exemplars import fill_empty_grids
from cad_perception_ros.model.points2objects.sdf import occupancy_to_sdf
from cad_perception_ros.types import CadPrediction


class SdfCache:
    """cad_id -> SDF grid (G, G, G) float32 of a CadDatabase model (occupancy_to_sdf, cached)."""

    def __init__(self, database, grid: int = 32):
        self.database, self.grid = database, int(grid)
        self._cache: dict[str, np.ndarray] = {}

    def __contains__(self, cad_id: str) -> bool:
        return bool(cad_id) and cad_id in self.database

    def __getitem__(self, cad_id: str) -> np.ndarray:
        if cad_id not in self._cache:
            row = self.database.index_of(cad_id)
            occupancy = fill_empty_grids(np.asarray(self.database.grids[row:row + 1]),
                                         np.asarray(self.database.points[row:row + 1]))
            self._cache[cad_id] = occupancy_to_sdf(occupancy, self.grid)[0]
        return self._cache[cad_id]


def image_collisions(predictions: Sequence[CadPrediction], sdfs: SdfCache,
                     samples_per_axis: int = 24) -> PairVolumes:
    """PairVolumes (pairs index the predictions that have a CAD model in `sdfs`) of one image."""
    kept = [p for p in predictions if p.cad_id in sdfs]
    if len(kept) < 2:
        return PairVolumes(torch.zeros(0, 2, dtype=torch.int64), torch.zeros(0, dtype=torch.float64))
    sdf = torch.from_numpy(np.stack([sdfs[p.cad_id] for p in kept])).double()  # (M, G, G, G)
    rot = torch.from_numpy(np.stack([p.alignment.rotation for p in kept]))  # (M, 3, 3)
    trans = torch.from_numpy(np.stack([p.alignment.translation for p in kept]))  # (M, 3)
    scale = torch.from_numpy(np.stack([p.alignment.scale for p in kept]))  # (M, 3)
    return intersection_volumes(sdf, rot, trans, scale, torch.zeros(len(kept), dtype=torch.int64),
                                samples_per_axis=samples_per_axis)


def evaluate_collisions(per_image: Sequence[Sequence[CadPrediction]], database,
                        config: P2OConfig | None = None) -> CollisionMetrics:
    """CollisionMetrics over images (one prediction list each); settings from P2OConfig
    (sdf_grid, collision_samples_per_axis, collision_volume_eps)."""
    config = config or P2OConfig()
    sdfs = SdfCache(database, config.sdf_grid)
    volumes = [image_collisions(preds, sdfs, config.collision_samples_per_axis) for preds in per_image]
    return summarize_collisions(volumes, eps=config.collision_volume_eps)


def format_collisions(metrics: CollisionMetrics) -> str:
    """Markdown table: mean intersection volume per image and colliding pairs per image."""
    per_image = metrics.num_colliding_pairs / max(metrics.num_images, 1)
    return ("| images | pairs | colliding pairs | colliding pairs / image | mean intersection volume / image (m^3) |\n"
            "|---:|---:|---:|---:|---:|\n"
            f"| {metrics.num_images} | {metrics.num_pairs} | {metrics.num_colliding_pairs} | {per_image:.3f} "
            f"| {metrics.mean_intersection_volume:.5f} |")
