"""Zoom-in crops: square boxes around detections, resampled from the full-resolution image.

Frames and conventions (``cad_perception_ros.types``): boxes are (x_min, y_min, x_max, y_max) in
pixels of the image they are cut from; the centre of pixel (row r, col c) is (c + 0.5, r + 0.5).
A crop of side S maps image point u to crop point (u - x_min) S / (x_max - x_min), so the crop's
intrinsics are ``geometry.camera.crop_intrinsics(K, box, (S, S))`` and a camera point projects
into the crop through them exactly. Sampling is one ``grid_sample`` call (ONNX / TensorRT friendly).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cad_perception_ros.geometry._checks import check_shape


def square_boxes(boxes: torch.Tensor, enlarge: float = 1.4) -> torch.Tensor:
    """boxes (..., 4) -> square boxes (..., 4) of side enlarge x max(w, h), same centre."""
    if boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (..., 4), got {tuple(boxes.shape)}")
    if enlarge <= 0:
        raise ValueError(f"enlarge must be > 0, got {enlarge}")
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2  # (..., 2)
    side = (boxes[..., 2:] - boxes[..., :2]).amax(-1, keepdim=True).clamp_min(1.0) * enlarge  # (..., 1)
    return torch.cat([centre - side / 2, centre + side / 2], -1)


def jitter_square_boxes(boxes: torch.Tensor, generator: torch.Generator | None = None, *,
                        shift: float = 0.1, enlarge: tuple[float, float] = (1.25, 1.55)) -> torch.Tensor:
    """Training boxes: tight boxes (N, 4) -> square boxes (N, 4) with the centre moved by up to
    shift x side and the side enlarged by a factor drawn in `enlarge` (dynamic zoom-in, GDR-Net)."""
    check_shape("boxes", boxes, (None, 4))
    n = boxes.shape[0]
    u = torch.rand(n, 3, generator=generator, dtype=boxes.dtype)  # (N, 3)
    side = (boxes[:, 2:] - boxes[:, :2]).amax(-1).clamp_min(1.0)  # (N,)
    factor = enlarge[0] + (enlarge[1] - enlarge[0]) * u[:, 0]  # (N,)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + (u[:, 1:] * 2 - 1) * shift * side[:, None]  # (N, 2)
    half = (side * factor / 2)[:, None]  # (N, 1)
    return torch.cat([centre - half, centre + half], -1)


def crop_grid(boxes: torch.Tensor, size: int, image_hw: tuple[int, int]) -> torch.Tensor:
    """grid_sample grid (N, S, S, 2) in [-1, 1] (align_corners=False) for crop pixel centres.

    boxes (N, 4) image pixels; crop pixel (i, j) samples image point
    (x_min + (j + 0.5) w / S, y_min + (i + 0.5) h / S)."""
    check_shape("boxes", boxes, (None, 4))
    height, width = image_hw
    steps = (torch.arange(size, dtype=boxes.dtype, device=boxes.device) + 0.5) / size  # (S,)
    u = boxes[:, 0:1] + (boxes[:, 2:3] - boxes[:, 0:1]) * steps  # (N, S)
    v = boxes[:, 1:2] + (boxes[:, 3:4] - boxes[:, 1:2]) * steps  # (N, S)
    gu = (u / width * 2 - 1)[:, None, :].expand(-1, size, size)  # (N, S, S) along columns
    gv = (v / height * 2 - 1)[:, :, None].expand(-1, size, size)  # (N, S, S) along rows
    return torch.stack([gu, gv], -1)


def crop_maps(maps: torch.Tensor, boxes: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Crops of one image's maps: maps (C, H, W) or (1, C, H, W), boxes (N, 4) -> (N, C, S, S).

    Outside the image the crop is 0. mode "nearest" for labels (instance ids, NOCs, depth)."""
    if maps.dim() == 3:
        maps = maps[None]
    if maps.dim() != 4 or maps.shape[0] != 1:
        raise ValueError(f"maps must be (C, H, W) or (1, C, H, W), got {tuple(maps.shape)}")
    n = boxes.shape[0]
    grid = crop_grid(boxes.to(maps.dtype), size, maps.shape[-2:])  # (N, S, S, 2)
    flat = grid.reshape(1, n * size, size, 2)
    out = F.grid_sample(maps, flat, mode=mode, padding_mode="zeros", align_corners=False)  # (1, C, N*S, S)
    return out.reshape(maps.shape[1], n, size, size).transpose(0, 1)


def crop_rays(k_crop: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised rays (N, 2, S, S): (x/z, y/z) of every crop pixel centre through the crop K (N, 3, 3)."""
    check_shape("K_crop", k_crop, (None, 3, 3))
    steps = torch.arange(size, dtype=k_crop.dtype, device=k_crop.device) + 0.5  # (S,)
    fx, cx = k_crop[:, 0, 0, None], k_crop[:, 0, 2, None]  # (N, 1)
    fy, cy = k_crop[:, 1, 1, None], k_crop[:, 1, 2, None]
    x = ((steps - cx) / fx)[:, None, :].expand(-1, size, size)  # (N, S, S)
    y = ((steps - cy) / fy)[:, :, None].expand(-1, size, size)
    return torch.stack([x, y], 1)
