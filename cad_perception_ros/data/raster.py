"""A pure-numpy z-buffer rasteriser of triangle soups, the pybullet-free render backend.

Frames: triangles come in the camera's optical frame (x right, y down, z forward, metres);
pixel (row r, col c) samples the ray through its centre (u, v) = (c + 0.5, r + 0.5) of K, the
project's convention (types.py). Depth is z along the optical axis, interpolated perspective-
correctly (1/z is linear in the image plane). Triangles are clipped at the near plane, so walls
that surround the camera render correctly.
"""
from __future__ import annotations

import numpy as np


def box_triangles(half: tuple[float, float, float], center: tuple[float, float, float]) -> np.ndarray:
    """(12, 3, 3) triangles of an axis-aligned box, wound counter-clockwise seen from outside."""
    h = np.asarray(half, dtype=np.float64)
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    corners = corners * h + np.asarray(center, dtype=np.float64)  # index = 4 (x>0) + 2 (y>0) + (z>0)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = [[corners[a], corners[b], corners[c]] for a, b, c, d in quads] + \
           [[corners[a], corners[c], corners[d]] for a, b, c, d in quads]
    return np.asarray(tris)


def face_normals(triangles: np.ndarray) -> np.ndarray:
    """(T, 3) unit normals of (T, 3, 3) triangles by the right-hand rule (zero for degenerate ones)."""
    n = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def clip_near(triangles: np.ndarray, near: float) -> tuple[np.ndarray, np.ndarray]:
    """Clip (T, 3, 3) optical-frame triangles to z >= near.

    Returns (M, 3, 3) triangles and (M,) the index of the input triangle each came from; a
    triangle with one vertex behind the plane becomes two, with two behind it becomes one.
    """
    z = triangles[..., 2]  # (T, 3)
    front = z >= near
    keep = front.all(axis=1)
    out, source = [triangles[keep]], [np.nonzero(keep)[0]]
    for index in np.nonzero(front.any(axis=1) & ~keep)[0]:
        polygon = []
        tri, inside = triangles[index], front[index]
        for i in range(3):
            a, b = tri[i], tri[(i + 1) % 3]
            if inside[i]:
                polygon.append(a)
            if inside[i] != inside[(i + 1) % 3]:
                s = (near - a[2]) / (b[2] - a[2])
                polygon.append(a + s * (b - a))
        pieces = [[polygon[0], polygon[k], polygon[k + 1]] for k in range(1, len(polygon) - 1)]
        out.append(np.asarray(pieces).reshape(-1, 3, 3))
        source.append(np.full(len(pieces), index))
    return np.concatenate(out), np.concatenate(source)


def facing_camera(triangles: np.ndarray) -> np.ndarray:
    """(T,) bool: optical-frame triangles (T, 3, 3) whose right-hand normal points at the camera."""
    return np.einsum("ti,ti->t", face_normals(triangles), triangles[:, 0]) < 0


def rasterize_view(world_triangles: np.ndarray, camera_to_world: np.ndarray, K: np.ndarray, size: tuple[int, int],
                   near: float, far: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """World-frame triangles (T, 3, 3) seen from camera_to_world (4, 4) of an optical frame, back
    faces culled -> (rotation (3, 3), eye (3,), optical-frame triangles (T, 3, 3), depth (H, W),
    index (H, W)) with depth and index as ``rasterize``'s."""
    camera_to_world = np.asarray(camera_to_world, dtype=np.float64)
    rotation, eye = camera_to_world[:3, :3], camera_to_world[:3, 3]
    in_camera = (world_triangles - eye) @ rotation  # (T, 3, 3) optical frame
    depth, index = rasterize(in_camera, K, size, near, far, cull_back_faces=True)
    return rotation, eye, in_camera, depth, index


def rasterize(triangles: np.ndarray, K: np.ndarray, size: tuple[int, int], near: float = 0.05,
              far: float = 30.0, cull_back_faces: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer (T, 3, 3) optical-frame triangles into a (height, width) = size image.

    Returns depth (H, W) float64 metres (0 where nothing is hit within [near, far]) and the
    index (H, W) int64 of the visible input triangle (-1 where nothing is hit).
    """
    height, width = size
    K = np.asarray(K, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.float64)
    kept = np.nonzero(facing_camera(triangles))[0] if cull_back_faces else np.arange(len(triangles))
    clipped, source = clip_near(triangles[kept], near)
    source = kept[source]
    inv_depth = np.zeros((height, width))  # 1/z of the nearest surface so far; 0 = empty
    index = np.full((height, width), -1, dtype=np.int64)
    z = clipped[..., 2]  # (M, 3)
    u = K[0, 0] * clipped[..., 0] / z + K[0, 2]  # (M, 3) image-plane coordinates
    v = K[1, 1] * clipped[..., 1] / z + K[1, 2]
    area = (u[:, 1] - u[:, 0]) * (v[:, 2] - v[:, 0]) - (u[:, 2] - u[:, 0]) * (v[:, 1] - v[:, 0])
    c0 = np.clip(np.ceil(u.min(axis=1) - 0.5), 0, width).astype(int)
    c1 = np.clip(np.floor(u.max(axis=1) - 0.5) + 1, 0, width).astype(int)
    r0 = np.clip(np.ceil(v.min(axis=1) - 0.5), 0, height).astype(int)
    r1 = np.clip(np.floor(v.max(axis=1) - 0.5) + 1, 0, height).astype(int)
    for m in np.nonzero((np.abs(area) > 1e-12) & (c1 > c0) & (r1 > r0))[0]:
        pu = np.arange(c0[m], c1[m]) + 0.5  # (w,)
        pv = (np.arange(r0[m], r1[m]) + 0.5)[:, None]  # (h, 1)
        # Barycentric weights of vertices 1 and 2 in the image plane; vertex 0 gets the rest.
        w1 = ((pu - u[m, 0]) * (v[m, 2] - v[m, 0]) - (u[m, 2] - u[m, 0]) * (pv - v[m, 0])) / area[m]
        w2 = ((u[m, 1] - u[m, 0]) * (pv - v[m, 0]) - (pu - u[m, 0]) * (v[m, 1] - v[m, 0])) / area[m]
        w0 = 1.0 - w1 - w2
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        inv = w0 / z[m, 0] + w1 / z[m, 1] + w2 / z[m, 2]  # (h, w)
        window = (slice(r0[m], r1[m]), slice(c0[m], c1[m]))
        nearer = inside & (inv > inv_depth[window]) & (inv >= 1.0 / far)
        inv_depth[window][nearer] = inv[nearer]
        index[window][nearer] = source[m]
    depth = np.divide(1.0, inv_depth, out=np.zeros_like(inv_depth), where=inv_depth > 0)
    return depth, index


def barycentric(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(N, 3) weights of points (N, 3) lying in the planes of their triangles (N, 3, 3)."""
    e1, e2 = triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]
    rel = points - triangles[:, 0]
    d11, d12, d22 = (e1 * e1).sum(1), (e1 * e2).sum(1), (e2 * e2).sum(1)
    r1, r2 = (rel * e1).sum(1), (rel * e2).sum(1)
    det = d11 * d22 - d12 * d12
    det = np.where(np.abs(det) > 1e-20, det, 1e-20)
    w1 = (d22 * r1 - d12 * r2) / det
    w2 = (d11 * r2 - d12 * r1) / det
    return np.stack([1.0 - w1 - w2, w1, w2], axis=1)
