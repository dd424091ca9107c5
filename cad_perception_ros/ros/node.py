"""The CAD perception lifecycle node: Image + CameraInfo (+ an optional registered depth Image) in;
alignments, detections, poses, TF, RViz markers, a debug image and diagnostics out; with map_frame set,
the object map as well (ros/map_layer.py: camera poses from /tf and /tf_static, ~/objects,
~/object_markers, ~/clear_map).

Lifecycle: configure loads the aligner and CAD database (FAILURE with a clear log if missing or
corrupt; the node stays alive), activate subscribes, deactivate unsubscribes, cleanup frees the
model. ``--autostart`` (or parameter autostart:=true) configures and activates on start.
Inference runs on a worker thread behind a drop-oldest queue of one frame.

Depth (parameter depth_topic, empty = off): registered to the colour image (same size, the K of
CameraInfo applies to both), 16UC1 x depth_scale or 32FC1 metres, matched to the colour frame by
stamp (ros/sync.py DepthMatcher). A frame whose depth is unusable (encoding, size, no valid
pixel) or missing runs on RGB alone; each case is counted in /diagnostics (depth_fallback_*).

Floor (parameter floor_frame, empty = off; e.g. base_footprint): the z = 0 plane of that TF frame is
the floor. The camera's pose in it at the image stamp (ros/tf_listener.py, no waiting) gives the
aligner the floor plane, and the objects are corrected to stand on it (geometry/floor.py). A frame
without that pose runs without the floor and is counted in /diagnostics (frames_without_floor).
"""
from __future__ import annotations

import sys
import time

import rclpy
import rclpy.exceptions
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from cad_perception_ros.msg import ObjectAlignmentArray
from cad_perception_ros.ros import conversions as conv
from cad_perception_ros.ros import params as node_params
from cad_perception_ros.ros.aligners import (
    AlignerLoadError,
    load_aligner,
    model_classes,
    run_aligner,
)
from cad_perception_ros.ros.image_cdr import parse_image
from cad_perception_ros.ros.image_codec import InputError
from cad_perception_ros.geometry.floor import floor_from_camera_pose
from cad_perception_ros.mapping.tf_buffer import TfLookupError
from cad_perception_ros.ros.map_layer import ObjectMapLayer
from cad_perception_ros.ros.spin import run_node
from cad_perception_ros.ros.stats import NodeStats, bounded, diagnostics_msg
from cad_perception_ros.ros.sync import DepthMatcher, StampSynchronizer
from cad_perception_ros.ros.tf_listener import TfListener
from cad_perception_ros.ros.worker import FrameWorker
from cad_perception_ros.runtime.overlay import draw_overlay
from cad_perception_ros.tracking import ObjectTracker
from cad_perception_ros.types import passes_score

WARN_PERIOD_S = 5.0
MIN_IMAGE_SIDE = 16  # a smaller image holds no object the models can see


