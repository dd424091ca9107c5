"""Occupancy grids and surface samples of canonical-frame CAD meshes.

Grid convention: ``grid[i, j, k]`` is True when cell (i, j, k) of the canonical cube [-0.5, 0.5]^3
overlaps the solid (its centre is inside, or the surface crosses it: binvox-style "solid"
voxelisation, so thin boards and panels are never lost). Cell (i, j, k) spans
``[-0.5 + i / G, -0.5 + (i + 1) / G]`` in x (j in y, k in z): axis 0 = x, 1 = y (up), 2 = z (front).
"""
from __future__ import annotations

import numpy as np
import trimesh

from .primitives import Primitive, sample_union_surface, union_cells

PRIMITIVES_KEY = "cad_primitives"  # same key as procedural.PRIMITIVES_KEY (kept here to avoid a cycle)


def cell_centres(size: int = 32) -> np.ndarray:
    """(size**3, 3) float64 cell centres of the canonical cube, in grid (i, j, k) C order."""
    c = -0.5 + (np.arange(size) + 0.5) / size
    return np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)


def _primitives(mesh: trimesh.Trimesh) -> list[Primitive] | None:
    parts = mesh.metadata.get(PRIMITIVES_KEY) if isinstance(mesh.metadata, dict) else None
    return parts if parts else None


def occupancy_grid(mesh: trimesh.Trimesh, size: int = 32) -> np.ndarray:
    """(size, size, size) bool occupancy: cells overlapping the solid.

    Procedural meshes (with primitives in metadata): per-primitive overlap, OR-ed (exact for boxes,
    4^3 sub-samples per cell for prisms and tubes). Other meshes: ``mesh.contains`` on the cell
    centres (ray parity, Embree when installed) OR the cells holding dense surface samples.
    """
    parts = _primitives(mesh)
    if parts is not None:
        return union_cells(parts, size)
    centres = cell_centres(size)
    inside = np.zeros(len(centres), dtype=bool)
    try:
        inside = np.asarray(mesh.contains(centres), dtype=bool)
    except Exception:  # contains() can fail on degenerate input: keep the shell below
        pass
    inside |= _surface_shell(mesh, size)
    return inside.reshape(size, size, size)


def _surface_shell(mesh: trimesh.Trimesh, size: int) -> np.ndarray:
    """(size**3,) bool: cells containing dense surface samples."""
    count = max(20000, int(mesh.area * (4 * size) ** 2))
    pts, _ = trimesh.sample.sample_surface(mesh, min(count, 400000), seed=0)
    idx = np.clip(np.floor((pts + 0.5) * size).astype(int), 0, size - 1)  # (M, 3)
    shell = np.zeros((size, size, size), dtype=bool)
    shell[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return shell.reshape(-1)


def surface_points(mesh: trimesh.Trimesh, count: int = 1024, seed: int = 0) -> np.ndarray:
    """(count, 3) float32 points on the outer surface, deterministic for `seed`."""
    rng = np.random.default_rng(seed)
    parts = _primitives(mesh)
    if parts is not None:
        return sample_union_surface(parts, count, rng)
    pts, _ = trimesh.sample.sample_surface(mesh, count, seed=int(rng.integers(2**31)))
    return np.asarray(pts, dtype=np.float32)


def surface_voxels(grid: np.ndarray) -> np.ndarray:
    """(G, G, G) bool: the cells of an occupancy grid (G, G, G) that touch empty space (an empty
    6-neighbour or the grid's border): the surface voxelisation ROCA's retrieval IoU uses."""
    grid = np.asarray(grid, dtype=bool)
    padded = np.pad(grid, 1, constant_values=False)
    inner = np.ones_like(grid)
    for axis in range(3):
        for shift in (-1, 1):
            inner &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return grid & ~inner
