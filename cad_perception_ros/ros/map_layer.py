"""The node's object map (parameter map_frame): each frame's alignments fused in map_frame (camera
poses from the node's TfListener), and the map's outputs.

Outputs (all in map_frame, stamp = the image's): ``~/objects`` (ObjectAlignmentArray; score = the
object's confidence, tf_frame = its stable name ``{tf_prefix}map_{class}_{n}`` when publish_tf),
``~/object_markers`` (MarkerArray: DELETEALL, then every object, marker id = its object id,
lifetime 0 = until replaced), one TF frame per object on /tf (parent map_frame), and the service
``~/clear_map`` (std_srvs/Trigger) that forgets every object. The camera pose at the image stamp
is looked up without waiting: a frame without one (TF not yet there, or too old) is not fused and
is counted in /diagnostics (frames_not_fused_no_tf).
"""
from __future__ import annotations

import threading

from rclpy.qos import QoSProfile
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from cad_perception_ros.mapping.object_map import MapConfig, ObjectMap
from cad_perception_ros.mapping.tf_buffer import TfLookupError
from cad_perception_ros.msg import ObjectAlignmentArray
from cad_perception_ros.ros import conversions as conv
from cad_perception_ros.ros.params import NodeParams
from cad_perception_ros.ros.stats import NodeStats, bounded
from cad_perception_ros.ros.tf_listener import WARN_PERIOD_S, TfListener
from cad_perception_ros.types import passes_score


class ObjectMapLayer:
    """Created at configure when map_frame is set; the node activates and deactivates its TfListener."""

    def __init__(self, node, params: NodeParams, stats: NodeStats, *, lookup, model_name: str, symmetry_of,
                 tf_publisher, tf: TfListener):
        self.node, self.params, self.stats, self.tf_publisher = node, params, stats, tf_publisher
        self.lookup, self.model_name, self.tf = lookup, model_name, tf
        self.map = ObjectMap(MapConfig(match_distance_m=params.map_match_distance_m, max_missed=params.map_max_missed,
                                       max_range_m=params.map_max_range_m, score_threshold=params.map_fuse_score),
                             symmetry_of=symmetry_of)
        self._lock = threading.Lock()  # the map: executor thread (service) vs worker
        reliable = QoSProfile(depth=10)
        self._pubs = {"objects": node.create_lifecycle_publisher(ObjectAlignmentArray, "~/objects", reliable),
                      "markers": node.create_lifecycle_publisher(MarkerArray, "~/object_markers", reliable)}
        self._service = self._create_service()

    def _create_service(self):
        try:
            from std_srvs.srv import Trigger  # built by scripts/setup_env.sh from interfaces/std_srvs
        except ImportError:
            self.node.get_logger().warning("std_srvs is not installed: no ~/clear_map service "
                                           "(scripts/setup_env.sh builds it from interfaces/std_srvs)")
            return None
        return self.node.create_service(Trigger, "~/clear_map", self._on_clear)

    def destroy(self) -> None:
        for pub in self._pubs.values():
            self.node.destroy_lifecycle_publisher(pub)
        if self._service is not None:
            self.node.destroy_service(self._service)
        self._pubs, self._service = {}, None

    def _on_clear(self, request, response):
        with self._lock:
            count = self.map.clear()
        self.stats.set_map_objects(0)
        self._pubs["markers"].publish(conv.markers_msg(Header(frame_id=self.params.map_frame), [], self.lookup, clear=True))
        response.success, response.message = True, f"cleared {count} map objects"
        self.node.get_logger().info(response.message)
        return response

    def fuse(self, header, predictions, K, image_size: tuple[int, int]) -> bool:
        """Fuse one frame's predictions (optical frame of header.frame_id) and publish the map.
        False (counted, nothing published) when the camera pose at the stamp is unknown."""
        stamp_ns = conv.stamp_to_ns(header.stamp)
        try:
            camera_to_map = self.tf.lookup(self.params.map_frame, header.frame_id, stamp_ns)
        except TfLookupError as exc:
            message = f"no pose of {header.frame_id!r} in {self.params.map_frame!r} at {stamp_ns * 1e-9:.3f} s: {exc}"
            self.stats.frame_not_fused(message)
            self.node.get_logger().warning(f"frame not fused: {bounded(message)}", throttle_duration_sec=WARN_PERIOD_S)
            return False
        with self._lock:
            self.map.update(predictions, camera_to_map, K, image_size, stamp_s=stamp_ns * 1e-9)
            objects = list(self.map.objects)
        self.stats.set_map_objects(len(objects))
        self._publish(Header(stamp=conv.ns_to_stamp(stamp_ns), frame_id=self.params.map_frame), objects)
        return True

    def _publish(self, header: Header, objects) -> None:
        p = self.params
        objects = [o for o in objects if passes_score(o.confidence, p.score_threshold)]  # evidence enough
        predictions = [o.as_prediction() for o in objects]
        frames = [f"{p.tf_prefix}map_{o.name}" for o in objects] if p.publish_tf else None
        self._pubs["objects"].publish(conv.alignments_msg(header, predictions, self.lookup, model=self.model_name,
                                                          tf_frames=frames))
        self._pubs["markers"].publish(conv.markers_msg(header, predictions, self.lookup, lifetime_s=0.0, clear=True,
                                                       marker_ids=[o.object_id for o in objects]))
        if frames and predictions:
            self.tf_publisher.publish(conv.tf_msg(header, predictions, frames))
