"""Simulated per-frame alignments: ground truth + noise + a few false positives (seeded, ROS-free).

They measure the object map's own gain apart from any model: the same noisy detector is scored
per image, per scene (scene.py) and fused (map_replay.py). Noise per detected object, camera
optical frame: translation N(0, sigma_xy) across and N(0, depth_sigma_fraction * depth) along the
view ray; rotation by a random axis and an angle N(0, rotation_sigma_deg); with probability
heading_flip a turn about the object's up axis by 90, 180 or 270 degrees (the typical heading
confusion); scale times exp(N(0, log_scale_sigma)) per axis; score U(0.5, 1). An object is
missed with probability miss; false positives per view ~ Poisson(false_positives), a random
class at a random point of the view frustum, score U(0.5, 0.8).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from cad_perception_ros.data.sample import ObjectAnnotation
from cad_perception_ros.mapping.averaging import rotation_y
from cad_perception_ros.types import SCAN2CAD_CLASSES, Alignment9D, CadPrediction


@dataclass(frozen=True)
class SimulatedNoise:
    """Noise of the simulated detector (see the module docstring)."""

    sigma_xy_m: float = 0.05
    depth_sigma_fraction: float = 0.05
    rotation_sigma_deg: float = 8.0
    heading_flip: float = 0.2
    log_scale_sigma: float = 0.12
    miss: float = 0.1
    false_positives: float = 0.5
    min_visible_pixels: int = 400


def simulate_view(objects: Sequence[ObjectAnnotation], K: np.ndarray, image_size: tuple[int, int],
                  rng: np.random.Generator, noise: SimulatedNoise = SimulatedNoise()) -> list[CadPrediction]:
    """Noisy predictions (camera frame) of one view's ground-truth objects plus false positives."""
    out = []
    for obj in objects:
        if obj.visible_pixels < noise.min_visible_pixels or rng.random() < noise.miss:
            continue
        out.append(CadPrediction(class_id=obj.class_id, class_name=SCAN2CAD_CLASSES[obj.class_id],
                                 score=float(rng.uniform(0.5, 1.0)), box_xyxy=np.asarray(obj.box_xyxy, np.float64),
                                 alignment=noisy(obj.alignment, rng, noise), cad_id=obj.cad_id))
    for _ in range(rng.poisson(noise.false_positives)):
        out.append(false_positive(objects, K, image_size, rng))
    return out


def noisy(alignment: Alignment9D, rng: np.random.Generator, noise: SimulatedNoise) -> Alignment9D:
    t = alignment.translation
    ray = t / max(np.linalg.norm(t), 1e-9)  # (3,) unit, optical frame
    across = rng.normal(0.0, noise.sigma_xy_m, 3)
    across -= (across @ ray) * ray
    along = rng.normal(0.0, noise.depth_sigma_fraction * np.linalg.norm(t)) * ray
    axis = rng.normal(size=3)
    turn = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.normal(0.0, noise.rotation_sigma_deg)))
    rotation = turn.as_matrix() @ alignment.rotation
    if rng.random() < noise.heading_flip:
        rotation = rotation @ rotation_y(np.pi / 2 * int(rng.integers(1, 4)))
    scale = alignment.scale * np.exp(rng.normal(0.0, noise.log_scale_sigma, 3))
    return Alignment9D(rotation, t + across + along, scale)


def false_positive(objects: Sequence[ObjectAnnotation], K: np.ndarray, image_size: tuple[int, int],
                   rng: np.random.Generator) -> CadPrediction:
    h, w = image_size
    u, v, depth = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1.0, 5.0)
    centre = np.linalg.solve(K, np.array([u, v, 1.0])) * depth  # (3,) optical frame
    like = objects[int(rng.integers(len(objects)))] if objects else None
    class_id = int(rng.integers(len(SCAN2CAD_CLASSES)))
    rotation = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]]) @ rotation_y(rng.uniform(-np.pi, np.pi))  # upright-ish
    scale = like.alignment.scale if like is not None else np.array([0.6, 0.8, 0.6])
    return CadPrediction(class_id=class_id, class_name=SCAN2CAD_CLASSES[class_id], score=float(rng.uniform(0.5, 0.8)),
                         box_xyxy=np.array([u - 20, v - 20, u + 20, v + 20]), alignment=Alignment9D(rotation, centre, scale),
                         cad_id=like.cad_id if like is not None and like.class_id == class_id else "")
