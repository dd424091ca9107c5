"""The geometry functions the model uses, from ``cad_perception_ros.geometry`` (single import point)."""
from __future__ import annotations

from cad_perception_ros.geometry.procrustes import roca_procrustes
from cad_perception_ros.geometry.rotations import rotation_about_y, svd_orthogonalize
from cad_perception_ros.geometry.voxelize import trilinear_voxelize

__all__ = ["roca_procrustes", "rotation_about_y", "svd_orthogonalize", "trilinear_voxelize"]
