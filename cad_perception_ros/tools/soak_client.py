"""The soak's own ROS node: a camera publisher at a fixed rate and a monitor of the node under
test (~/alignments arrivals, /diagnostics counters, resident memory of its process)."""
from __future__ import annotations

import time

import numpy as np
import psutil
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from cad_perception_ros.msg import ObjectAlignmentArray
from cad_perception_ros.ros import conversions as conv
from cad_perception_ros.runtime.timing import percentile


def process_rss_mb(pid: int) -> float:
    """Resident memory (MB) of process `pid` and its children (0 if it is gone)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


class SoakClient:
    """Publishes `images` (H, W, 3) uint8 with intrinsics K (3, 3) on {camera}/image + camera_info
    at rate_hz once started; samples the node (pid) every second into `samples`."""

    def __init__(self, pid: int, images, K: np.ndarray, *, rate_hz: float, camera: str, node_ns: str):
        self.pid, self.rate_hz, self.K = pid, rate_hz, np.asarray(K, dtype=np.float64)
        self.node = rclpy.create_node("soak_camera_monitor")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.image_topic, self.out_topic = f"{camera}/image", f"{node_ns}/cad_perception/alignments"
        self.status_prefix = f"{node_ns}/cad_perception"
        self.image_pub = self.node.create_publisher(Image, self.image_topic, qos_profile_sensor_data)
        self.info_pub = self.node.create_publisher(CameraInfo, f"{camera}/camera_info", qos_profile_sensor_data)
        header = Header(frame_id="soak_camera_optical")
        self.messages = [(conv.image_msg(header, img, "rgb8"), conv.camera_info_msg(header, self.K, img.shape[:2]))
                         for img in images]
        self.node.create_subscription(ObjectAlignmentArray, self.out_topic, self._on_alignments, QoSProfile(depth=50))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 20)
        self.counters: dict[str, str] = {}
        self.latencies: list[tuple[float, float]] = []  # (t_arrival_s since start, latency ms)
        self.samples: list[dict] = []
        self.frames_in = self.frames_out = 0
        self._t0_ns: int | None = None
        self._second: list[float] = []
        self._timers: list = []

    def wait_ready(self, proc, timeout_s: float) -> bool:
        """Spin until the node subscribes to the camera and publishes alignments; False if it died or timed out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            if self.node.count_subscribers(self.image_topic) > 0 and self.node.count_publishers(self.out_topic) > 0:
                return True
            self.executor.spin_once(timeout_sec=0.1)
        return False

    def start(self) -> None:
        self._t0_ns = time.time_ns()
        self._timers = [self.node.create_timer(1.0 / self.rate_hz, self._publish),
                        self.node.create_timer(1.0, self._sample)]

    def elapsed(self) -> float:
        return 0.0 if self._t0_ns is None else (time.time_ns() - self._t0_ns) / 1e9

    def stop_camera(self) -> None:
        for timer in self._timers:
            self.node.destroy_timer(timer)
        self._timers = []

    def drain(self, seconds: float) -> None:
        """Spin `seconds` more (late outputs), then take a final sample."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)
        self._sample()

    def destroy(self) -> None:
        self.node.destroy_node()

    def _publish(self) -> None:
        image, info = self.messages[self.frames_in % len(self.messages)]
        stamp = conv.ns_to_stamp(time.time_ns())
        image.header.stamp = info.header.stamp = stamp
        self.info_pub.publish(info)
        self.image_pub.publish(image)
        self.frames_in += 1

    def _on_alignments(self, msg) -> None:
        now = time.time_ns()
        latency_ms = (now - conv.stamp_to_ns(msg.header.stamp)) / 1e6
        self.frames_out += 1
        if self._t0_ns is not None:
            self.latencies.append(((now - self._t0_ns) / 1e9, latency_ms))
            self._second.append(latency_ms)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith(self.status_prefix):
                self.counters = {kv.key: kv.value for kv in status.values}

    def _sample(self) -> None:
        c = self.counters
        number = lambda key: int(float(c.get(key, 0) or 0))  # noqa: E731
        lat = np.asarray(self._second, dtype=np.float64)
        self.samples.append({
            "t_s": round(self.elapsed(), 3), "rss_mb": round(process_rss_mb(self.pid), 2),
            "frames_in": self.frames_in, "frames_out": self.frames_out,
            "node_received": number("frames_received"), "node_processed": number("frames_processed"),
            "frames_dropped": number("frames_dropped"), "errors": number("errors"),
            "rejected": sum(number(k) for k in c if k.startswith("rejected_")),
            "latency_p50_ms": None if (p := percentile(lat, 50, empty=None)) is None else round(p, 3),
            "latency_p95_ms": None if (p := percentile(lat, 95, empty=None)) is None else round(p, 3)})
        self._second = []
