"""Running counters of the node (thread-safe, ROS-free) and their /diagnostics message."""
from __future__ import annotations

import threading
import time
from collections import Counter, deque

from cad_perception_ros.runtime.timing import percentile

REJECT_KINDS = ("encoding", "step", "empty_image", "intrinsics", "size_mismatch", "no_camera_info",
                "duplicate_stamp", "too_large", "too_small")
# Depth problems: the frame is served on RGB alone (not rejected). encoding / size / empty: the
# depth image of the frame is unusable; missing: no depth of the frame's stamp came in time;
# unmatched: a depth image no colour frame took (no image of its stamp).
DEPTH_FALLBACK_KINDS = ("encoding", "size", "empty", "missing", "unmatched")
MAX_MESSAGE_CHARS = 300  # every text built from input is cut to this before it is kept or logged
ERROR_HOLD_S = 10.0  # /diagnostics stays WARN this long after the last error, then OK again
# A stamp-to-publish latency outside this range (ms) comes from a wrong stamp (0, another clock):
# it is counted, not averaged.
PLAUSIBLE_LATENCY_MS = (-1_000.0, 60_000.0)


def bounded(text: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """str(text) cut to `limit` characters, with the number of characters cut."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


class NodeStats:
    """Input rate, latencies (ms, recent window), dropped frames, rejections per kind, last error."""

    def __init__(self, window: int = 50, *, error_hold_s: float = ERROR_HOLD_S):
        self.error_hold_s = error_hold_s
        self._lock = threading.Lock()
        self._arrivals: deque[float] = deque(maxlen=window)
        self._processing_ms: deque[float] = deque(maxlen=window)
        self._stamp_latency_ms: deque[float] = deque(maxlen=window)
        self._pipeline_ms: deque[float] = deque(maxlen=window)
        self.rejected: Counter[str] = Counter({k: 0 for k in REJECT_KINDS})
        self.depth_fallbacks: Counter[str] = Counter({k: 0 for k in DEPTH_FALLBACK_KINDS})
        self.frames_with_depth = 0
        self.received = 0
        self.processed = 0
        self.published_objects = 0
        self.errors = 0
        self.implausible_latencies = 0
        self.not_fused = 0  # frames the object map skipped: no camera pose at the image stamp
        self.without_floor = 0  # frames run without the floor: no camera pose in floor_frame at the stamp
        self.bad_transforms = 0  # /tf entries refused (bad rotation, a second parent, ...)
        self.map_objects = 0
        self.last_error = ""
        self._last_error_time: float | None = None

    def image_arrived(self, now: float | None = None) -> None:
        with self._lock:
            self.received += 1
            self._arrivals.append(time.monotonic() if now is None else now)

    def reject(self, kind: str, message: str) -> None:
        with self._lock:
            self.rejected[kind] += 1
            self._set_error(f"{kind}: {message}")

    def depth_fallback(self, kind: str, message: str) -> None:
        """A depth problem of kind DEPTH_FALLBACK_KINDS (the frame, if any, runs on RGB alone)."""
        with self._lock:
            self.depth_fallbacks[kind] += 1
            self._set_error(f"depth {kind}: {message}")

    def frame_not_fused(self, message: str) -> None:
        """The object map skipped a frame (no TF for the camera at its stamp)."""
        with self._lock:
            self.not_fused += 1
            self._set_error(f"not fused: {message}")

    def frame_without_floor(self, message: str) -> None:
        """floor_frame is set but the camera's pose in it at the image stamp is unknown."""
        with self._lock:
            self.without_floor += 1
            self._set_error(message)

    def bad_transform(self, message: str) -> None:
        with self._lock:
            self.bad_transforms += 1
            self._set_error(f"bad transform: {message}")

    def set_map_objects(self, count: int) -> None:
        with self._lock:
            self.map_objects = int(count)

    def error(self, message: str) -> None:
        with self._lock:
            self.errors += 1
            self._set_error(message)

    def _set_error(self, message: object) -> None:
        self.last_error = bounded(message)
        self._last_error_time = time.monotonic()

    def clear_error(self) -> None:
        """Forget the last error (e.g. after a successful configure)."""
        with self._lock:
            self.last_error, self._last_error_time = "", None

    def error_active(self, now: float | None = None) -> bool:
        """True while the last error is younger than error_hold_s."""
        now = time.monotonic() if now is None else now
        return self._last_error_time is not None and now - self._last_error_time < self.error_hold_s

    def frame_done(self, processing_ms: float, stamp_latency_ms: float, n_objects: int,
                   pipeline_ms: float | None = None, with_depth: bool = False) -> None:
        """processing_ms: worker time (pipeline + publishing); stamp_latency_ms: image stamp to
        publication; pipeline_ms: the aligner's own time (CadAligner.last_timings["total"]);
        with_depth: the frame ran with its registered depth."""
        with self._lock:
            self.processed += 1
            self.frames_with_depth += int(with_depth)
            self.published_objects += n_objects
            self._processing_ms.append(processing_ms)
            low, high = PLAUSIBLE_LATENCY_MS
            if low <= stamp_latency_ms <= high:
                self._stamp_latency_ms.append(stamp_latency_ms)
            else:
                self.implausible_latencies += 1
            if pipeline_ms is not None:
                self._pipeline_ms.append(pipeline_ms)

    def snapshot(self, dropped: int) -> dict[str, float | int | str]:
        with self._lock:
            arrivals = list(self._arrivals)
            rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 and \
                arrivals[-1] > arrivals[0] else 0.0
            mean = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
            out: dict[str, float | int | str] = {
                "input_rate_hz": round(rate, 3),
                "processing_latency_ms": round(mean(self._processing_ms), 3),
                "stamp_to_publish_latency_ms": round(mean(self._stamp_latency_ms), 3),
                "frames_received": self.received,
                "stamp_to_publish_latency_ms_p50": round(percentile(self._stamp_latency_ms, 50), 3),
                "stamp_to_publish_latency_ms_p95": round(percentile(self._stamp_latency_ms, 95), 3),
                "pipeline_latency_ms_p50": round(percentile(self._pipeline_ms, 50), 3),
                "processing_latency_ms_p50": round(percentile(self._processing_ms, 50), 3),
                "frames_processed": self.processed,
                "frames_dropped": dropped,
                "objects_published": self.published_objects,
                "errors": self.errors,
                "implausible_stamp_latencies": self.implausible_latencies,
                "frames_not_fused_no_tf": self.not_fused,
                "frames_without_floor": self.without_floor,
                "transforms_refused": self.bad_transforms,
                "map_objects": self.map_objects,
            }
            out.update({f"rejected_{k}": v for k, v in sorted(self.rejected.items())})
            out["frames_with_depth"] = self.frames_with_depth
            out.update({f"depth_fallback_{k}": v for k, v in sorted(self.depth_fallbacks.items())})
            out["last_error"] = self.last_error
            out["last_error_age_s"] = round(time.monotonic() - self._last_error_time, 1) \
                if self._last_error_time is not None else -1.0
            out["error_active"] = self.error_active()
            return out


def diagnostics_msg(stamp, name: str, hardware_id: str, snapshot: dict, *, state: str):
    """DiagnosticArray with one status; level WARN while an error is recent (error_active) or the
    node is not active. Every value is bounded in length."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from std_msgs.msg import Header

    rejected = sum(v for k, v in snapshot.items() if k.startswith("rejected_"))
    recent_error = snapshot.get("error_active", bool(snapshot["last_error"]))
    level = DiagnosticStatus.OK if state == "active" and not recent_error else DiagnosticStatus.WARN
    message = f"{state}; {snapshot['frames_processed']} frames, {rejected} rejected"
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=bounded(v)) for k, v in snapshot.items()])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
