"""The debug overlay: projected CAD boxes (wireframes), 2D boxes and labels on the input image.

Uses ``cad_perception_ros.runtime.overlay.draw_overlay`` when the runtime provides it, else
the minimal drawing below (the only drawing code of the ROS layer). ROS-free.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from cad_perception_ros.types import CadPrediction

_CORNERS = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])  # (8, 3)
_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]  # 12 edges
_PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (67, 99, 216), (245, 130, 48),
            (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60))


def draw_overlay(image_rgb: np.ndarray, K: np.ndarray, predictions: Sequence[CadPrediction],
                 extents: Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB + K (3, 3) + predictions -> (H, W, 3) uint8 RGB with the overlay.

    extents: canonical CAD extent (3,) per prediction (unit cube when None)."""
    try:
        from cad_perception_ros.runtime.overlay import draw_overlay as runtime_overlay
    except ImportError:  # the runtime is optional for the ROS layer
        runtime_overlay = None
    if runtime_overlay is not None:
        return np.asarray(runtime_overlay(image_rgb, predictions, K), dtype=np.uint8)
    canvas = Image.fromarray(np.ascontiguousarray(image_rgb, dtype=np.uint8))
    draw = ImageDraw.Draw(canvas)
    K = np.asarray(K, dtype=np.float64)
    for i, p in enumerate(predictions):
        colour = _PALETTE[int(p.class_id) % len(_PALETTE)]
        extent = np.asarray(extents[i] if extents is not None else (1.0, 1.0, 1.0))
        cam = p.alignment.transform_points(_CORNERS * extent)  # (8, 3) optical frame
        if (cam[:, 2] > 1e-3).all():
            uv = cam[:, :2] / cam[:, 2:3] * np.diag(K)[:2] + K[:2, 2]  # (8, 2) pixels
            for a, b in _EDGES:
                draw.line([tuple(uv[a]), tuple(uv[b])], fill=colour, width=1)
        x0, y0, x1, y1 = (float(v) for v in np.asarray(p.box_xyxy).reshape(4))
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=1)
        draw.text((x0 + 2, max(0.0, y0 - 11)), f"{p.class_name} {p.score:.2f}", fill=colour)
    return np.asarray(canvas, dtype=np.uint8)
