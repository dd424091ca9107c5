"""Tiny synthetic SceneSamples for the model tests (no renderer).

Each object is a fronto-parallel plane patch: depth is constant over its box, points are
back-projected with K, and NOCs are R^T (X - t) / s, so depth, NOC and the alignment agree.
"""
from __future__ import annotations

import numpy as np

from cad_perception_ros.data.sample import ObjectAnnotation, SceneSample
from cad_perception_ros.model.roca.targets import CadTable
from cad_perception_ros.types import Alignment9D

COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220], [220, 220, 40]], np.uint8)


def rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def make_scene(rng: np.random.Generator, size=(64, 96), n_objects=2, num_classes=3) -> SceneSample:
    h, w = size
    f = 0.9 * w
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    image = (rng.integers(90, 120, (h, w, 3))).astype(np.uint8)
    depth = np.full((h, w), 4.0, np.float32)
    inst = np.full((h, w), -1, np.int32)
    noc = np.zeros((h, w, 3), np.float32)
    objects = []
    for k in range(n_objects):
        cls = int(rng.integers(num_classes))
        scale = rng.uniform(0.4, 0.8, 3)
        z = rng.uniform(1.8, 2.6)
        cx = rng.uniform(0.2, 0.8) * w if n_objects == 1 else (k + 0.5) / n_objects * w
        half = 0.35 * scale.max() * f / z
        x0, x1 = int(max(cx - half, 0)), int(min(cx + half, w))
        y0, y1 = int(max(h / 2 - half, 0)), int(min(h / 2 + half, h))
        rot = rotation_y(rng.uniform(-0.6, 0.6))
        t = np.array([(cx - w / 2) / f * (z + 0.2), 0.0, z + 0.2])
        vv, uu = np.mgrid[y0:y1, x0:x1] + 0.5
        pts = np.stack([(uu - K[0, 2]) / f * z, (vv - K[1, 2]) / f * z, np.full_like(uu, z)], -1)
        depth[y0:y1, x0:x1] = z
        inst[y0:y1, x0:x1] = k
        noc[y0:y1, x0:x1] = ((pts - t) @ rot) / scale
        image[y0:y1, x0:x1] = COLOURS[cls]
        objects.append(ObjectAnnotation(class_id=cls, cad_id=f"cad{cls}_{k % 2}",
                                        alignment=Alignment9D(rot, t, scale),
                                        box_xyxy=np.array([x0, y0, x1, y1], np.float32),
                                        visible_pixels=(x1 - x0) * (y1 - y0)))
    return SceneSample(image=image, depth=depth, K=K, instance_map=inst, noc=noc, objects=objects)


def make_cads(num_classes=3, grid=32) -> CadTable:
    ids, classes, grids = [], [], []
    rng = np.random.default_rng(1)
    for c in range(num_classes):
        for k in range(2):
            g = np.zeros((grid,) * 3, bool)
            lo, hi = rng.integers(4, 12, 3), rng.integers(20, 28, 3)
            g[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
            ids.append(f"cad{c}_{k}")
            classes.append(c)
            grids.append(g)
    return CadTable(ids, np.array(classes), np.stack(grids))
