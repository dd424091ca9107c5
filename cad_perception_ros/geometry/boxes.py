"""Axis-aligned 2D boxes (x_min, y_min, x_max, y_max) in pixels."""
from __future__ import annotations

import numpy as np


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes (A, 4) and (B, 4) xyxy -> (A, B)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # (A, B, 2)
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])  # (A, B, 2)
    inter = np.clip(rb - lt, 0.0, None).prod(axis=-1)  # (A, B)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0.0, None).prod(axis=-1)  # (A,)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0.0, None).prod(axis=-1)  # (B,)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
