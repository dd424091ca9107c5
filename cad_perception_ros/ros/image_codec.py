"""Raw image buffers <-> numpy arrays (a small cv_bridge replacement), ROS-free.

Works on the fields of a sensor_msgs/Image: (height, width, encoding, step, data bytes).
Supported encodings: rgb8, bgr8, rgba8, bgra8, mono8 (all 8 bit; row padding allowed via step).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

CHANNELS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


class InputError(ValueError):
    """A malformed input frame. ``kind`` names the rejection for counting in diagnostics."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class RawImage(NamedTuple):
    """The payload of a sensor_msgs/Image."""

    height: int
    width: int
    encoding: str
    step: int
    data: bytes


def decode(height: int, width: int, encoding: str, step: int, data: bytes) -> np.ndarray:
    """Raw buffer -> (H, W, C) uint8 array in the encoding's own channel order (C = 1 for mono8).

    Raises InputError(kind) with kind "empty_image", "encoding" or "step".
    """
    if height <= 0 or width <= 0:
        raise InputError("empty_image", f"image is empty: {width}x{height} pixels")
    if encoding not in CHANNELS:
        raise InputError("encoding", f"unsupported encoding {encoding!r}; supported: {sorted(CHANNELS)}")
    channels = CHANNELS[encoding]
    row_bytes = width * channels
    if step < row_bytes:
        raise InputError("step", f"step {step} < width*channels = {width}*{channels} = {row_bytes} "
                                 f"for {encoding}")
    if len(data) != step * height:
        raise InputError("step", f"data holds {len(data)} bytes, expected step*height = "
                                 f"{step}*{height} = {step * height}")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(height, step)  # (H, step)
    return rows[:, :row_bytes].reshape(height, width, channels)  # (H, W, C)


def encode(array: np.ndarray, encoding: str, step: int | None = None) -> RawImage:
    """(H, W, C) or (H, W) uint8 array already in `encoding`'s channel order -> RawImage.

    step: row length in bytes (>= W*C; padding bytes are zero); None = tightly packed.
    """
    if encoding not in CHANNELS:
        raise ValueError(f"unsupported encoding {encoding!r}; supported: {sorted(CHANNELS)}")
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != CHANNELS[encoding]:
        raise ValueError(f"{encoding} needs a uint8 (H, W, {CHANNELS[encoding]}) array, got "
                         f"{array.dtype} {array.shape}")
    height, width, channels = array.shape
    step = width * channels if step is None else step
    if step < width * channels:
        raise ValueError(f"step {step} < width*channels {width * channels}")
    rows = np.zeros((height, step), dtype=np.uint8)
    rows[:, :width * channels] = array.reshape(height, width * channels)
    return RawImage(height, width, encoding, step, rows.tobytes())


def to_rgb(array: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, C) array in `encoding` order -> contiguous (H, W, 3) uint8 RGB."""
    if encoding in ("rgb8", "rgba8"):
        out = array[:, :, :3]
    elif encoding in ("bgr8", "bgra8"):
        out = array[:, :, 2::-1]
    elif encoding == "mono8":
        out = np.repeat(array[:, :, :1], 3, axis=2)
    else:
        raise InputError("encoding", f"unsupported encoding {encoding!r}")
    return np.ascontiguousarray(out)


def from_rgb(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, C) array in `encoding` order (alpha 255; mono8 = luma)."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) RGB, got {rgb.shape}")
    alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
    if encoding == "rgb8":
        return rgb.copy()
    if encoding == "bgr8":
        return np.ascontiguousarray(rgb[:, :, ::-1])
    if encoding == "rgba8":
        return np.concatenate([rgb, alpha], axis=2)
    if encoding == "bgra8":
        return np.concatenate([rgb[:, :, ::-1], alpha], axis=2)
    if encoding == "mono8":
        luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[:, :, None]
    raise ValueError(f"unsupported encoding {encoding!r}; supported: {sorted(CHANNELS)}")


def decode_rgb(height: int, width: int, encoding: str, step: int, data: bytes) -> np.ndarray:
    """Raw buffer -> (H, W, 3) uint8 RGB (see ``decode`` for the errors)."""
    return to_rgb(decode(height, width, encoding, step, data), encoding)


DEPTH_DTYPES: dict[str, np.dtype] = {"16UC1": np.dtype(np.uint16), "32FC1": np.dtype(np.float32)}


def decode_depth(height: int, width: int, encoding: str, step: int, data: bytes, is_bigendian: int = 0) -> np.ndarray:
    """Raw depth buffer -> (H, W) uint16 (16UC1) or float32 (32FC1) array, native byte order.

    Raises InputError("depth_encoding") for another encoding, an empty image or a buffer whose
    step / length does not fit."""
    if encoding not in DEPTH_DTYPES:
        raise InputError("depth_encoding", f"depth encoding {encoding!r} is not one of {sorted(DEPTH_DTYPES)} "
                                           "(16UC1 in units of depth_scale, 32FC1 in metres)")
    if height <= 0 or width <= 0:
        raise InputError("depth_encoding", f"depth image is empty: {width}x{height} pixels")
    dtype = DEPTH_DTYPES[encoding].newbyteorder(">" if is_bigendian else "<")
    row_bytes = width * dtype.itemsize
    if step < row_bytes or step % dtype.itemsize or len(data) != step * height:
        raise InputError("depth_encoding", f"depth buffer of {len(data)} bytes with step {step} does not hold "
                                           f"{width}x{height} {encoding} pixels ({row_bytes} bytes a row)")
    rows = np.frombuffer(data, dtype=dtype).reshape(height, step // dtype.itemsize)  # (H, step / itemsize)
    return rows[:, :width].astype(DEPTH_DTYPES[encoding])  # (H, W), native order, a copy
