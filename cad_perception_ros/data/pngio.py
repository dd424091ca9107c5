"""Minimal PNG reader/writer for 16-bit images (Pillow cannot write 16-bit RGB).

write_png16(path, array): (H, W) or (H, W, 3) uint16 -> grey or RGB 16-bit PNG.
read_png16(path) -> (H, W) or (H, W, 3) uint16. Reads any non-interlaced 8/16-bit grey/RGB(A)
PNG with all five row filters (so files written by OpenCV, as ROCA's renderer does, load too).
Channel order is the file's (R, G, B); OpenCV callers store BGR, see scan2cad_format.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png16(array: np.ndarray, level: int = 6) -> bytes:
    """PNG bytes of a (H, W) or (H, W, 3) uint16 array (rows with the 'Up' filter)."""
    array = np.asarray(array)
    if array.dtype != np.uint16 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"encode_png16: expected (H, W) or (H, W, 3) uint16, got {array.shape} {array.dtype}")
    height, width = array.shape[:2]
    color_type = 0 if array.ndim == 2 else 2
    raw = array.astype(">u2").reshape(height, -1).view(np.uint8).reshape(height, -1)  # (H, W*C*2)
    up = raw.copy()
    up[1:] = raw[1:] - raw[:-1]  # uint8 wrap-around is the PNG arithmetic
    rows = np.concatenate([np.full((height, 1), 2, np.uint8), up], axis=1)
    rows[0, 0] = 0
    rows[0, 1:] = raw[0]
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + _chunk(b"IEND", b""))


def write_png16(path: str | Path, array: np.ndarray, level: int = 6) -> None:
    """Write encode_png16(array, level) to path (zlib level 1 is fast, 9 small)."""
    Path(path).write_bytes(encode_png16(array, level))


def _unfilter(data: np.ndarray, height: int, stride: int, bpp: int) -> np.ndarray:
    """Undo PNG row filters. data: (H, 1 + stride) uint8 -> (H, stride) uint8."""
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for r in range(height):
        kind, row = int(data[r, 0]), data[r, 1:]
        if kind == 0:
            cur = row.copy()
        elif kind == 1:
            cur = np.cumsum(row.reshape(-1, bpp).astype(np.int64), axis=0).astype(np.uint8).reshape(-1)
        elif kind == 2:
            cur = row + prev
        elif kind in (3, 4):
            cur = _unfilter_sequential(kind, row, prev, bpp)
        else:
            raise ValueError(f"PNG: unknown row filter {kind}")
        out[r] = cur
        prev = cur
    return out


def _unfilter_sequential(kind: int, row: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    cur = np.zeros_like(row, dtype=np.int64)
    row, prev = row.astype(np.int64), prev.astype(np.int64)
    for i in range(row.size):
        a = cur[i - bpp] if i >= bpp else 0
        b = prev[i]
        if kind == 3:
            pred = (a + b) // 2
        else:
            c = prev[i - bpp] if i >= bpp else 0
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        cur[i] = (row[i] + pred) & 0xFF
    return cur.astype(np.uint8)


MAX_PIXELS = 1 << 28  # refuse larger images (a corrupt header must not allocate gigabytes)


def read_png16(path: str | Path) -> np.ndarray:
    """(H, W) or (H, W, C) uint16 of a PNG file (8-bit files are widened, not rescaled).
    Raises ValueError naming the file on a truncated, corrupt or unsupported PNG."""
    return decode_png16(Path(path).read_bytes(), str(path))


def _chunks(blob: bytes, where: str) -> tuple[tuple, bytes]:
    """(IHDR fields, concatenated IDAT data) of a PNG byte string."""
    pos, idat, header = 8, [], None
    while pos < len(blob):
        if pos + 8 > len(blob):
            raise ValueError(f"{where}: truncated PNG (chunk header at byte {pos})")
        (length,) = struct.unpack(">I", blob[pos:pos + 4])
        kind, data = blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + length]
        if len(data) != length:
            raise ValueError(f"{where}: truncated PNG ({kind!r} chunk of {length} bytes has {len(data)})")
        pos += 12 + length
        if kind == b"IHDR":
            if length != 13:
                raise ValueError(f"{where}: IHDR chunk of {length} bytes, expected 13")
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError(f"{where}: PNG without IHDR")
    return header, b"".join(idat)


def decode_png16(blob: bytes, where: str = "PNG") -> np.ndarray:
    """read_png16 on bytes already in memory."""
    if not blob.startswith(_SIGNATURE):
        raise ValueError(f"{where}: not a PNG file")
    (width, height, depth, color_type, _, _, interlace), idat = _chunks(blob, where)
    if depth not in (8, 16) or color_type not in _CHANNELS or interlace:
        raise ValueError(f"{where}: unsupported PNG (bit depth {depth}, colour type {color_type}, interlace {interlace})")
    if not (0 < width * height <= MAX_PIXELS):
        raise ValueError(f"{where}: PNG size {width}x{height} outside 1..{MAX_PIXELS} pixels")
    channels = _CHANNELS[color_type]
    bpp = channels * depth // 8
    stride = width * bpp
    try:
        pixels = zlib.decompressobj().decompress(idat, height * (stride + 1) + 1)
    except zlib.error as exc:
        raise ValueError(f"{where}: corrupt PNG image data: {exc}") from None
    if len(pixels) != height * (stride + 1):
        raise ValueError(f"{where}: PNG image data holds {len(pixels)} bytes, expected {height * (stride + 1)}")
    data = np.frombuffer(pixels, dtype=np.uint8).reshape(height, stride + 1)
    raw = _unfilter(data, height, stride, bpp)
    values = raw.view(">u2").astype(np.uint16) if depth == 16 else raw.astype(np.uint16)
    values = values.reshape(height, width, channels)
    return values[..., 0] if channels == 1 else values
