"""Shared data for the node tests with a real model: a random-weight tiny RocaNet model dir over a
procedural CAD database, rendered views with ground truth, and a camera + listener client."""
from __future__ import annotations

import time
from pathlib import Path

from data_fixtures import procedural_db_dir

OUTPUTS = ("alignments", "detections", "poses", "tf", "markers", "debug_image")


def tiny_model_and_views(root: Path, views: int = 3):
    """(model_dir, db_dir, dataset): random-weight roca_tiny model (all 9 classes) and `views`
    rendered 96x128 views of one procedural scene (SyntheticDataset, split val)."""
    from cad_perception_ros.data.dataset import SyntheticDataset
    from cad_perception_ros.data.generate import GenerateConfig, generate_split
    from cad_perception_ros.runtime.random_model import save_random_model_dir

    db_dir = procedural_db_dir()
    model_dir = save_random_model_dir(root / "model", cad_db=db_dir, seed=0)
    generate_split(root / "data", GenerateConfig(split="val", scenes=1, views_per_scene=views, image_size=(96, 128)),
                   db_dir=db_dir, progress=False)
    return model_dir, db_dir, SyntheticDataset(root / "data", "val")


class CameraClient:
    """Camera publisher (reliable) and subscribers to every output of the node under `out_ns`."""

    def __init__(self, rclpy, *, camera: str, out_ns: str):
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile
        from geometry_msgs.msg import PoseArray
        from sensor_msgs.msg import CameraInfo, Image
        from tf2_msgs.msg import TFMessage
        from vision_msgs.msg import Detection3DArray
        from visualization_msgs.msg import MarkerArray
        from cad_perception_ros.msg import ObjectAlignmentArray
        self.node = rclpy.create_node("camera_and_listener")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.camera = camera
        self.image_pub = self.node.create_publisher(Image, f"{camera}/image", QoSProfile(depth=5))
        self.info_pub = self.node.create_publisher(CameraInfo, f"{camera}/camera_info", QoSProfile(depth=5))
        self.topics = {"alignments": (ObjectAlignmentArray, f"{out_ns}/alignments"),
                       "detections": (Detection3DArray, f"{out_ns}/detections"),
                       "poses": (PoseArray, f"{out_ns}/poses"), "tf": (TFMessage, "/tf"),
                       "markers": (MarkerArray, f"{out_ns}/markers"), "debug_image": (Image, f"{out_ns}/debug_image")}
        self.got: dict[str, list] = {name: [] for name in self.topics}
        for name, (msg_type, topic) in self.topics.items():
            self.node.create_subscription(msg_type, topic, lambda m, n=name: self.got[n].append((time.time_ns(), m)), 100)

    def spin_until(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.02)

    def wait_connected(self, timeout: float = 30.0, proc=None) -> None:
        """Until the node subscribes to the camera and publishes every output topic."""
        def ready():
            if proc is not None and proc.poll() is not None:
                raise AssertionError("node process exited")
            return (self.image_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0
                    and all(self.node.count_publishers(t) > 0 for _, t in self.topics.values()))
        self.spin_until(ready, timeout, "the node to subscribe and advertise its outputs")

    def publish(self, image, K, frame_id: str = "cam_optical") -> int:
        from std_msgs.msg import Header
        from cad_perception_ros.ros import conversions as conv
        stamp_ns = time.time_ns()
        header = Header(stamp=conv.ns_to_stamp(stamp_ns), frame_id=frame_id)
        self.info_pub.publish(conv.camera_info_msg(header, K, image.shape[:2]))
        self.image_pub.publish(conv.image_msg(header, image, "rgb8"))
        return stamp_ns

    def by_stamp(self, name: str, stamp_ns: int):
        from cad_perception_ros.ros.conversions import stamp_to_ns
        for arrival, m in self.got[name]:
            header = (m.transforms[0].header if name == "tf" and m.transforms else
                      m.markers[0].header if name == "markers" and m.markers else getattr(m, "header", None))
            if header is not None and stamp_to_ns(header.stamp) == stamp_ns:
                return m
        return None

    def serve(self, image, K, outputs=OUTPUTS, timeout: float = 20.0, retry_s: float = 6.0) -> int:
        """Publish the frame (again with a fresh stamp every retry_s) until all `outputs` arrived
        for one stamp; returns that stamp."""
        stamps, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            stamps.append(self.publish(image, K))
            t_next = min(time.monotonic() + retry_s, deadline)
            while time.monotonic() < t_next:
                self.executor.spin_once(timeout_sec=0.02)
                for s in stamps:
                    if all(self.by_stamp(n, s) is not None for n in outputs):
                        return s
        raise AssertionError(f"outputs {outputs} never arrived")
