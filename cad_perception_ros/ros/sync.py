"""Stamp matching of Image and CameraInfo messages, then of those frames and registered depth
images (``DepthMatcher``, at the end) (message_filters is not installable here).

Two modes (``camera_info_mode``):

``exact`` (the default, the strict mode): an image is paired with the CameraInfo whose stamp is
closest to the image stamp, if that difference is <= tolerance (0 = exact stamps). Either message
may arrive first. Cameras that follow REP 104 publish one CameraInfo per image with the same
stamp, which this covers; a stale or latched CameraInfo never describes an image it was not
made for.

``latest``: every image takes the newest CameraInfo received, whatever its stamp (as most
perception nodes do). For drivers that publish CameraInfo slower than images or once, latched.
An image that arrives before any CameraInfo waits (within the window) for the first one.

Buffers are sized by time, not by count: CameraInfos of the last ``window_s`` seconds of stamps
are kept, and an image waits for its CameraInfo while it is at most ``window_s`` older than the
newest stamp seen, so a slow or bursty DDS path (CameraInfo arriving several frames after its
image, or before it) loses nothing. An image that can no longer match is given up on
("no_camera_info"): when it falls out of the window, or (exact mode) as soon as a CameraInfo
newer than its stamp + tolerance arrives and the CameraInfos arrive in stamp order.

An image whose stamp equals the last image stamp handed out is a duplicate and is returned in
``duplicates``, never matched twice. A stamp going backwards by more than the window on either
stream (a bag restarting, a simulator reset) clears both buffers, so old messages can never pair
with new ones. Stamps are integers in nanoseconds. Thread-safe. ROS-free: payloads are opaque.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, NamedTuple

SYNC_MODES = ("exact", "latest")
# Hard caps behind the time windows, so a stream with absurd stamps cannot grow the buffers.
MAX_BUFFERED_INFOS = 512
MAX_BUFFERED_IMAGES = 256


class SyncResult(NamedTuple):
    """What one add_* call produced: matched (image, info) pairs, images given up on, whether the
    buffers were reset, and images dropped as duplicates of an earlier stamp."""

    matched: list[tuple[Any, Any]]
    unmatched_images: list[Any]
    reset: bool
    duplicates: list[Any] = []


class StampSynchronizer:
    """Pairs images with CameraInfos by stamp (see the module docstring for the policy)."""

    def __init__(self, *, tolerance_s: float = 0.0, window_s: float = 2.0, mode: str = "exact"):
        if tolerance_s < 0 or window_s <= 0:
            raise ValueError(f"tolerance_s must be >= 0 and window_s > 0, got {tolerance_s}, {window_s}")
        if mode not in SYNC_MODES:
            raise ValueError(f"mode must be one of {SYNC_MODES}, got {mode!r}")
        self.mode = mode
        self._images: deque[tuple[int, Any]] = deque()
        self._infos: deque[tuple[int, Any]] = deque()
        self._lock = threading.Lock()
        self._newest_image: int | None = None
        self._newest_info: int | None = None
        self._last_handed_out: int | None = None
        self.resets = 0
        self.set_tolerance(tolerance_s, window_s)

    def set_tolerance(self, tolerance_s: float, window_s: float | None = None) -> None:
        """Change the matching tolerance (and window) at run time; takes effect at the next call."""
        if tolerance_s < 0 or (window_s is not None and window_s <= 0):
            raise ValueError(f"tolerance_s must be >= 0 and window_s > 0, got {tolerance_s}, {window_s}")
        with self._lock:
            self.tolerance_ns = int(round(tolerance_s * 1e9))
            if window_s is not None:
                self.window_ns = int(round(window_s * 1e9))
            self.window_ns = max(self.window_ns, self.tolerance_ns)

    def _check_jump(self, newest: int | None, stamp: int) -> bool:
        if newest is not None and stamp < newest - self.window_ns:
            self._images.clear()
            latest = self._infos[-1] if self._infos and self.mode == "latest" else None
            self._infos.clear()
            if latest is not None:  # a latched CameraInfo is not sent again
                self._infos.append(latest)
            self._newest_image = self._last_handed_out = None
            self._newest_info = latest[0] if latest is not None else None
            self.resets += 1
            return True
        return False

    def add_image(self, stamp_ns: int, image: Any) -> SyncResult:
        with self._lock:
            reset = self._check_jump(self._newest_image, stamp_ns)
            if not reset and (stamp_ns == self._last_handed_out
                              or any(s == stamp_ns for s, _ in self._images)):
                return SyncResult([], [], reset, [image])
            self._newest_image = max(stamp_ns, self._newest_image or stamp_ns)
            info = self._latest_info() if self.mode == "latest" else self._best_info(stamp_ns)
            if info is not None:
                self._last_handed_out = stamp_ns
                return SyncResult([(image, info)], self._expire_images(), reset)
            self._images.append((stamp_ns, image))
            return SyncResult([], self._expire_images(), reset)

    def add_info(self, stamp_ns: int, info: Any) -> SyncResult:
        with self._lock:
            reset = self._check_jump(self._newest_info, stamp_ns)
            in_order = self._newest_info is None or stamp_ns >= self._newest_info
            self._newest_info = max(stamp_ns, self._newest_info or stamp_ns)
            self._infos.append((stamp_ns, info))
            self._expire_infos()
            matched, dropped, keep = [], [], deque()
            for image_stamp, image in self._images:
                if self.mode == "latest" or abs(image_stamp - stamp_ns) <= self.tolerance_ns:
                    matched.append((image, info))
                    self._last_handed_out = image_stamp
                elif in_order and stamp_ns > image_stamp + self.tolerance_ns:
                    dropped.append(image)
                else:
                    keep.append((image_stamp, image))
            self._images = keep
            return SyncResult(matched, dropped + self._expire_images(), reset)

    def _expire_images(self) -> list[Any]:
        """Give up on images older than the window (by the newest stamp on either stream)."""
        newest = max(s for s in (self._newest_image, self._newest_info) if s is not None) \
            if (self._newest_image is not None or self._newest_info is not None) else None
        dropped = []
        while self._images and (len(self._images) > MAX_BUFFERED_IMAGES
                                or (newest is not None and self._images[0][0] < newest - self.window_ns)):
            dropped.append(self._images.popleft()[1])
        return dropped

    def _expire_infos(self) -> None:
        while self._infos and (len(self._infos) > MAX_BUFFERED_INFOS
                               or self._infos[0][0] < self._newest_info - self.window_ns):
            self._infos.popleft()

    def _latest_info(self) -> Any:
        return max(self._infos, key=lambda item: item[0])[1] if self._infos else None

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


class DepthResult(NamedTuple):
    """What one DepthMatcher call produced: (frame, depth or None) ready to serve, and depths
    given up on (no colour frame of their stamp)."""

    ready: list[tuple[Any, Any]]
    unmatched_depths: list[Any]


class DepthMatcher:
    """Pairs colour frames (already matched with their CameraInfo) with registered depth images by stamp.

    A frame takes the depth whose stamp is closest to its own within tolerance (each depth serves
    one frame). It waits for one only while depth is flowing: it is served without depth (None) at
    once when no depth arrived within the last window_s of stamps or a depth newer than its stamp +
    tolerance already came, and later when such a depth arrives or it falls out of the window. A
    depth that falls out of the window unmatched is returned in ``unmatched_depths``. A stamp going
    backwards by more than the window clears the buffers (pending frames are served without depth).
    After a gap of more than the window in the depth stream, the first frame whose image arrives
    before its depth is served without it (and that depth later counts as unmatched).
    Thread-safe, ROS-free; payloads are opaque (never None)."""

    def __init__(self, *, tolerance_s: float = 0.0, window_s: float = 2.0):
        self._frames: deque[tuple[int, Any]] = deque()
        self._depths: deque[tuple[int, Any]] = deque()
        self._newest_depth: int | None = None
        self._newest: int | None = None
        self._lock = threading.Lock()
        self.set_tolerance(tolerance_s, window_s)

    def set_tolerance(self, tolerance_s: float, window_s: float) -> None:
        if tolerance_s < 0 or window_s <= 0:
            raise ValueError(f"tolerance_s must be >= 0 and window_s > 0, got {tolerance_s}, {window_s}")
        with self._lock:
            self.tolerance_ns = int(round(tolerance_s * 1e9))
            self.window_ns = max(int(round(window_s * 1e9)), self.tolerance_ns)

    def add_frame(self, stamp_ns: int, frame: Any) -> DepthResult:
        with self._lock:
            ready, unmatched = self._check_jump(stamp_ns)
            self._newest = max(stamp_ns, self._newest if self._newest is not None else stamp_ns)
            best = self._take_depth(stamp_ns)
            if best is not None:
                ready.append((frame, best))
            elif self._newest_depth is None or self._newest_depth < stamp_ns - self.window_ns \
                    or self._newest_depth > stamp_ns + self.tolerance_ns:
                ready.append((frame, None))
            else:
                self._frames.append((stamp_ns, frame))
            return self._expire(ready, unmatched)

    def add_depth(self, stamp_ns: int, depth: Any) -> DepthResult:
        with self._lock:
            ready, unmatched = self._check_jump(stamp_ns)
            self._newest = max(stamp_ns, self._newest if self._newest is not None else stamp_ns)
            self._newest_depth = max(stamp_ns, self._newest_depth if self._newest_depth is not None else stamp_ns)
            keep: deque[tuple[int, Any]] = deque()
            for frame_stamp, frame in self._frames:
                if depth is not None and abs(frame_stamp - stamp_ns) <= self.tolerance_ns:
                    ready.append((frame, depth))
                    depth = None  # served
                elif frame_stamp + self.tolerance_ns < stamp_ns:
                    ready.append((frame, None))  # its depth can no longer come (depths arrive in stamp order)
                else:
                    keep.append((frame_stamp, frame))
            self._frames = keep
            if depth is not None:
                self._depths.append((stamp_ns, depth))
            return self._expire(ready, unmatched)

    def _take_depth(self, stamp_ns: int) -> Any:
        best = None
        for i, (depth_stamp, _) in enumerate(self._depths):
            diff = abs(depth_stamp - stamp_ns)
            if diff <= self.tolerance_ns and (best is None or diff < best[1]):
                best = (i, diff)
        if best is None:
            return None
        depth = self._depths[best[0]][1]
        del self._depths[best[0]]
        return depth

    def _check_jump(self, stamp_ns: int) -> tuple[list, list]:
        if self._newest is None or stamp_ns >= self._newest - self.window_ns:
            return [], []
        ready, unmatched = [(f, None) for _, f in self._frames], [d for _, d in self._depths]
        self._frames.clear()
        self._depths.clear()
        self._newest = self._newest_depth = None
        return ready, unmatched

    def _expire(self, ready: list, unmatched: list) -> DepthResult:
        horizon = self._newest - self.window_ns
        while self._frames and (self._frames[0][0] < horizon or len(self._frames) > MAX_BUFFERED_IMAGES):
            ready.append((self._frames.popleft()[1], None))
        while self._depths and (self._depths[0][0] < horizon or len(self._depths) > MAX_BUFFERED_IMAGES):
            unmatched.append(self._depths.popleft()[1])
        return DepthResult(ready, unmatched)
