"""Axis-aligned solid primitives (box, elliptic prism, elliptic tube): meshes and exact occupancy.

A procedural CAD model is a union of overlapping primitives. Each primitive is described by its
axis-aligned bounding box (``center`` (3,), ``size`` (3,)) plus, for prisms and tubes, the axis of
extrusion (0 = x, 1 = y, 2 = z) and, for tubes, the wall thickness. Prisms and tubes are regular
``SECTIONS``-gons inscribed in the ellipse that fills the bbox cross-section, so the mesh touches
its bbox and the analytic inside test below is exact for the mesh (not for an ideal ellipse).

Frames: any right-handed frame; the procedural generator uses the canonical CAD frame (+y up,
+z front). For an extrusion axis ``a`` the cross-section axes are ``u = (a+1) % 3, v = (a+2) % 3``
(a cyclic permutation, so triangle winding stays outward).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import trimesh

SECTIONS = 16  # polygon sides of prisms and tubes; a multiple of 4 so the polygon touches its bbox
KINDS = ("box", "prism", "tube")

_BOX_CORNERS = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
# Outward-wound triangles of the unit box above (corner index = 4x + 2y + z).
_BOX_FACES = np.array([
    [0, 1, 3], [0, 3, 2],  # -x
    [4, 6, 7], [4, 7, 5],  # +x
    [0, 4, 5], [0, 5, 1],  # -y
    [2, 3, 7], [2, 7, 6],  # +y
    [0, 2, 6], [0, 6, 4],  # -z
    [1, 5, 7], [1, 7, 3],  # +z
])
_ANGLES = 2.0 * np.pi * np.arange(SECTIONS) / SECTIONS  # polygon vertex angles
_EDGE_NORMALS = np.stack([np.cos(_ANGLES + np.pi / SECTIONS), np.sin(_ANGLES + np.pi / SECTIONS)], 1)  # (S, 2)
_APOTHEM = float(np.cos(np.pi / SECTIONS))  # distance of each edge from the centre of the unit polygon


class Primitive(NamedTuple):
    """One solid part. center, size: (3,) bbox; axis: extrusion axis (prism, tube); wall: tube thickness."""

    kind: str
    center: np.ndarray
    size: np.ndarray
    axis: int = 1
    wall: float = 0.0

    def transformed(self, offset: np.ndarray, scale: float) -> "Primitive":
        """The primitive after x -> (x + offset) * scale (uniform scale keeps the shape exact)."""
        return self._replace(center=(np.asarray(self.center) + offset) * scale,
                             size=np.asarray(self.size) * scale, wall=self.wall * scale)


def make_primitive(kind: str, center: Sequence[float], size: Sequence[float], axis: int = 1,
                   wall: float = 0.0) -> Primitive:
    """Validated constructor. Raises ValueError on an unknown kind, bad shapes or a non-positive size."""
    center_arr = np.asarray(center, dtype=np.float64)
    size_arr = np.asarray(size, dtype=np.float64)
    if kind not in KINDS:
        raise ValueError(f"unknown primitive kind {kind!r}; expected one of {KINDS}")
    if center_arr.shape != (3,) or size_arr.shape != (3,):
        raise ValueError(f"primitive center and size must have shape (3,), got {center_arr.shape}, {size_arr.shape}")
    if np.any(size_arr <= 0):
        raise ValueError(f"primitive size must be positive, got {size_arr.tolist()}")
    if axis not in (0, 1, 2):
        raise ValueError(f"primitive axis must be 0, 1 or 2, got {axis}")
    if kind == "tube":
        u, v = (axis + 1) % 3, (axis + 2) % 3
        if not 0 < wall < 0.5 * min(size_arr[u], size_arr[v]):
            raise ValueError(f"tube wall {wall} must be in (0, half the smaller cross-section)")
    return Primitive(kind, center_arr, size_arr, axis, float(wall))


def _to_global(local: np.ndarray, axis: int) -> np.ndarray:
    """Local (u, v, w) coordinates (N, 3) -> global xyz with w along `axis` (cyclic permutation)."""
    out = np.empty_like(local)
    out[:, (axis + 1) % 3] = local[:, 0]
    out[:, (axis + 2) % 3] = local[:, 1]
    out[:, axis] = local[:, 2]
    return out


def _ring_faces(a: int, b: int, n: int, flip: bool) -> np.ndarray:
    """Quads between rings starting at vertex a and b (n each) as (2n, 3) triangles."""
    i = np.arange(n)
    j = (i + 1) % n
    tris = np.concatenate([np.stack([a + i, a + j, b + j], 1), np.stack([a + i, b + j, b + i], 1)])
    return tris[:, ::-1] if flip else tris


def _prism_mesh(p: Primitive) -> tuple[np.ndarray, np.ndarray]:
    u, v, a, n = (p.axis + 1) % 3, (p.axis + 2) % 3, p.axis, SECTIONS
    ru, rv, h = 0.5 * p.size[u], 0.5 * p.size[v], 0.5 * p.size[a]
    ring = np.stack([ru * np.cos(_ANGLES), rv * np.sin(_ANGLES)], 1)  # (S, 2)
    if p.kind == "prism":
        local = np.concatenate([np.c_[ring, np.full(n, -h)], np.c_[ring, np.full(n, h)], [[0, 0, -h], [0, 0, h]]])
        i = np.arange(n)
        j = (i + 1) % n
        caps = np.concatenate([np.stack([np.full(n, 2 * n), j, i], 1), np.stack([np.full(n, 2 * n + 1), n + i, n + j], 1)])
        faces = np.concatenate([_ring_faces(0, n, n, False), caps])
    else:
        inner = np.stack([(ru - p.wall) * np.cos(_ANGLES), (rv - p.wall) * np.sin(_ANGLES)], 1)
        local = np.concatenate([np.c_[ring, np.full(n, -h)], np.c_[ring, np.full(n, h)],
                                np.c_[inner, np.full(n, -h)], np.c_[inner, np.full(n, h)]])
        faces = np.concatenate([_ring_faces(0, n, n, False), _ring_faces(2 * n, 3 * n, n, True),
                                _ring_faces(n, 3 * n, n, False), _ring_faces(0, 2 * n, n, True)])
    return _to_global(local, a) + p.center, faces


def primitive_mesh(p: Primitive) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float64, faces (F, 3) int64) of one primitive, outward winding."""
    if p.kind == "box":
        return _BOX_CORNERS * p.size + p.center, _BOX_FACES.copy()
    return _prism_mesh(p)


