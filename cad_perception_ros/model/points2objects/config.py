"""Settings of the Points2Objects-specific parts: shape exemplars, shape selection, losses.

The defaults follow the paper (Engelmann et al., "Points2Objects", CVPR 2021) where it gives a
value; the comments name the equation or section. Where this project deviates (database size,
distance normalisation of the soft labels, reductions), the comment says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class P2OConfig:
    """Points2Objects settings (exemplar database, shape selection, 9-DoF and collision losses)."""

    # --- shape-exemplar database (Sec. 3.2, "Building the shape database") ---
    # k of k-means++, clamped to the number of models of a class; the paper's 50 would make every model
    # of the bundled database (24 per class) its own exemplar: the shipped model uses 12
    exemplars_per_class: int = 12
    sdf_grid: int = 32                     # SDF resolution G (paper: 32^3); must divide the occupancy grid
    kmeans_iterations: int = 100           # Lloyd iterations after the k-means++ seeding
    kmeans_seed: int = 0

    # --- shape selection (Eq. 2-5; soft or hard labels: model.ablation.shape_labels) ---
    # Eq. 5: d(i, k) = [1 - ||phi_i - phi_k|| / soft_label_radius]_+ . The paper uses the raw L2 norm
    # with radius 1; "rms" divides the norm by sqrt(G^3) (root-mean-square SDF difference in
    # canonical units) so the radius does not depend on the grid size.
    soft_label_distance: Literal["l2", "rms"] = "rms"
    soft_label_radius: float = 0.1
    soft_labels_same_class: bool = True    # zero the targets of exemplars of other classes

    # --- 9-DoF box losses (Eq. 6-7) and loss weights (Eq. 10: lambda_Rt, s, z, coll = 10, 10, 0.1, 1) ---
    points_per_object: int = 512           # surface points per object for L_Rt and L_coll
    weight_keypoint: float = 1.0
    weight_rt: float = 10.0
    weight_scale: float = 10.0
    weight_shape: float = 0.1
    weight_collision: float = 1.0

    # --- collision loss (Eq. 8-9) and its warm-up (the paper, Sec. 3.5: off for the first 100 of 300
    # epochs, as config/p2o_synthetic.yaml trains from scratch; 0, the shipped model's: on from the start) ---
    collision_warmup_steps: int = 0        # lambda_coll = 0 before this optimiser step
    # --- collision metrics (Table 3) ---
    collision_samples_per_axis: int = 24   # regular n^3 samples in one object's box per pair
    collision_volume_eps: float = 1e-6     # m^3; a pair intersecting more than this counts as colliding

    def __post_init__(self) -> None:
        positive_ints = ("exemplars_per_class", "sdf_grid", "kmeans_iterations", "points_per_object",
                         "collision_samples_per_axis")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.soft_label_radius <= 0:
            raise ValueError(f"soft_label_radius must be > 0, got {self.soft_label_radius}")
        if self.collision_warmup_steps < 0:
            raise ValueError(f"collision_warmup_steps must be >= 0, got {self.collision_warmup_steps}")
        for name in ("weight_keypoint", "weight_rt", "weight_scale", "weight_shape", "weight_collision",
                     "collision_volume_eps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
