"""Differentiable trilinear splatting of canonical points into a voxel grid (ROCA Sec. 3.4).

Grid layout: out[b, ix, iy, iz] with the first grid axis along canonical x, then y, then z
(the order of trimesh's VoxelGrid.matrix). Cell i spans [-0.5 + i/G, -0.5 + (i+1)/G] and its
centre is -0.5 + (i + 0.5)/G. Only out-of-place ops (floor, clamp, scatter_add) are used, so
the function exports to ONNX (ScatterElements with add reduction, opset >= 16).
"""
from __future__ import annotations

import torch

from cad_perception_ros.geometry._checks import check_shape


def trilinear_voxelize(points: torch.Tensor, weights: torch.Tensor | None = None,
                       grid: int = 32) -> torch.Tensor:
    """Splat points (B, N, 3) in [-0.5, 0.5]^3 (canonical frame) with weights (B, N) -> (B, G, G, G).

    Each point spreads its weight over the 8 surrounding cell centres with trilinear factors, so
    the grid total equals the weight total. Coordinates are clamped to the outermost cell centres
    (a point in the outer half cell or outside the cube lands on the border cells; gradients
    w.r.t. its clamped coordinate are zero there). Differentiable w.r.t. points and weights.
    """
    check_shape("points", points, (None, None, 3))
    batch, n = points.shape[:2]
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    if weights is None:
        weights = points.new_ones(batch, n)
    check_shape("weights", weights, (batch, n))
    f = ((points + 0.5) * grid - 0.5).clamp(0.0, grid - 1.0)  # (B, N, 3) continuous cell index
    i0 = f.detach().floor().clamp(max=grid - 2)  # (B, N, 3) lower corner
    frac = f - i0  # (B, N, 3) in [0, 1]
    i0 = i0.long()
    values, indices = [], []
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                offset = torch.tensor([dx, dy, dz], device=points.device)  # (3,)
                corner = frac * offset + (1 - frac) * (1 - offset)  # (B, N, 3) per-axis factor
                values.append(corner.prod(dim=-1) * weights)  # (B, N)
                idx = i0 + offset  # (B, N, 3)
                indices.append((idx[..., 0] * grid + idx[..., 1]) * grid + idx[..., 2])  # (B, N)
    values_t = torch.cat(values, dim=1).to(points.dtype)  # (B, 8N)
    indices_t = torch.cat(indices, dim=1)  # (B, 8N)
    out = points.new_zeros(batch, grid ** 3).scatter_add(1, indices_t, values_t)  # (B, G^3)
    return out.reshape(batch, grid, grid, grid)