def union_mesh(parts: Sequence[Primitive]) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Concatenate the primitive meshes. Returns (mesh, owner (F,) primitive index of each face)."""
    verts, faces, owner, offset = [], [], [], 0
    for k, p in enumerate(parts):
        v, f = primitive_mesh(p)
        verts.append(v)
        faces.append(f + offset)
        owner.append(np.full(len(f), k))
        offset += len(v)
    mesh = trimesh.Trimesh(np.concatenate(verts), np.concatenate(faces), process=False)
    return mesh, np.concatenate(owner)


def _inside_polygon(du: np.ndarray, dv: np.ndarray, ru: float, rv: float, margin: float) -> np.ndarray:
    """Points (N,) offsets inside the SECTIONS-gon inscribed in the ellipse (ru, rv); margin shrinks it."""
    q = np.stack([du / ru, dv / rv], 1)  # (N, 2) in the unit-polygon frame
    return np.all(q @ _EDGE_NORMALS.T <= _APOTHEM - margin / max(min(ru, rv), 1e-12), axis=1)


def primitive_contains(p: Primitive, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Exact inside test of points (N, 3) against one primitive -> (N,) bool.

    margin > 0 tests against the primitive shrunk by about `margin` (strict interior), margin < 0 grows it.
    """
    d = points - p.center  # (N, 3)
    half = 0.5 * p.size - margin
    in_box = np.all(np.abs(d) <= half, axis=1)
    if p.kind == "box" or not in_box.any():
        return in_box
    u, v = (p.axis + 1) % 3, (p.axis + 2) % 3
    idx = np.flatnonzero(in_box)
    ru, rv = 0.5 * p.size[u], 0.5 * p.size[v]
    ok = _inside_polygon(d[idx, u], d[idx, v], ru, rv, margin)
    if p.kind == "tube":
        ok &= ~_inside_polygon(d[idx, u], d[idx, v], ru - p.wall, rv - p.wall, -margin)
    in_box[idx] = ok
    return in_box


