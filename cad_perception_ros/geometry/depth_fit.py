"""Depth fit: each object's retrieved CAD surface fitted to the registered sensor depth in its mask.

With a depth image the visible surface is measured, so the centre need not come from the network's
relief. A trimmed ICP matches every observed point (the sensor's points inside the object's mask;
a partial surface, so observed -> model nearest neighbours) to the CAD's surface samples x scale
and moves the translation and turns the object about its own up axis (canonical +y) only: the
network's tilt and scale stay. Several headings (the network's + ``headings_deg``) are fitted and
the one whose surface best explains the depth wins: a low trimmed residual and few model points in
the free space in front of the measured surface (a back taken for a front puts the front there).

Frames: camera optical frame (x right, y down, z forward, metres); canonical CAD frame of
types.py (the model fits [-0.5, 0.5]^3, up +y). depth (H, W) metres, 0 = hole; K (3, 3).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.spatial import cKDTree

from cad_perception_ros.geometry.camera import pixel_rays, project
from cad_perception_ros.types import Alignment9D, CadPrediction


@dataclass(frozen=True)
class DepthFitConfig:
    """headings_deg: heading hypotheses tried, added to the network's (0 = its own).
    iterations: ICP steps per hypothesis on coarse_points observed points; polish_iterations more
    on the winner with max_points (both evenly subsampled).
    inlier_factor / min_inlier_m: each step solves on the matches within max(factor x their median
    distance, min) (masks bleed onto the background). trim: the fraction of the closest matches
    whose RMS distance scores a fit (the same count for every hypothesis).
    free_space_margin_m / free_space_weight: a model point more than the margin in front of the
    measured surface is in free space; cost = trimmed RMS residual (m) + weight x free-space fraction.
    switch_margin: another heading wins only with a cost below this fraction of the network's.
    max_shift_m: a fit that moves the centre further is refused (the network's pose stays).
    min_points: objects with fewer valid depth pixels in their mask are left alone.
    turn: False fits the translation alone (the network's rotation stays; headings_deg unused)."""

    headings_deg: tuple[float, ...] = (0.0, 90.0, 180.0, 270.0)
    iterations: int = 8
    coarse_points: int = 150
    polish_iterations: int = 20
    max_points: int = 500
    inlier_factor: float = 2.5
    min_inlier_m: float = 0.03
    trim: float = 0.8
    free_space_margin_m: float = 0.05
    free_space_weight: float = 0.1
    switch_margin: float = 0.9
    max_shift_m: float = 0.5
    min_points: int = 30
    turn: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.trim <= 1.0:
            raise ValueError(f"depth_fit.trim must be in (0, 1], got {self.trim}")
        if self.iterations < 1 or self.max_points < 3 or self.min_points < 3:
            raise ValueError("depth_fit.iterations >= 1, max_points >= 3 and min_points >= 3 are required")
        if not self.headings_deg or 0.0 not in self.headings_deg:
            raise ValueError(f"depth_fit.headings_deg must include 0 (the network's heading), got {self.headings_deg}")


def yaw_matrix(angle: float) -> np.ndarray:
    """(3, 3) rotation by `angle` radians about +y (the canonical up)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def observed_points(depth: np.ndarray, mask: np.ndarray, K: np.ndarray, max_points: int) -> np.ndarray:
    """The sensor points (P, 3) camera frame of mask (H, W) bool's valid depth pixels, at most
    max_points of them, evenly spaced in raster order (deterministic)."""
    rows, cols = np.nonzero(mask & (depth > 0))
    if rows.size > max_points:
        keep = np.linspace(0, rows.size - 1, max_points).round().astype(np.int64)
        rows, cols = rows[keep], cols[keep]
    uv = torch.from_numpy(np.stack([cols + 0.5, rows + 0.5], 1).astype(np.float64))  # pixel centres
    rays = pixel_rays(uv, torch.from_numpy(np.asarray(K, dtype=np.float64))).numpy()  # (P, 3), z = 1
    return rays * depth[rows, cols].astype(np.float64)[:, None]


def yaw_step(model: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The yaw Ry and offset d (3,) minimising sum |Ry m_i + d - o_i|^2 over matched pairs
    model (n, 3), observed (n, 3), both in the object frame (rotation about +y only)."""
    mc, oc = model.mean(0), observed.mean(0)
    m, o = model - mc, observed - oc
    a = float((o[:, 0] * m[:, 0] + o[:, 2] * m[:, 2]).sum())
    b = float((o[:, 0] * m[:, 2] - o[:, 2] * m[:, 0]).sum())
    ry = yaw_matrix(np.arctan2(b, a))
    return ry, oc - ry @ mc


def free_space_fraction(surface: np.ndarray, depth: np.ndarray, K: np.ndarray, margin: float) -> float:
    """Fraction of the camera-frame model points surface (M, 3) that project onto a valid depth
    pixel and lie more than `margin` metres in front of it (0 where none projects onto one)."""
    front = surface[:, 2] > 1e-3
    uv = project(surface[front], K)
    cols, rows = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
    inside = (cols >= 0) & (rows >= 0) & (cols < depth.shape[1]) & (rows < depth.shape[0])
    z = surface[front][inside, 2]
    measured = depth[rows[inside], cols[inside]]
    valid = measured > 0
    if not valid.any():
        return 0.0
    return float((z[valid] < measured[valid] - margin).mean())


def _icp(tree: cKDTree, model: np.ndarray, observed: np.ndarray, rotation: np.ndarray,
         translation: np.ndarray, config: DepthFitConfig, iterations: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Trimmed yaw + translation ICP from (rotation, translation) -> (rotation, translation, trimmed RMS m).
    model (M, 3): the CAD samples x scale (object frame, metres); observed (P, 3) camera frame."""
    keep = max(3, int(round(config.trim * len(observed))))
    for _ in range(iterations):
        local = (observed - translation) @ rotation  # (P, 3) object frame: R^T (p - t)
        dist, index = tree.query(local)
        near = dist <= max(config.inlier_factor * float(np.median(dist)), config.min_inlier_m)
        if config.turn:
            ry, d = yaw_step(model[index[near]], local[near])
        else:
            ry, d = np.eye(3), (local[near] - model[index[near]]).mean(0)
        translation = translation + rotation @ d
        rotation = rotation @ ry
    local = (observed - translation) @ rotation
    dist, _ = tree.query(local)
    return rotation, translation, float(np.sqrt(np.mean(np.partition(dist, keep - 1)[:keep] ** 2)))


def fit_alignment(alignment: Alignment9D, samples: np.ndarray, depth: np.ndarray, mask: np.ndarray,
                  K: np.ndarray, config: DepthFitConfig = DepthFitConfig()) -> Alignment9D:
    """One object's alignment fitted to the depth (module docstring); samples (M, 3) the CAD's
    canonical surface samples. Returns the input where the mask has too few valid depth pixels,
    or where the best fit moves the centre more than config.max_shift_m."""
    observed = observed_points(depth, mask, K, config.max_points)
    if len(observed) < config.min_points:
        return alignment
    model = np.asarray(samples, dtype=np.float64) * alignment.scale  # (M, 3) object frame, metres
    tree = cKDTree(model)
    coarse = observed[np.linspace(0, len(observed) - 1, min(config.coarse_points, len(observed))).round().astype(np.int64)]
    costs, starts = [], []
    for heading in config.headings_deg if config.turn else (0.0,):
        start = alignment.rotation @ yaw_matrix(np.deg2rad(heading))
        rot, t, rms = _icp(tree, model, coarse, start, alignment.translation.astype(np.float64), config,
                           config.iterations)
        free = free_space_fraction(model @ rot.T + t, depth, K, config.free_space_margin_m)
        costs.append(rms + config.free_space_weight * free)
        starts.append((rot, t))
    own = config.headings_deg.index(0.0) if config.turn else 0
    best = int(np.argmin(costs))
    best = best if costs[best] < config.switch_margin * costs[own] else own
    rot, t, _ = _icp(tree, model, observed, *starts[best], config, config.polish_iterations)
    if np.linalg.norm(t - alignment.translation) > config.max_shift_m:
        return alignment
    return Alignment9D(rot, t, alignment.scale)


def fit_to_depth(predictions: list[CadPrediction], depth: np.ndarray, K: np.ndarray,
                 samples_of: Callable[[str], np.ndarray | None], config: DepthFitConfig = DepthFitConfig()
                 ) -> list[CadPrediction]:
    """Each prediction with a mask and a retrieved CAD (samples_of(cad_id) -> (M, 3) canonical
    samples, or None where unknown) fitted to depth (H, W) metres, 0 = hole; the rest unchanged."""
    out = []
    for p in predictions:
        samples = samples_of(p.cad_id) if p.cad_id else None
        if samples is None or p.mask is None or p.mask.shape != depth.shape:
            out.append(p)
            continue
        fitted = fit_alignment(p.alignment, samples, depth, p.mask, K, config)
        out.append(p if fitted is p.alignment else dataclasses.replace(p, alignment=fitted))
    return out
