"""A structured-light / stereo depth sensor, simulated from a rendered ground-truth depth map.

Pure function of (depth, image, rng, config), so no data set is re-rendered: the evaluation
applies it to each view's ground-truth depth with a seed per view (reproducible figures), and a
training loader can apply it on the fly. What it models, as active stereo cameras (RealSense D4xx,
OAK-D) and structured light (Kinect v1) behave:

- quantisation in disparity: 1/z snapped to steps of ``disparity_step`` (1/m), so the depth step
  grows with z^2 (about disparity_step z^2);
- Gaussian noise of sigma_z = noise_k z^2;
- holes (0) at depth edges (a jump above ``edge_jump_m`` to a neighbour, widened by
  ``edge_width_px``: occlusion shadows and flying pixels), on dark pixels (too little texture or
  IR return) and saturated ones (specular highlights of shiny parts), a random speckle of
  dropouts, and outside [min_range_m, max_range_m].

Output: (H, W) float32 metres, 0 = hole, the convention of ``geometry.sensor_depth``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SensorDepthConfig:
    """Sensor model parameters (defaults: a D435-like active stereo camera at 640x480)."""

    min_range_m: float = 0.2
    max_range_m: float = 6.0
    disparity_step: float = 0.002  # 1/m: step of 1/z, depth step ~ 0.002 z^2 (8 mm at 2 m)
    noise_k: float = 0.003  # 1/m: sigma_z = k z^2 (1.2 cm at 2 m, 4.8 cm at 4 m)
    edge_jump_m: float = 0.1
    edge_width_px: int = 1
    dark_level: int = 20  # luminance (0..255) below which a pixel is a hole with dark_hole_prob
    dark_hole_prob: float = 0.8
    bright_level: int = 250  # saturated (specular) pixels: holes with bright_hole_prob
    bright_hole_prob: float = 0.8
    speckle_prob: float = 0.01


def simulate_sensor_depth(depth: np.ndarray, image: np.ndarray, rng: np.random.Generator,
                          config: SensorDepthConfig = SensorDepthConfig()) -> np.ndarray:
    """Ground-truth depth (H, W) metres (0 = unknown) + its RGB image (H, W, 3) uint8 -> sensor depth
    (H, W) float32 metres, 0 = hole. ValueError when the shapes disagree."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2 or image.shape[:2] != depth.shape:
        raise ValueError(f"depth (H, W) and image (H, W, 3) must agree, got {depth.shape} and {image.shape}")
    c = config
    valid = np.isfinite(depth) & (depth > 0)
    z = np.where(valid, depth, 1.0)
    z = z + rng.standard_normal(z.shape) * c.noise_k * z ** 2
    z = np.clip(z, 1e-3, None)
    if c.disparity_step > 0:
        disparity = np.maximum(np.round(1.0 / z / c.disparity_step), 1.0) * c.disparity_step
        z = 1.0 / disparity
    holes = ~valid | (z < c.min_range_m) | (z > c.max_range_m)
    holes |= _edges(np.where(valid, depth, 0.0), c.edge_jump_m, c.edge_width_px)
    luminance = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # (H, W)
    draw = rng.random(depth.shape)
    holes |= (luminance < c.dark_level) & (draw < c.dark_hole_prob)
    holes |= (luminance > c.bright_level) & (draw < c.bright_hole_prob)
    holes |= rng.random(depth.shape) < c.speckle_prob
    return np.where(holes, 0.0, z).astype(np.float32)


def _edges(depth: np.ndarray, jump_m: float, width_px: int) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour more than jump_m away in depth, dilated width_px times."""
    edge = np.zeros(depth.shape, dtype=bool)
    dy = np.abs(np.diff(depth, axis=0)) > jump_m
    dx = np.abs(np.diff(depth, axis=1)) > jump_m
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    for _ in range(max(width_px - 1, 0)):
        grown = edge.copy()
        grown[1:] |= edge[:-1]
        grown[:-1] |= edge[1:]
        grown[:, 1:] |= edge[:, :-1]
        grown[:, :-1] |= edge[:, 1:]
        edge = grown
    return edge
