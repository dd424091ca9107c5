"""Pinhole camera helpers in the optical frame (x right, y down, z forward, metres).

Pixel convention: the centre of pixel (row r, col c) is (u, v) = (c + 0.5, r + 0.5), so image
coordinates scale linearly with resizing. K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]] (s = skew).
The torch functions are batched and avoid matrix inversion (ONNX friendly); `validate_intrinsics`,
`resize_factors`, `scale_intrinsics` and `backproject` also take numpy arrays (the pipeline, the
ROS conversions and the renderers use them so). This module is the one home of pinhole geometry.
"""
from __future__ import annotations

import numpy as np
import torch

from cad_perception_ros.geometry._checks import check_last, check_shape


def _check_k(k: torch.Tensor) -> None:
    if not isinstance(k, torch.Tensor) or k.dim() < 2 or k.shape[-2:] != (3, 3):
        shape = tuple(k.shape) if isinstance(k, torch.Tensor) else type(k).__name__
        raise ValueError(f"K must have shape (..., 3, 3), got {shape}")


def validate_intrinsics(K) -> np.ndarray:
    """Check a (3, 3) pinhole K: finite, fx > 0, fy > 0, upper triangular with last row (0, 0, 1).
    Returns K as float64; ValueError naming the offending property otherwise. The one rule for K."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be (3, 3), got shape {K.shape}")
    if not np.isfinite(K).all():
        raise ValueError("K contains NaN or inf")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"K focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
    if not np.allclose(K[2], (0.0, 0.0, 1.0)) or K[1, 0] != 0:
        raise ValueError(f"K must be upper triangular with last row (0, 0, 1), got {K.tolist()}")
    return K


# Plausible pinhole K for an image W x H: fx, fy within [MIN_FOCAL, MAX_FOCAL] x max(W, H) (a 170-degree
# fisheye to a 10x telephoto), the principal point within [-MAX_PP_OUTSIDE, 1 + MAX_PP_OUTSIDE] x size.
MIN_FOCAL, MAX_FOCAL, MAX_PP_OUTSIDE = 0.05, 50.0, 0.5


def check_plausible_intrinsics(K: np.ndarray, image_size: tuple[int, int]) -> None:
    """ValueError with the numbers when K (3, 3) cannot belong to an image of image_size (H, W):
    a focal length or principal point outside the bounds above (fx = 1e12 would put every
    object 1e9 m away; cx = 5000 on a 640-wide image describes another camera)."""
    height, width = image_size
    size = max(height, width)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    for name, f in (("fx", fx), ("fy", fy)):
        if not MIN_FOCAL * size <= f <= MAX_FOCAL * size:
            raise ValueError(f"{name}={f:g} is implausible for a {width}x{height} image "
                             f"(expected {MIN_FOCAL * size:g} to {MAX_FOCAL * size:g} pixels)")
    for name, c, extent in (("cx", cx, width), ("cy", cy, height)):
        if not -MAX_PP_OUTSIDE * extent <= c <= (1 + MAX_PP_OUTSIDE) * extent:
            raise ValueError(f"{name}={c:g} is implausible for a {width}x{height} image "
                             f"(expected {-MAX_PP_OUTSIDE * extent:g} to {(1 + MAX_PP_OUTSIDE) * extent:g})")


def binned_roi_intrinsics(K: np.ndarray, *, binning: tuple[int, int] = (0, 0),
                          roi_offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """K (3, 3) of the full-resolution sensor -> K of the image a camera sends with REP 104's ROI
    (x_offset, y_offset, in full-resolution pixels) and binning (binning_x, binning_y; 0 or 1 =
    none): the principal point moves by the ROI offset, then every row of K but the last is
    divided by the binning."""
    K = np.array(K, dtype=np.float64)
    K[0, 2] -= roi_offset[0]
    K[1, 2] -= roi_offset[1]
    bx, by = (max(int(b), 1) for b in binning)
    K[0] /= bx
    K[1] /= by
    return K


def resize_factors(from_size: tuple[int, int], to_size: tuple[int, int]) -> tuple[float, float]:
    """(sx, sy) = (W' / W, H' / H) of resizing an image of from_size (H, W) to to_size (H', W')."""
    (height, width), (new_h, new_w) = from_size, to_size
    if min(height, width, new_h, new_w) < 1:
        raise ValueError(f"image sizes must be positive, got {from_size} -> {to_size}")
    return new_w / width, new_h / height


def canonical_depth_scale(k: torch.Tensor, canonical_focal: float, width: int) -> torch.Tensor:
    """K (B, 3, 3) of an image `width` pixels wide -> (B, 1, 1, 1) fx / (canonical_focal x width).

    An object of metric size S at depth Z spans f S / Z pixels, so an image fixes Z / f only: the
    depth a camera of focal canonical_focal x width would see, times this factor, is the metric depth."""
    check_shape("K", k, (None, 3, 3))
    return (k[:, 0, 0] / (canonical_focal * width)).reshape(-1, 1, 1, 1)  # (B, 1, 1, 1)


def pixel_grid(height: int, width: int, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Pixel centres (H, W, 2) as (u, v) = (col + 0.5, row + 0.5)."""
    if height < 1 or width < 1:
        raise ValueError(f"pixel_grid needs a positive size, got {height}x{width}")
    v = torch.arange(height, dtype=dtype, device=device) + 0.5  # (H,)
    u = torch.arange(width, dtype=dtype, device=device) + 0.5  # (W,)
    vv, uu = torch.meshgrid(v, u, indexing="ij")  # (H, W) each
    return torch.stack([uu, vv], dim=-1)  # (H, W, 2)