class CadPerceptionNode(LifecycleNode):
    def __init__(self, node_name: str = "cad_perception", *, autostart: bool = False, **kwargs):
        super().__init__(node_name, **kwargs)
        self.params = node_params.declare(self)
        self.add_on_set_parameters_callback(node_params.make_on_set_callback(
            lambda: self.params, lambda: self._aligner is not None, lambda: model_classes(self._aligner)))
        self.add_post_set_parameters_callback(lambda _: self._apply_params())
        self.stats = NodeStats()
        self.state_label = "unconfigured"
        self._aligner = self._lookup = self._worker = self._sync = self._depth_sync = self._tracker = self._map = None
        self._tf: TfListener | None = None
        self._pubs: dict = {}
        self._subs: list = []
        self._previous_ids: set[int] = set()
        self._reset_tracks = False
        self._last_warn: dict[str, float] = {}
        self._warned_once: set[str] = set()
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.params.diagnostics_period_s, self._publish_diagnostics)
        if autostart or self.params.autostart:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    def _apply_params(self) -> None:
        """After a parameter change: the new values, and the synchroniser follows them at once."""
        self.params = node_params.read(self)
        if self._sync is not None:
            self._sync.set_tolerance(self.params.sync_tolerance_s, self.params.sync_window_s)
            self._sync.mode = self.params.camera_info_mode
        if self._depth_sync is not None:
            self._depth_sync.set_tolerance(self.params.sync_tolerance_s, self.params.sync_window_s)

    # ---- lifecycle -------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._aligner, self._lookup = load_aligner(self.params)
        except AlignerLoadError as exc:
            self.get_logger().error(f"configure failed: {bounded(exc)}")
            self.stats.error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        reason = node_params.check_class_filter(self.params.classes, model_classes(self._aligner))
        if reason:
            self._aligner = self._lookup = None
            self.get_logger().error(f"configure failed: {bounded(reason)}")
            self.stats.error(f"configure failed: {reason}")
            return TransitionCallbackReturn.FAILURE
        self._tracker = ObjectTracker(max_distance_m=self.params.track_max_distance_m,
                                      max_missed=self.params.track_max_missed)
        reliable = QoSProfile(depth=10)
        self._pubs = {
            "alignments": self.create_lifecycle_publisher(ObjectAlignmentArray, "~/alignments", reliable),
            "detections": self.create_lifecycle_publisher(Detection3DArray, "~/detections", reliable),
            "poses": self.create_lifecycle_publisher(PoseArray, "~/poses", reliable),
            "markers": self.create_lifecycle_publisher(MarkerArray, "~/markers", reliable),
            "debug_image": self.create_lifecycle_publisher(Image, "~/debug_image", reliable),
        }
        # Always created, so that publish_tf false -> true at run time takes effect at once.
        self._pubs["tf"] = self.create_lifecycle_publisher(TFMessage, "/tf", QoSProfile(depth=100))
        if self.params.map_frame or self.params.floor_frame:
            self._tf = TfListener(self, self.stats, tf_prefix=self.params.tf_prefix,
                                  tolerance_s=self.params.map_tf_tolerance_s)
        if self.params.map_frame:
            self._map = ObjectMapLayer(self, self.params, self.stats, lookup=self._lookup, tf_publisher=self._pubs["tf"],
                                       model_name=str(getattr(self._aligner, "model_name", "")),
                                       symmetry_of=_symmetry_table(self._aligner), tf=self._tf)
        self._sync = StampSynchronizer(tolerance_s=self.params.sync_tolerance_s, window_s=self.params.sync_window_s,
                                       mode=self.params.camera_info_mode)
        self._depth_sync = DepthMatcher(tolerance_s=self.params.sync_tolerance_s,
                                        window_s=self.params.sync_window_s) if self.params.depth_topic else None
        self.stats.clear_error()  # an error of an earlier, failed configure is no longer true
        self._worker = FrameWorker(self._process, on_error=self._on_worker_error, name="cad-perception-worker")
        self.get_logger().info(f"configured: model {getattr(self._aligner, 'model_name', '?')}")
        self.state_label = "inactive"
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        qos = QoSProfile(depth=self.params.qos_depth, history=qos_profile_sensor_data.history,
                         durability=qos_profile_sensor_data.durability,
                         reliability=ReliabilityPolicy.RELIABLE if self.params.qos_reliability == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
        # Images raw (serialised): image_cdr parses them without building a Python Image (full-size frames).
        self._subs = [self.create_subscription(Image, self.params.image_topic, self._on_image, qos, raw=True),
                      self.create_subscription(CameraInfo, self.params.camera_info_topic, self._on_info, qos)]
        if self.params.depth_topic:
            self._subs.append(self.create_subscription(Image, self.params.depth_topic, self._on_depth, qos, raw=True))
        if self._tf is not None:
            self._tf.activate()
        self.state_label = "active"
        self.get_logger().info(f"active: listening on {' + '.join(sub.topic_name for sub in self._subs)}")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._tf is not None:
            self._tf.deactivate()
        self.state_label = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        self.state_label = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._release()
        self.state_label = "finalized"
        return super().on_shutdown(state)

    def _release(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        if self._map is not None:
            self._map.destroy()
            self._map = None
        if self._tf is not None:
            self._tf.deactivate()
            self._tf = None
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs, self._worker, self._sync, self._aligner, self._lookup = {}, None, None, None, None
        self._depth_sync = None
        self._tracker = None

    # ---- input -----------------------------------------------------------------------------
    def _on_image(self, serialised: bytes) -> None:
        self.stats.image_arrived()
        try:
            msg = parse_image(serialised)
        except InputError as exc:
            self._reject(exc.kind, str(exc))
            return
        if self._sync is not None:
            self._dispatch(self._sync.add_image(conv.stamp_to_ns(msg.header.stamp), msg))

    def _on_info(self, msg: CameraInfo) -> None:
        if self._sync is not None:
            self._dispatch(self._sync.add_info(conv.stamp_to_ns(msg.header.stamp), msg))

    def _on_depth(self, serialised: bytes) -> None:
        try:
            msg = parse_image(serialised)
        except InputError as exc:
            self._depth_problem("encoding", f"depth image: {exc}")
            return
        if self._depth_sync is not None:
            self._dispatch_depth(self._depth_sync.add_depth(conv.stamp_to_ns(msg.header.stamp), msg))

    def _dispatch_depth(self, result) -> None:
        """Decode each ready frame's depth (RGB alone when it is missing or unusable) and submit it."""
        p = self.params
        for depth_msg in result.unmatched_depths:
            self._depth_problem("unmatched", f"depth image {_stamp_str(depth_msg)} matched no colour image "
                                             f"(within {p.sync_tolerance_s} s) on {p.image_topic}")
        for (header, rgb, K, _), depth_msg in result.ready:
            depth = None
            if depth_msg is None:
                self._depth_problem("missing", f"no depth image with the stamp of image {_stamp_str_of(header)} "
                                               f"on {p.depth_topic}: served on RGB alone")
            else:
                try:
                    depth = conv.depth_from_image_msg(depth_msg, rgb.shape[:2], p.depth_scale, (p.depth_min_m, p.depth_max_m))
                except ValueError as exc:
                    kind = str(getattr(exc, "kind", "depth_encoding")).removeprefix("depth_")
                    self._depth_problem(kind, f"depth image {_stamp_str(depth_msg)}: {exc}; served on RGB alone")
            if self._worker is not None:
                self._worker.submit((header, rgb, K, depth))

    def _depth_problem(self, kind: str, message: str) -> None:
        self.stats.depth_fallback(kind, message)
        now = time.monotonic()
        if now - self._last_warn.get(f"depth_{kind}", -1e9) >= WARN_PERIOD_S:
            self._last_warn[f"depth_{kind}"] = now
            self.get_logger().warning(f"depth {kind}: {bounded(message)}")

    def _dispatch(self, result) -> None:
        if result.reset:
            self.get_logger().warning("input stamps jumped backwards: synchroniser reset")
            self._reset_tracks = True  # the worker thread resets the tracker before its next frame
        for image in result.unmatched_images:
            hint = " (a driver that publishes CameraInfo slower or latched needs camera_info_mode: latest)" \
                if self.params.camera_info_mode == "exact" else ""
            self._reject("no_camera_info", f"no CameraInfo with the stamp of image {_stamp_str(image)} "
                         f"(within {self.params.sync_tolerance_s} s) on {self.params.camera_info_topic}{hint}")
        for image in result.duplicates:
            self._reject("duplicate_stamp", f"image {_stamp_str(image)} has the stamp of an image already served")
        for image, info in result.matched:
            frame = self._validate(image, info)
            if frame is not None and self._depth_sync is not None:
                self._dispatch_depth(self._depth_sync.add_frame(conv.stamp_to_ns(image.header.stamp), frame))
            elif frame is not None and self._worker is not None:
                self._worker.submit(frame)

    def _validate(self, image: Image, info: CameraInfo):
        """Decode and check a pair in the callback (cheap), so every malformed frame is counted
        even when the drop-oldest queue would have replaced it. Returns (header, rgb, K, None) or None
        (the depth slot is filled by _dispatch_depth)."""
        if image.width * image.height > self.params.max_image_pixels:
            self._reject("too_large", f"image {_stamp_str(image)} is {image.width}x{image.height}, more than "
                                      f"max_image_pixels {self.params.max_image_pixels}")
            return None
        if 0 < min(image.width, image.height) < MIN_IMAGE_SIDE:
            self._reject("too_small", f"image {_stamp_str(image)} is {image.width}x{image.height}, smaller than "
                                      f"{MIN_IMAGE_SIDE} pixels on a side")
            return None
        try:
            rgb = conv.rgb_from_image_msg(image)  # (H, W, 3) uint8
            K = conv.camera_matrix(info, (image.height, image.width),
                                   use_rectified=self.params.use_rectified_intrinsics)  # (3, 3)
            self._warn_camera_info_once(info, (image.height, image.width))
        except InputError as exc:
            self._reject(exc.kind, f"image {_stamp_str(image)}: {exc}")
            return None
        return image.header, rgb, K, None

    def _warn_camera_info_once(self, info: CameraInfo, image_size: tuple[int, int]) -> None:
        """One warning each: distortion served unrectified, binning/ROI assumed already applied."""
        if not self.params.use_rectified_intrinsics and conv.has_distortion(info) \
                and "distortion" not in self._warned_once:
            self._warned_once.add("distortion")
            self.get_logger().warning(
                f"CameraInfo has non-zero distortion D={[round(float(d), 4) for d in info.d][:8]} and the image is "
                "used as it is (not undistorted): poses will be biased, most near the image borders. Feed the "
                "rectified image (image_proc) with use_rectified_intrinsics: true.")
        if conv.binning_already_applied(info, image_size) and "binning" not in self._warned_once:
            self._warned_once.add("binning")
            self.get_logger().warning(
                f"CameraInfo sets binning {info.binning_x}x{info.binning_y} / ROI but its size already equals the "
                f"image's ({image_size[1]}x{image_size[0]}): assuming K describes the binned image as it is.")

    def _reject(self, kind: str, message: str) -> None:
        self.stats.reject(kind, message)
        now = time.monotonic()
        if now - self._last_warn.get(kind, -1e9) >= WARN_PERIOD_S:
            self._last_warn[kind] = now
            self.get_logger().warning(f"frame rejected ({kind}): {bounded(message)}")

    def _on_worker_error(self, exc: BaseException) -> None:
        self.stats.error(f"{type(exc).__name__}: {exc}")
        self.get_logger().error(f"processing failed: {type(exc).__name__}: {bounded(exc)}", throttle_duration_sec=WARN_PERIOD_S)

    # ---- processing (worker thread) ----------------------------------------------------------
    def _process(self, frame) -> None:
        header, rgb, K, depth = frame
        start = time.perf_counter()
        aligner, lookup, tracker = self._aligner, self._lookup, self._tracker
        if aligner is None or tracker is None:
            return
        if self._reset_tracks:
            self._reset_tracks = False
            tracker.reset()
        floor = self._floor_at(header) if self.params.floor_frame else None
        object_map = self._map
        fuse_score = self.params.map_fuse_score if object_map is not None else None
        candidates = run_aligner(aligner, rgb, K, self.params, depth, floor, fuse_score)  # thresholds applied once
        predictions = [p for p in candidates if passes_score(p.score, self.params.score_threshold)]
        pipeline_ms = getattr(aligner, "last_timings", {}).get("total")
        self._publish(header, predictions, tracker.update(predictions), lookup, rgb, K)
        if object_map is not None:
            object_map.fuse(header, candidates, K, rgb.shape[:2])
        latency_ms = (self.get_clock().now().nanoseconds - conv.stamp_to_ns(header.stamp)) / 1e6
        self.stats.frame_done((time.perf_counter() - start) * 1e3, latency_ms, len(predictions), pipeline_ms,
                              with_depth=depth is not None)

    def _floor_at(self, header):
        """The floor plane (camera frame) of floor_frame at the image stamp, or None (counted, warned)."""
        listener, frame = self._tf, self.params.floor_frame
        if listener is None:
            return None
        stamp_ns = conv.stamp_to_ns(header.stamp)
        try:
            return floor_from_camera_pose(listener.lookup(frame, header.frame_id, stamp_ns).matrix())
        except (TfLookupError, ValueError) as exc:  # ValueError: a camera at or below that floor
            message = f"no floor: {header.frame_id!r} in {frame!r} at {stamp_ns * 1e-9:.3f} s: {exc}"
            self.stats.frame_without_floor(message)
            self.get_logger().warning(bounded(message), throttle_duration_sec=WARN_PERIOD_S)
            return None

    def _publish(self, header, predictions, tracks, lookup, rgb, K) -> None:
        """Outputs of one frame; object names and marker ids come from the tracks (one per prediction)."""
        pubs, p = self._pubs, self.params
        names = [t.name for t in tracks]
        frames = conv.object_frames(predictions, p.tf_prefix, names) if p.publish_tf and "tf" in pubs else None
        model = str(getattr(self._aligner, "model_name", ""))
        pubs["alignments"].publish(conv.alignments_msg(header, predictions, lookup, model=model, tf_frames=frames))
        pubs["detections"].publish(conv.detections_msg(header, predictions, lookup, ids=names))
        pubs["poses"].publish(conv.poses_msg(header, predictions))
        if frames is not None and predictions:
            pubs["tf"].publish(conv.tf_msg(header, predictions, frames))
        ids = [t.track_id for t in tracks]
        pubs["markers"].publish(conv.markers_msg(header, predictions, lookup, marker_ids=ids, lifetime_s=p.marker_lifetime_s,
                                                 clear=bool(self._previous_ids - set(ids))))
        self._previous_ids = set(ids)
        debug = pubs["debug_image"]
        if p.debug_image and debug.get_subscription_count() > 0:
            debug.publish(conv.image_msg(header, draw_overlay(rgb, predictions, K), "rgb8"))

    def _publish_diagnostics(self) -> None:
        dropped = self._worker.dropped if self._worker is not None else 0
        snapshot = self.stats.snapshot(dropped)
        self._diag_pub.publish(diagnostics_msg(self.get_clock().now().to_msg(),
                                               f"{self.get_fully_qualified_name()}: cad perception",
                                               self.get_fully_qualified_name(), snapshot, state=self.state_label))


def _symmetry_table(aligner):
    """cad_id -> symmetry of the aligner's CAD database ("none" for unknown ids or without one)."""
    database = getattr(aligner, "cad_database", None)
    table = {m.cad_id: m.symmetry for m in database} if database is not None else {}
    return lambda cad_id: table.get(cad_id, "none")


def _stamp_str(image: Image) -> str:
    return _stamp_str_of(image.header)


def _stamp_str_of(header) -> str:
    return f"{header.stamp.sec}.{header.stamp.nanosec:09d}"


def main(args: list[str] | None = None) -> None:
    """Entry point `cad_perception_node` (`--autostart` = plain node, no lifecycle manager)."""
    argv = sys.argv if args is None else args
    try:
        run_node(argv, lambda: CadPerceptionNode(autostart="--autostart" in remove_ros_args(argv)))
    except (ValueError, rclpy.exceptions.InvalidParameterValueException) as exc:
        print(f"cad_perception_node: invalid parameter: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
