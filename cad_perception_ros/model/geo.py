"""The geometry functions the model uses, from ``cad_perception_ros.geometry``.

Single import point so the model does not depend on geometry's module layout.
"""
from __future__ import annotations

try:
    from cad_perception_ros.geometry.procrustes import weighted_procrustes
    from cad_perception_ros.geometry.rotations import svd_orthogonalize
    from cad_perception_ros.geometry.voxelize import trilinear_voxelize
except ImportError:  # TEMPORARY until feat/geometry is merged; see _geometry_tmp.py
    from cad_perception_ros.model._geometry_tmp import (  # noqa: F401
        svd_orthogonalize, trilinear_voxelize, weighted_procrustes)

__all__ = ["weighted_procrustes", "svd_orthogonalize", "trilinear_voxelize"]
