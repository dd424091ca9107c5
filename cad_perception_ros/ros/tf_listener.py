"""/tf and /tf_static into one TF buffer (mapping/tf_buffer.py), shared by the object map
(map_frame) and the floor cue (floor_frame). Lookups never wait: a pose that is not there (yet, or
any more) raises TfLookupError at once. Transforms whose child frame starts with tf_prefix are the
node's own object frames and are not taken in.
"""
from __future__ import annotations

import threading

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from cad_perception_ros.mapping.tf_buffer import RigidTransform, TfBuffer
from cad_perception_ros.ros import conversions as conv
from cad_perception_ros.ros.stats import NodeStats, bounded

TF_CACHE_S = 10.0
WARN_PERIOD_S = 5.0


class TfListener:
    """Created at configure when map_frame or floor_frame is set; subscribes while active."""

    def __init__(self, node, stats: NodeStats, *, tf_prefix: str, tolerance_s: float):
        self.node, self.stats, self.tf_prefix = node, stats, tf_prefix
        self.buffer = TfBuffer(cache_time_s=TF_CACHE_S, max_extrapolation_s=tolerance_s)
        self._lock = threading.Lock()  # executor thread (subscriptions) vs worker (lookups)
        self._subs: list = []

    def activate(self) -> None:
        static = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
        self._subs = [self.node.create_subscription(TFMessage, "/tf", lambda m: self._on_tf(m, False), QoSProfile(depth=100)),
                      self.node.create_subscription(TFMessage, "/tf_static", lambda m: self._on_tf(m, True), static)]

    def deactivate(self) -> None:
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []

    def lookup(self, target: str, source: str, stamp_ns: int) -> RigidTransform:
        """source -> target at stamp_ns; TfLookupError when unknown."""
        with self._lock:
            return self.buffer.lookup(target, source, stamp_ns)

    def _on_tf(self, msg: TFMessage, static: bool) -> None:
        for transform in msg.transforms:
            try:
                parent, child, stamp_ns, rigid = conv.rigid_from_transform_msg(transform)
                if child.startswith(self.tf_prefix):
                    continue
                with self._lock:
                    self.buffer.set_transform(parent, child, stamp_ns, rigid, static=static)
            except ValueError as exc:
                self.stats.bad_transform(str(exc))
                self.node.get_logger().warning(f"transform refused: {bounded(exc)}", throttle_duration_sec=WARN_PERIOD_S)