def backproject(depth, k):
    """Depth along the optical axis (B, H, W) metres + K (B, 3, 3) -> camera points (B, H, W, 3).

    Each pixel centre (u, v) becomes z K^-1 [u, v, 1]; pixels with depth 0 map to the origin.
    numpy in, numpy out: depth (H, W) + K (3, 3) -> (H, W, 3) float64.
    """
    if isinstance(depth, np.ndarray):
        points = backproject(torch.from_numpy(np.asarray(depth, dtype=np.float64))[None],
                             torch.from_numpy(np.asarray(k, dtype=np.float64))[None])
        return points[0].numpy()  # (H, W, 3)
    check_shape("depth", depth, (None, None, None))
    batch, height, width = depth.shape
    check_shape("K", k, (batch, 3, 3))
    k = k.to(depth.dtype)
    uv = pixel_grid(height, width, depth.dtype, depth.device)  # (H, W, 2)
    fx, skew, cx = k[:, 0, 0], k[:, 0, 1], k[:, 0, 2]  # (B,)
    fy, cy = k[:, 1, 1], k[:, 1, 2]  # (B,)
    y = (uv[..., 1] - cy.view(-1, 1, 1)) / fy.view(-1, 1, 1)  # (B, H, W)
    x = (uv[..., 0] - cx.view(-1, 1, 1) - skew.view(-1, 1, 1) * y) / fx.view(-1, 1, 1)  # (B, H, W)
    return torch.stack([x * depth, y * depth, depth], dim=-1)  # (B, H, W, 3)


