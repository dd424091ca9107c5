"""Registered sensor depth: decoding, hole masking and fusion with the network's predicted depth.

A depth image registered to the colour image has the colour image's size and its K: pixel
(row r, col c) holds the z (metres, along the optical axis) of the surface seen at that colour
pixel. Encodings: "16UC1" (integers, metres = value x depth_scale, 0.001 for millimetres) and
"32FC1" (float metres). Holes are 0 in every decoded map: sensor zeros, NaN, inf and depths
outside [min_range, max_range]. Fusion works per object on the pixels of one sampling grid:
the sensor where it is valid, the prediction elsewhere.
"""
from __future__ import annotations

import numpy as np
import torch

DEPTH_ENCODINGS = ("16UC1", "32FC1")
DEFAULT_DEPTH_SCALE = 0.001  # metres per 16UC1 unit (millimetres)
DEFAULT_RANGE_M = (0.1, 10.0)


class DepthError(ValueError):
    """Bad depth input; kind names the problem: depth_encoding | depth_size | depth_empty."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def depth_to_metres(array: np.ndarray, encoding: str, depth_scale: float = DEFAULT_DEPTH_SCALE) -> np.ndarray:
    """(H, W) uint16 ("16UC1", x depth_scale) or float32 ("32FC1", metres) -> (H, W) float32 metres."""
    if encoding not in DEPTH_ENCODINGS:
        raise DepthError("depth_encoding", f"depth encoding {encoding!r} is not one of {list(DEPTH_ENCODINGS)}")
    array = np.asarray(array)
    if array.ndim != 2:
        raise DepthError("depth_encoding", f"depth must be (H, W) with one channel, got shape {array.shape}")
    if encoding == "16UC1":
        if array.dtype != np.uint16:
            raise DepthError("depth_encoding", f"16UC1 depth must be uint16, got {array.dtype}")
        if not (np.isfinite(depth_scale) and depth_scale > 0):
            raise DepthError("depth_encoding", f"depth_scale must be > 0, got {depth_scale}")
        return array.astype(np.float32) * np.float32(depth_scale)
    if array.dtype != np.float32:
        raise DepthError("depth_encoding", f"32FC1 depth must be float32, got {array.dtype}")
    return array.astype(np.float32, copy=True)


def clean_depth(depth: np.ndarray, image_size: tuple[int, int],
                depth_range: tuple[float, float] = DEFAULT_RANGE_M) -> np.ndarray:
    """Depth (H, W) metres of the colour image of size (H, W) -> float32 (H, W), holes = 0.

    Zero, NaN, inf and depths outside depth_range = (min, max) metres are holes. DepthError
    (a ValueError) when it is not (H, W) float, its size differs from image_size, or every
    pixel is a hole."""
    depth = np.asarray(depth)
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise DepthError("depth_encoding", f"depth must be an (H, W) float array in metres, got "
                                           f"shape {depth.shape} dtype {depth.dtype}")
    if tuple(depth.shape) != tuple(image_size):
        raise DepthError("depth_size", f"depth is {depth.shape[1]}x{depth.shape[0]} but the colour image is "
                                       f"{image_size[1]}x{image_size[0]} (a registered depth image has its size)")
    low, high = depth_range
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth >= low) & (depth <= high)
    if not valid.any():
        raise DepthError("depth_empty", f"depth has no valid pixel (all zero, NaN, inf or outside "
                                        f"[{low}, {high}] m)")
    return np.where(valid, depth, 0.0).astype(np.float32)


def fuse_depth(predicted: torch.Tensor, sensor: torch.Tensor, mask: torch.Tensor | None = None,
               rescale_holes: bool = True) -> torch.Tensor:
    """Per object, sensor z where valid (> 0), predicted z in the holes -> (N, P).

    predicted, sensor: (N, P) metres on the same pixels (sensor 0 = hole); mask: (N, P) object
    pixels. rescale_holes: the predicted z of the holes is multiplied by the object's median
    sensor / predicted ratio on its valid mask pixels (1 without any), so filled pixels do not
    carry the prediction's bias against the sensor's."""
    valid = sensor > 0  # (N, P)
    fill = predicted
    if rescale_holes:
        on = valid if mask is None else valid & (mask > 0)
        ratio = torch.where(on, sensor / predicted.clamp_min(1e-6), torch.full_like(sensor, float("nan")))
        ratio = ratio.nanmedian(dim=1).values  # (N,), NaN without a valid pixel
        fill = predicted * torch.nan_to_num(ratio, nan=1.0)[:, None]
    return torch.where(valid, sensor, fill)
