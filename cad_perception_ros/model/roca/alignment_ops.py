"""Pure tensor ops of the ROI and alignment heads (no nn.Module state).

Boxes are (x_min, y_min, x_max, y_max) in pixels of the network input image; ROIs are sampled
on an m x m grid of cell centres inside the box. Points are in the camera frame (metres).
All ops keep static shapes and use only ONNX/TensorRT-friendly operators (grid_sample, no SVD).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cad_perception_ros.geometry.rotations import rotation_about_y

SYMMETRY_FOLDS = {"none": 1, "2fold": 2, "4fold": 4, "inf": 12}  # "inf": sampled every 30 deg


def roi_pixel_coords(boxes: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image coordinates of the m x m ROI cell centres.

    boxes: (B, K, 4) -> u, v each (B, K, m, m): u along columns (x), v along rows (y).
    """
    steps = (torch.arange(m, dtype=boxes.dtype, device=boxes.device) + 0.5) / m  # (m,)
    x0, y0, x1, y1 = boxes.unbind(-1)  # each (B, K)
    u = x0[..., None] + (x1 - x0)[..., None] * steps  # (B, K, m)
    v = y0[..., None] + (y1 - y0)[..., None] * steps  # (B, K, m)
    u = u[..., None, :].expand(*u.shape[:-1], m, m)  # (B, K, m, m)
    v = v[..., :, None].expand(*v.shape[:-1], m, m)  # (B, K, m, m)
    return u, v


def roi_crop(maps: torch.Tensor, boxes: torch.Tensor, m: int, image_size: tuple[int, int],
             mode: str = "bilinear") -> torch.Tensor:
    """Crop ROIs from maps covering the image: ROIAlign by one grid_sample call.

    maps: (B, C, h, w) at any stride; boxes: (B, K, 4) input-image pixels;
    image_size: (H, W) of the input image. Returns (B, K, C, m, m).
    """
    b, k = boxes.shape[:2]
    height, width = image_size
    u, v = roi_pixel_coords(boxes, m)  # (B, K, m, m)
    grid = torch.stack([u / width * 2 - 1, v / height * 2 - 1], -1)  # (B, K, m, m, 2)
    grid = grid.reshape(b, k * m, m, 2)
    out = F.grid_sample(maps, grid, mode=mode, padding_mode="zeros", align_corners=False)  # (B,C,K*m,m)
    return out.reshape(b, maps.shape[1], k, m, m).permute(0, 2, 1, 3, 4)


def roi_backproject(depth: torch.Tensor, boxes: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Back-project ROI depths to camera-frame points.

    depth: (B, K, m, m) metres; boxes: (B, K, 4); K: (B, 3, 3) of the input image.
    Returns (B, K, m*m, 3).
    """
    m = depth.shape[-1]
    u, v = roi_pixel_coords(boxes, m)  # (B, K, m, m)
    fx, fy = K[:, 0, 0][:, None, None, None], K[:, 1, 1][:, None, None, None]
    cx, cy = K[:, 0, 2][:, None, None, None], K[:, 1, 2][:, None, None, None]
    pts = torch.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth], -1)  # (B,K,m,m,3)
    return pts.flatten(2, 3)


def masked_max_pool(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """features (N, C, P) >= 0, mask (N, P) in [0, 1] -> (N, C) max over masked pixels."""
    return (features * mask[:, None, :]).amax(-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """values (N, P, D), mask (N, P) -> (N, D) weighted mean (0 where the mask is empty)."""
    w = mask.unsqueeze(-1)
    return (values * w).sum(1) / w.sum(1).clamp_min(1e-6)


def masked_extent(points: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """points (N, P, 3), binary mask (N, P) -> (max, min) each (N, 3) over masked points."""
    big = 1e4 * (1.0 - mask).unsqueeze(-1)  # (N, P, 1)
    hi = (points - big).amax(1)
    lo = (points + big).amin(1)
    empty = (mask.sum(1, keepdim=True) < 0.5).to(points.dtype)  # (N, 1)
    return hi * (1 - empty), lo * (1 - empty)


def select_per_class(values: torch.Tensor, classes: torch.Tensor, dim: int) -> torch.Tensor:
    """values (N, num_classes * dim), classes (N,) int -> (N, dim) of each row's class."""
    n = values.shape[0]
    values = values.view(n, -1, dim)  # (N, C, dim)
    index = classes.long().view(n, 1, 1).expand(n, 1, dim)
    return values.gather(1, index).squeeze(1)


def closest_symmetric_rotation(r_pred: torch.Tensor, r_gt: torch.Tensor,
                               folds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick, for each object, the symmetry-equivalent ground truth closest to the prediction.

    r_pred, r_gt: (N, 3, 3); folds: (N,) int symmetry order about +y (1 = none).
    Returns (R_gt @ S, S), each (N, 3, 3), S a rotation about +y by 2 pi k / folds.
    """
    max_folds = max(int(folds.max().item()) if folds.numel() else 1, 1)
    k = torch.arange(max_folds, device=r_gt.device, dtype=r_gt.dtype)  # (F,)
    angles = 2 * math.pi * k[None, :] / folds.to(r_gt.dtype)[:, None]  # (N, F)
    sym = rotation_about_y(angles, dtype=r_gt.dtype, device=r_gt.device)  # (N, F, 3, 3)
    cands = r_gt[:, None] @ sym  # (N, F, 3, 3)
    err = (cands - r_pred.detach()[:, None]).abs().flatten(2).sum(-1)  # (N, F)
    err = err.masked_fill(k[None, :] >= folds[:, None], float("inf"))
    best = err.argmin(1)  # (N,)
    idx = best.view(-1, 1, 1, 1).expand(-1, 1, 3, 3)
    return cands.gather(1, idx).squeeze(1), sym.gather(1, idx).squeeze(1)