def sample_union_surface(parts: Sequence[Primitive], count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` points (count, 3) float32 on the outer surface of the union of `parts`.

    Samples the primitive surfaces by area and drops samples strictly inside another primitive
    (faces hidden inside the union), oversampling until `count` remain.
    """
    mesh, owner = union_mesh(parts)
    areas = mesh.area_faces
    tris = mesh.triangles  # (F, 3, 3)
    kept: list[np.ndarray] = []
    total = 0
    for _ in range(20):
        n = 2 * count
        face = rng.choice(len(areas), size=n, p=areas / areas.sum())
        r = rng.random((n, 2))
        flip = r.sum(1) > 1
        r[flip] = 1 - r[flip]
        pts = tris[face, 0] + r[:, :1] * (tris[face, 1] - tris[face, 0]) + r[:, 1:] * (tris[face, 2] - tris[face, 0])
        hidden = np.zeros(n, dtype=bool)
        for k, p in enumerate(parts):
            mine = owner[face] == k
            hidden |= ~mine & primitive_contains(p, pts, margin=1e-5)
        kept.append(pts[~hidden])
        total += int((~hidden).sum())
        if total >= count:
            break
    out = np.concatenate(kept)[:count]
    if len(out) < count:  # pathological (everything hidden): fall back to raw samples
        out = np.resize(out if len(out) else pts, (count, 3))
    return out.astype(np.float32)


def _cell_range(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Indices [i0, i1) of the grid cells of [-0.5, 0.5] whose open interval overlaps [lo, hi]."""
    i0 = int(np.floor((lo + 0.5) * size + 1e-9))
    i1 = int(np.ceil((hi + 0.5) * size - 1e-9))
    return max(i0, 0), min(max(i1, i0 + 1), size)


def union_cells(parts: Sequence[Primitive], size: int = 32, sub: int = 4) -> np.ndarray:
    """(size, size, size) bool: cells of the canonical cube [-0.5, 0.5]^3 that the union overlaps.

    Boxes: exact interval overlap. Prisms and tubes: the cells of their bbox tested on a
    sub x sub x sub lattice inside each cell (catches parts thicker than 1/sub of a cell).
    """
    grid = np.zeros((size, size, size), dtype=bool)
    for p in parts:
        lo, hi = p.center - p.size / 2, p.center + p.size / 2
        (x0, x1), (y0, y1), (z0, z1) = (_cell_range(lo[a], hi[a], size) for a in range(3))
        if p.kind == "box":
            grid[x0:x1, y0:y1, z0:z1] = True
            continue
        offs = (np.arange(sub) + 0.5) / sub
        axes = [(-0.5 + (np.arange(a0, a1)[:, None] + offs[None]) / size).reshape(-1) for a0, a1 in ((x0, x1), (y0, y1), (z0, z1))]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)  # (nx*sub * ny*sub * nz*sub, 3)
        inside = primitive_contains(p, pts).reshape(x1 - x0, sub, y1 - y0, sub, z1 - z0, sub)
        grid[x0:x1, y0:y1, z0:z1] |= inside.any(axis=(1, 3, 5))
    return grid
