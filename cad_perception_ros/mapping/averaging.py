"""Robust averages of one object's observations (ROS-free, numpy): rotations that respect the
object's symmetry about its canonical up axis (+y), centres weighted by their viewing rays (a
monocular estimate is far less sure along the ray than across it), weighted median.

Rotations act on column vectors, canonical -> map frame; a k-fold symmetric object looks the same
under R Ry(2 pi j / k), j < k ("inf": any angle about +y).
"""
from __future__ import annotations

import numpy as np

from cad_perception_ros.geometry.rotations import SYMMETRY_ORDERS

ROBUST_ANGLE_DEG = 30.0  # observations further than this from the mean weigh less (Cauchy-like)
ROBUST_DISTANCE_M = 0.2  # likewise for centres (ray-scaled distance, metres)


def rotation_y(angle: float) -> np.ndarray:
    """(3, 3) rotation about +y by `angle` radians (right-handed)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Geodesic angle between rotations (3, 3), degrees."""
    cos = (np.trace(a.T @ b) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def project_to_so3(m: np.ndarray) -> np.ndarray:
    """Closest rotation (Frobenius) to a (3, 3) matrix, det +1."""
    u, _, vh = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vh)) or 1.0
    return u @ np.diag([1.0, 1.0, d]) @ vh


def nearest_equivalent(rotation: np.ndarray, reference: np.ndarray, symmetry: str) -> tuple[np.ndarray, int]:
    """The symmetry equivalent R Ry(2 pi j / k) of `rotation` closest to `reference`, and j.

    "inf" returns the rotation about +y that brings R's heading (canonical x) closest to the
    reference's, with j = 0. Unknown labels raise ValueError.
    """
    if symmetry == "inf":
        x_ref = rotation.T @ reference[:, 0]  # reference's x axis in the observation's canonical frame
        angle = np.arctan2(-x_ref[2], x_ref[0])  # Ry(angle) e_x lies closest to x_ref
        return rotation @ rotation_y(angle), 0
    if symmetry not in SYMMETRY_ORDERS:
        raise ValueError(f"symmetry must be one of none, 2fold, 4fold, inf; got {symmetry!r}")
    order = SYMMETRY_ORDERS[symmetry]
    candidates = [rotation @ rotation_y(2 * np.pi * j / order) for j in range(order)]
    j = int(np.argmin([angle_deg(c, reference) for c in candidates]))
    return candidates[j], j


def average_rotations(rotations: np.ndarray, weights: np.ndarray, symmetry: str,
                      reference: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Robust weighted mean (3, 3) of rotations (N, 3, 3), each first turned to its symmetry
    equivalent nearest the running estimate (starting at `reference`).

    Chordal L2 mean (SVD projection of the weighted sum), reweighted a few times with
    w / (1 + (angle / ROBUST_ANGLE_DEG)^2) so that an observation with the heading wrong (a flip)
    pulls little. For "inf" only the up axis is averaged; the heading stays the reference's.
    """
    rotations = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(rotations) == 0 or len(rotations) != len(weights):
        raise ValueError(f"need one weight per rotation, got {len(rotations)} rotations, {len(weights)} weights")
    estimate = np.asarray(reference, dtype=np.float64)
    for _ in range(max(1, iterations)):
        aligned = np.stack([nearest_equivalent(r, estimate, symmetry)[0] for r in rotations])  # (N, 3, 3)
        residual = np.array([angle_deg(r, estimate) for r in aligned])  # (N,) degrees
        robust = weights / (1.0 + (residual / ROBUST_ANGLE_DEG) ** 2)  # (N,)
        if symmetry == "inf":
            estimate = _with_up(estimate, (robust[:, None] * aligned[:, :, 1]).sum(0))
        else:
            estimate = project_to_so3((robust[:, None, None] * aligned).sum(0))
    return estimate


def medoid_rotation(rotations: np.ndarray, weights: np.ndarray, symmetry: str) -> np.ndarray:
    """The observation (3, 3) of rotations (N, 3, 3) with the least weighted robust disagreement
    sum_j w_j rho(angle_ij) with the others (symmetry-aware; rho(a) = a^2 / (a^2 + ROBUST_ANGLE_DEG^2)):
    the start of average_rotations that a minority of wrong headings cannot take over. Of two
    disagreeing observations the higher weighted one wins."""
    rotations = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    cost = np.zeros(len(rotations))
    for i, r in enumerate(rotations):
        for j, other in enumerate(rotations):
            if i != j:
                a = angle_deg(nearest_equivalent(other, r, symmetry)[0], r)
                cost[i] += weights[j] * a ** 2 / (a ** 2 + ROBUST_ANGLE_DEG ** 2)
    return rotations[int(np.argmin(cost))]


def _with_up(reference: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Rotation with canonical +y along `up` (3,) and canonical x as close as possible to the reference's."""
    y = up / max(np.linalg.norm(up), 1e-12)
    x = reference[:, 0] - (reference[:, 0] @ y) * y
    if np.linalg.norm(x) < 1e-6:  # reference x parallel to the new up: take its z instead
        x = np.cross(y, reference[:, 2])
    x /= np.linalg.norm(x)
    return np.stack([x, y, np.cross(x, y)], axis=1)


def ray_information(rays: np.ndarray, ratio: float) -> np.ndarray:
    """(N, 3, 3) information matrices I - (1 - 1 / ratio^2) r r^T of centres whose standard
    deviation along their unit viewing ray r (N, 3) is `ratio` times the one across it."""
    rays = np.asarray(rays, dtype=np.float64).reshape(-1, 3)
    rays = rays / np.maximum(np.linalg.norm(rays, axis=1, keepdims=True), 1e-12)
    return np.eye(3)[None] - (1.0 - 1.0 / ratio ** 2) * rays[:, :, None] * rays[:, None, :]


def ray_scaled_distance(a: np.ndarray, b: np.ndarray, ray: np.ndarray, ratio: float) -> float:
    """|a - b| with the component along the unit ray (3,) divided by `ratio` (metres across-equivalent)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    r = np.asarray(ray, np.float64) / max(np.linalg.norm(ray), 1e-12)
    along = d @ r
    return float(np.sqrt(max(d @ d - along ** 2, 0.0) + (along / ratio) ** 2))


def ray_weighted_mean(points: np.ndarray, rays: np.ndarray, weights: np.ndarray, ratio: float,
                      iterations: int = 5) -> np.ndarray:
    """Robust information-weighted mean (3,) of centres (N, 3) seen along rays (N, 3).

    Least squares with each centre's information matrix (ray_information), reweighted by
    w / (1 + (d / ROBUST_DISTANCE_M)^2) on the Mahalanobis-like residual d: two views from different
    directions pin the centre where their rays cross, and a far outlier pulls little.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    info = ray_information(rays, ratio)  # (N, 3, 3)
    robust = weights.copy()
    estimate = points[int(np.argmax(weights))]
    for _ in range(max(1, iterations)):
        a = (robust[:, None, None] * info).sum(0)  # (3, 3)
        b = (robust[:, None, None] * info @ points[:, :, None]).sum(0)[:, 0]  # (3,)
        estimate = np.linalg.solve(a, b)
        residual = points - estimate  # (N, 3)
        d = np.sqrt(np.einsum("ni,nij,nj->n", residual, info, residual))  # (N,) metres
        robust = weights / (1.0 + (d / ROBUST_DISTANCE_M) ** 2)
    return estimate


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """Weighted median of values (N,): the smallest value where the cumulative weight reaches half."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    order = np.argsort(values)
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64).reshape(-1)[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])
