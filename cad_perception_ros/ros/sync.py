"""Stamp matching of Image and CameraInfo messages (message_filters is not installable here).

Policy (documented choice):
  * An image is paired with the CameraInfo whose stamp is closest to the image stamp, if that
    difference is <= tolerance (0 = exact match). Either message may arrive first.
  * A CameraInfo is never reused for an image whose stamp it does not match: a stale or
    latched CameraInfo could describe another resolution or calibration. Cameras publish one
    CameraInfo per image with the same stamp, which this covers.
  * An image that finds no CameraInfo is dropped, and reported as "no_camera_info", as soon as
    a CameraInfo newer than its stamp + tolerance arrives (none can match any more) or when
    the short image buffer overflows.
  * A stamp going backwards by more than the tolerance on either stream (a bag restarting, a
    simulator reset) clears both buffers, so old messages can never pair with new ones.
Stamps are integers in nanoseconds. Thread-safe. ROS-free: payloads are opaque.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, NamedTuple


class SyncResult(NamedTuple):
    """What one add_* call produced: matched (image, info) pairs and images given up on."""

    matched: list[tuple[Any, Any]]
    unmatched_images: list[Any]
    reset: bool


class StampSynchronizer:
    def __init__(self, *, tolerance_s: float = 0.0, buffer_size: int = 8):
        if tolerance_s < 0 or buffer_size < 1:
            raise ValueError(f"tolerance_s must be >= 0 and buffer_size >= 1, got {tolerance_s}, {buffer_size}")
        self.tolerance_ns = int(round(tolerance_s * 1e9))
        self._images: deque[tuple[int, Any]] = deque()
        self._infos: deque[tuple[int, Any]] = deque(maxlen=buffer_size)
        self._buffer_size = buffer_size
        self._last_image = None
        self._last_info = None
        self._lock = threading.Lock()
        self.resets = 0

    def _check_jump(self, last: int | None, stamp: int) -> bool:
        if last is not None and stamp < last - self.tolerance_ns:
            self._images.clear()
            self._infos.clear()
            self._last_image = self._last_info = None
            self.resets += 1
            return True
        return False

    def add_image(self, stamp_ns: int, image: Any) -> SyncResult:
        with self._lock:
            reset = self._check_jump(self._last_image, stamp_ns)
            self._last_image = stamp_ns
            info = self._best_info(stamp_ns)
            if info is not None:
                return SyncResult([(image, info)], [], reset)
            self._images.append((stamp_ns, image))
            dropped = []
            while len(self._images) > self._buffer_size:
                dropped.append(self._images.popleft()[1])
            return SyncResult([], dropped, reset)

    def add_info(self, stamp_ns: int, info: Any) -> SyncResult:
        with self._lock:
            reset = self._check_jump(self._last_info, stamp_ns)
            self._last_info = stamp_ns
            self._infos.append((stamp_ns, info))
            matched, dropped, keep = [], [], deque()
            for image_stamp, image in self._images:
                if abs(image_stamp - stamp_ns) <= self.tolerance_ns:
                    matched.append((image, info))
                elif stamp_ns > image_stamp + self.tolerance_ns:
                    dropped.append(image)
                else:
                    keep.append((image_stamp, image))
            self._images = keep
            return SyncResult(matched, dropped, reset)

    def _best_info(self, stamp_ns: int) -> Any:
        best, best_diff = None, None
        for info_stamp, info in self._infos:
            diff = abs(info_stamp - stamp_ns)
            if diff <= self.tolerance_ns and (best_diff is None or diff < best_diff):
                best, best_diff = info, diff
        return best

    def pending_images(self) -> int:
        with self._lock:
            return len(self._images)
