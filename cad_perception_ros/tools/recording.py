"""The demo's ROS side: node process, camera player, raw recorder to a rosbag2 MCAP bag
(bag_mcap.py: channel type hashes and offered QoS as rosbag2 writes them), overlay PNGs, latency
and accuracy against the ground truth."""
from __future__ import annotations

import importlib
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image as PILImage
from tqdm import tqdm

from cad_perception_ros.paths import asset_root
from cad_perception_ros.ros.conversions import prediction_from_alignment, rgb_from_image_msg, stamp_to_ns
from cad_perception_ros.tools.bag_mcap import Rosbag2McapWriter, qos_dict
from cad_perception_ros.tools.camera_player import CameraPlayer
from cad_perception_ros.tools.demo_report import accuracy, last_diagnostics, latency_stats

PACKAGE_ROOT = asset_root()
NODE_NS, CAMERA = "/cad_perception", "/camera"
TOPICS = {  # topic -> ROS type
    f"{NODE_NS}/alignments": "cad_perception_ros/msg/ObjectAlignmentArray",
    f"{NODE_NS}/detections": "vision_msgs/msg/Detection3DArray",
    f"{NODE_NS}/poses": "geometry_msgs/msg/PoseArray",
    f"{NODE_NS}/markers": "visualization_msgs/msg/MarkerArray",
    f"{NODE_NS}/debug_image": "sensor_msgs/msg/Image",
    "/tf": "tf2_msgs/msg/TFMessage",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
    f"{CAMERA}/image": "sensor_msgs/msg/Image",
    f"{CAMERA}/camera_info": "sensor_msgs/msg/CameraInfo",
}


