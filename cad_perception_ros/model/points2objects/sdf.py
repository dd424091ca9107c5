"""Signed distance grids of CAD models in the canonical frame, from occupancy grids.

Grid convention (shared with the CAD database's 32^3 occupancy grids): a grid of G^3 cells covers
the canonical cube [-0.5, 0.5]^3; array index [ix, iy, iz] is the cell whose centre is
((ix, iy, iz) + 0.5) / G - 0.5. Distances are in canonical units (the longest side of a model
is 1); the SDF is positive outside the model, negative inside, and the surface lies on the
boundary between occupied and empty cells.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def occupancy_to_sdf(grids: np.ndarray, out_grid: int | None = None) -> np.ndarray:
    """Signed distance grids (N, G', G', G') float32 from occupancy grids (N, G, G, G) bool.

    The distance is measured between cell centres (exact Euclidean distance transform) and moved
    by half a cell so the zero level lies on the cell boundary. The cube's outside counts as empty
    space. With `out_grid` = G' < G (G' must divide G) the SDF is block-averaged to G'^3.
    """
    grids = np.asarray(grids)
    if grids.ndim != 4 or not (grids.shape[1] == grids.shape[2] == grids.shape[3]):
        raise ValueError(f"occupancy grids must have shape (N, G, G, G), got {grids.shape}")
    size = grids.shape[1]
    out_grid = size if out_grid is None else int(out_grid)
    if out_grid < 1 or size % out_grid:
        raise ValueError(f"SDF grid {out_grid} must divide the occupancy grid {size}")
    cell = 1.0 / size
    out = np.empty((grids.shape[0], out_grid, out_grid, out_grid), dtype=np.float32)
    for n, grid in enumerate(grids.astype(bool)):
        padded = np.pad(grid, 1, constant_values=False)  # the outside of the cube is empty
        if not padded.any():
            raise ValueError(f"occupancy grid {n} is empty: no SDF can be computed")
        outside = ndimage.distance_transform_edt(~padded) * cell  # to the nearest occupied centre
        inside = ndimage.distance_transform_edt(padded) * cell    # to the nearest empty centre
        sdf = np.where(padded, -(inside - 0.5 * cell), outside - 0.5 * cell)[1:-1, 1:-1, 1:-1]
        out[n] = block_average(sdf, size // out_grid)
    return out


def block_average(volume: np.ndarray, factor: int) -> np.ndarray:
    """Average a (G, G, G) volume over factor^3 blocks -> (G/f, G/f, G/f)."""
    if factor == 1:
        return volume
    g = volume.shape[0] // factor
    return volume.reshape(g, factor, g, factor, g, factor).mean(axis=(1, 3, 5))


def cell_centres(grid: int) -> np.ndarray:
    """Canonical coordinates (G, G, G, 3) of the cell centres, indexed [ix, iy, iz]."""
    axis = (np.arange(grid) + 0.5) / grid - 0.5
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)
