"""NOC targets derived from rendered depth and the ground-truth pose (ROCA's default: its renderer
writes no NOC images, ``--render_nocs 0``, and its alignment head inverse-transforms the
back-projected depth points of each object's mask).

For an object with pose x_cam = R diag(s) x_canon + t, a pixel of its mask with depth z has the
camera point p = z K^-1 [u, v, 1] (pixel centres, geometry/camera.py) and the NOC
x_canon = diag(s)^-1 R^T (p - t).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cad_perception_ros.geometry.camera import backproject
from cad_perception_ros.types import Alignment9D


def nocs_from_depth(depth: np.ndarray, K: np.ndarray, instance_map: np.ndarray,
                    alignments: Sequence[Alignment9D]) -> np.ndarray:
    """(H, W, 3) float32 NOCs of depth (H, W) metres (0 = unknown), K (3, 3), instance_map (H, W)
    (index into alignments, -1 background); 0 where no object or no depth."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2 or np.shape(instance_map) != depth.shape:
        raise ValueError(f"depth {depth.shape} and instance_map {np.shape(instance_map)} must be the same (H, W)")
    points = backproject(depth, np.asarray(K, dtype=np.float64))  # (H, W, 3) camera frame
    noc = np.zeros(depth.shape + (3,), dtype=np.float64)
    for index, alignment in enumerate(alignments):
        mask = (instance_map == index) & (depth > 0)  # (H, W)
        if not mask.any():
            continue
        local = (points[mask] - alignment.translation) @ np.asarray(alignment.rotation, np.float64)  # (N, 3)
        noc[mask] = local / np.asarray(alignment.scale, np.float64)
    return noc.astype(np.float32)


def nocs_to_canonical(noc: np.ndarray, instance_map: np.ndarray, source_to_canonical: Sequence) -> np.ndarray:
    """(H, W, 3) float32: stored NOCs (H, W, 3) of source-frame models (a NOC image ROCA's renderer
    wrote in the ShapeNet frame) mapped per object into the database's canonical frame,
    x_canon = A x_src + b. source_to_canonical: per object index a (4, 4) similarity or None."""
    out = np.array(noc, dtype=np.float64)
    for index, matrix in enumerate(source_to_canonical):
        if matrix is None:
            continue
        matrix = np.asarray(matrix, np.float64).reshape(4, 4)
        mask = instance_map == index  # (H, W)
        out[mask] = out[mask] @ matrix[:3, :3].T + matrix[:3, 3]
    return out.astype(np.float32)