def typestore():
    """rosbags typestore (Kilted) plus the project's and vision_msgs' definitions from .msg files."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for pkg, folder in (("cad_perception_ros", PACKAGE_ROOT / "msg"),
                        ("vision_msgs", PACKAGE_ROOT / "interfaces" / "vision_msgs" / "msg")):
        for path in sorted(folder.glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(), f"{pkg}/msg/{path.stem}"))
    store.register(types)
    return store


def offered_qos(infos) -> list[dict]:
    """rosbag2's offered_qos_profiles of a topic's publishers (rclpy TopicEndpointInfo list)."""
    return [qos_dict(reliability=i.qos_profile.reliability.name.lower(), durability=i.qos_profile.durability.name.lower(),
                     history=i.qos_profile.history.name.lower(), depth=int(i.qos_profile.depth),
                     liveliness=i.qos_profile.liveliness.name.lower()) for i in infos]


def type_hash_str(type_hash) -> str:
    """rclpy TypeHash -> "RIHS01_<hex>"."""
    return f"RIHS{int(type_hash.version):02d}_{bytes(type_hash.value).hex()}"


def ros_class(type_name: str):
    pkg, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class DemoSession:
    """Context manager: node process + recorder node; `play()` streams the samples."""

    def __init__(self, out: Path, samples, overrides: list[str], cfg):
        self.out, self.samples, self.overrides, self.cfg = out, samples, overrides, cfg
        self.messages: dict[str, list[tuple[int, bytes]]] = {t: [] for t in TOPICS}

    def __enter__(self):
        import rclpy
        self.log = open(self.out / "node.log", "w")
        cmd = [sys.executable, "-m", "cad_perception_ros.ros.node", "--autostart", "--ros-args",
               "--params-file", str(PACKAGE_ROOT / "config" / "cad_perception.yaml"), "-r", "__ns:=/",
               "-r", f"image:={CAMERA}/image", "-r", f"camera_info:={CAMERA}/camera_info", *self.overrides]
        if self.cfg.depth:
            cmd += ["-p", f"depth_topic:={CAMERA}/depth"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=str(PACKAGE_ROOT))
        rclpy.init()
        self.node = rclpy.create_node("demo_recorder")
        self.store = typestore()
        self.writer = Rosbag2McapWriter(self.out / "bag")
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        for topic, type_name in TOPICS.items():
            qos = qos_profile_sensor_data if topic.startswith(CAMERA) else QoSProfile(depth=100)
            self.node.create_subscription(ros_class(type_name), topic,
                                          lambda raw, t=topic: self._record(t, raw), qos, raw=True)
        return self

    def _record(self, topic: str, raw: bytes) -> None:
        now = time.time_ns()
        self.messages[topic].append((now, raw))
        if topic not in self.writer.topics:  # its publisher is known now: type hash and offered QoS from discovery
            self._add_topic(topic)
        self.writer.write(topic, now, raw)

    def _add_topic(self, topic: str) -> None:
        msgtype = TOPICS[topic]
        infos = [i for i in self.node.get_publishers_info_by_topic(topic) if i.node_name != "demo_recorder"]
        hashes = {type_hash_str(i.topic_type_hash) for i in infos if int(i.topic_type_hash.version) > 0}
        type_hash = hashes.pop() if len(hashes) == 1 else self.store.hash_rihs01(msgtype)
        msgdef, _ = self.store.generate_msgdef(msgtype, ros_version=2)
        self.writer.add_topic(topic, msgtype, msgdef, type_hash, offered_qos(infos))

    def play(self) -> None:
        import rclpy
        deadline = time.monotonic() + 60.0
        while not self._node_listening():  # node configured + active
            rclpy.spin_once(self.node, timeout_sec=0.1)
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the node did not start; see {self.out / 'node.log'}:\n"
                                   + (self.out / "node.log").read_text()[-2000:])
        self.player = CameraPlayer(self.samples, rate_hz=self.cfg.rate_hz, camera=CAMERA, depth=self.cfg.depth)
        if self.cfg.lockstep:  # one frame in flight: the next view goes out when the last was answered
            self.player.timer.cancel()
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(self.node)
        executor.add_node(self.player)
        with tqdm(total=len(self.samples), unit="frame", desc="demo") as bar:
            last_progress = time.monotonic()
            while time.monotonic() - last_progress < self.cfg.frame_timeout_s:
                executor.spin_once(timeout_sec=0.05)
                done = len(self.answered())
                if self.cfg.lockstep and not self.player.done and done >= len(self.player.played):
                    self.player.publish_next()
                    last_progress = time.monotonic()
                if done > bar.n:
                    bar.update(done - bar.n)
                    last_progress = time.monotonic()
                if self.player.done and done >= len(self.player.played):
                    break
        end = time.monotonic() + 1.5  # let the last diagnostics / markers arrive
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)

    def _node_listening(self) -> bool:
        return any(info.node_name == "cad_perception"
                   for info in self.node.get_subscriptions_info_by_topic(f"{CAMERA}/image"))

    def answered(self) -> dict[int, tuple[int, object]]:
        """{image stamp ns: (arrival ns, ObjectAlignmentArray)} of played frames."""
        from rclpy.serialization import deserialize_message

        from cad_perception_ros.msg import ObjectAlignmentArray
        if not hasattr(self, "_decoded"):
            self._decoded = {}
        out = {}
        for arrival, raw in self.messages[f"{NODE_NS}/alignments"]:
            if raw not in self._decoded:
                self._decoded[raw] = deserialize_message(raw, ObjectAlignmentArray)
            msg = self._decoded[raw]
            stamp = stamp_to_ns(msg.header.stamp)
            if hasattr(self, "player") and stamp in self.player.played:
                out[stamp] = (arrival, msg)
        return out

    def __exit__(self, *exc):
        import rclpy
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.writer.close()
        self.node.destroy_node()
        if hasattr(self, "player"):
            self.player.destroy_node()
        rclpy.try_shutdown()
        self.log.close()
        return False

    def published_predictions(self) -> dict[int, list]:
        """{view index: [CadPrediction]} decoded from the ~/alignments the node published."""
        return {self.player.played[stamp]: [prediction_from_alignment(o) for o in msg.objects]
                for stamp, (_, msg) in sorted(self.answered().items())}

    def node_diagnostics(self) -> dict[str, str]:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.serialization import deserialize_message
        return last_diagnostics([deserialize_message(raw, DiagnosticArray) for _, raw in self.messages["/diagnostics"]])

    def summary(self, mode: str, run_time_s: float, database=None) -> dict:
        """Frames, latency (image stamp -> arrival of ~/alignments here), the node's own figures
        from /diagnostics, and Scan2CAD accuracy of the published predictions (evaluation/metrics.py)."""
        answered = self.answered()
        latencies = [(arrival - stamp) / 1e6 for stamp, (arrival, _) in answered.items()]
        published = self.published_predictions() if hasattr(self, "player") else {}
        diag = self.node_diagnostics()
        keys = ("frames_processed", "frames_dropped", "pipeline_latency_ms_p50", "processing_latency_ms_p50",
                "stamp_to_publish_latency_ms_p50", "stamp_to_publish_latency_ms_p95", "errors", "last_error")
        return {"model": mode, "frames_played": len(self.player.played) if hasattr(self, "player") else 0,
                "frames_processed": len(answered), "run_time_s": round(run_time_s, 2),
                "latency_ms": latency_stats(latencies), "node": {k: diag[k] for k in keys if k in diag},
                "accuracy": accuracy([(preds, self.samples[i].objects) for i, preds in sorted(published.items())],
                                     database),
                "bag": str(self.out / "bag"), "overlays": self.write_overlays(),
                "messages": {t: len(v) for t, v in self.messages.items()}}

    def write_overlays(self) -> list[str]:
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import Image
        paths = []
        for i, (_, raw) in enumerate(self.messages[f"{NODE_NS}/debug_image"][: self.cfg.overlays]):
            path = self.out / f"overlay_{i}.png"
            PILImage.fromarray(rgb_from_image_msg(deserialize_message(raw, Image))).save(path)
            paths.append(str(path))
        return paths