def pixel_rays(uv: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates uv (N, 2) + K (3, 3) or (N, 3, 3) -> rays (N, 3) = K^-1 [u, v, 1] (z = 1)."""
    check_last("uv", uv, 2)
    _check_k(k)
    k = k.to(uv.dtype).expand(uv.shape[0], 3, 3) if k.dim() == 2 else k.to(uv.dtype)
    y = (uv[:, 1] - k[:, 1, 2]) / k[:, 1, 1]
    x = (uv[:, 0] - k[:, 0, 2] - k[:, 0, 1] * y) / k[:, 0, 0]
    return torch.stack([x, y, torch.ones_like(x)], 1)


def project(points: torch.Tensor, k: torch.Tensor, min_depth: float = 1e-6) -> torch.Tensor:
    """Camera points (..., 3) -> pixel coordinates (..., 2) as (u, v).

    K is (3, 3) for all points, or (B, 3, 3) with points (B, ..., 3). Depths are clamped to
    `min_depth` so points behind the camera give finite (meaningless) pixels.
    numpy in, numpy out: points (..., 3) + K (3, 3) -> (..., 2) float64 (no torch overhead per call).
    """
    if isinstance(points, np.ndarray):
        homog = np.asarray(points, dtype=np.float64) @ np.asarray(k, dtype=np.float64).T
        return homog[..., :2] / np.maximum(homog[..., 2:], min_depth)
    check_last("points", points, 3)
    _check_k(k)
    k = k.to(points.dtype)
    if k.dim() == 2:
        homog = points @ k.T  # (..., 3)
    else:
        if k.dim() != 3 or points.dim() < 2 or points.shape[0] != k.shape[0]:
            raise ValueError(f"with K of shape {tuple(k.shape)} points must be (B, ..., 3) "
                             f"with B = {k.shape[0]}, got {tuple(points.shape)}")
        flat = points.reshape(points.shape[0], -1, 3)  # (B, P, 3)
        homog = (flat @ k.transpose(1, 2)).reshape(points.shape)  # (B, ..., 3)
    return homog[..., :2] / homog[..., 2:].clamp(min=min_depth)  # (..., 2)


def scale_intrinsics(k, sx: float | torch.Tensor, sy: float | torch.Tensor):
    """Intrinsics (..., 3, 3) after resizing the image by sx = W'/W, sy = H'/H.

    With pixel centres at +0.5 the continuous image coordinates scale exactly: u' = sx u, v' = sy v.
    numpy in (a (3, 3) K), float64 numpy out.
    """
    if isinstance(k, np.ndarray):
        if k.shape != (3, 3):
            raise ValueError(f"K must have shape (3, 3), got {k.shape}")
        return scale_intrinsics(torch.from_numpy(k.astype(np.float64)), float(sx), float(sy)).numpy()
    _check_k(k)
    sx = torch.as_tensor(sx, dtype=k.dtype, device=k.device)
    sy = torch.as_tensor(sy, dtype=k.dtype, device=k.device)
    one = torch.ones((), dtype=k.dtype, device=k.device)
    rows = torch.stack(torch.broadcast_tensors(sx, sy, one), dim=-1)  # (..., 3) row factors
    return k * rows.unsqueeze(-1)  # row 0 * sx, row 1 * sy, row 2 unchanged


def crop_intrinsics(k: torch.Tensor, box_xyxy: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """Intrinsics (B, 3, 3) of the crop box_xyxy (B, 4) pixels resized to out_size = (H_out, W_out).

    The crop maps u -> (u - x_min) W_out / (x_max - x_min), v -> (v - y_min) H_out / (y_max - y_min).
    K may be (3, 3) (shared) or (B, 3, 3).
    """
    _check_k(k)
    check_shape("box_xyxy", box_xyxy, (None, 4))
    out_h, out_w = out_size
    if out_h < 1 or out_w < 1:
        raise ValueError(f"out_size must be positive, got {out_size}")
    box = box_xyxy.to(k.dtype)
    k = k.expand(box.shape[0], 3, 3) if k.dim() == 2 else k
    check_shape("K", k, (box.shape[0], 3, 3))
    sx = out_w / (box[:, 2] - box[:, 0]).clamp(min=1e-6)  # (B,)
    sy = out_h / (box[:, 3] - box[:, 1]).clamp(min=1e-6)  # (B,)
    zero, one = torch.zeros_like(sx), torch.ones_like(sx)
    crop = torch.stack([sx, zero, -sx * box[:, 0], zero, sy, -sy * box[:, 1], zero, zero, one],
                       dim=-1).reshape(-1, 3, 3)  # (B, 3, 3) pixel affine
    return crop @ k  # (B, 3, 3)
