"""COCO run-length encoding of binary masks (the compressed-string form pycocotools writes).

A mask (H, W) is flattened in column-major (Fortran) order; counts alternate runs of 0 and 1,
starting with 0. The string form stores each count (from the third on, as the difference to
the count two before) in 5-bit groups, 6 bits a character, offset by 48.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

MAX_PIXELS = 1 << 28  # a corrupt size must not allocate gigabytes


def mask_to_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed run lengths of a (H, W) bool mask in column-major order."""
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return [int(c) for c in counts]


def counts_to_string(counts: list[int]) -> str:
    """pycocotools' compressed string of a list of run lengths."""
    chars = []
    for i, value in enumerate(counts):
        x = int(value) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def string_to_counts(text: str) -> list[int]:
    """Inverse of counts_to_string."""
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        x, k, more = 0, 0, True
        while more:
            if pos >= len(text):
                raise ValueError("RLE string ends inside a count")
            c = ord(text[pos]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            pos += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode_mask(mask: np.ndarray) -> dict:
    """{'size': [H, W], 'counts': str} of a (H, W) bool mask."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode_mask: expected a (H, W) mask, got shape {mask.shape}")
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts_to_string(mask_to_counts(mask))}


def decode_mask(rle: dict) -> np.ndarray:
    """(H, W) bool mask of a COCO RLE dict (compressed string or uncompressed list counts)."""
    try:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
        if isinstance(counts, str):
            counts = string_to_counts(counts)
        counts = np.asarray(counts, dtype=np.int64)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"not a COCO RLE dict: {exc!r}") from None
    if not (0 <= height and 0 <= width and height * width <= MAX_PIXELS) or counts.ndim != 1:
        raise ValueError(f"RLE size {height}x{width} or counts shape {counts.shape} is invalid")
    if counts.sum() != height * width or np.any(counts < 0):
        raise ValueError(f"RLE counts sum to {counts.sum()}, expected {height * width}")
    values = np.zeros(counts.size, dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape(width, height).T.copy()


def polygons_to_mask(polygons: list, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of COCO polygons [[x0, y0, x1, y1, ...], ...] (pixel-centre sampling)."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        points = [(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)]
        if len(points) >= 3:
            draw.polygon(points, fill=1)
    return np.asarray(canvas, dtype=bool)
