"""The object map in the node (map_frame): a camera moving through a static scene, its pose on
/tf (odom -> cam_optical) and /tf_static (map -> odom). The fused object stays where it is in
map_frame with one stable name while its camera-frame pose moves; a frame without TF at its stamp
is not fused and is counted in /diagnostics; ~/clear_map forgets the map."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

pytestmark = [pytest.mark.ros, pytest.mark.timeout(90)]
rclpy = pytest.importorskip("rclpy")

NS, CAM = "/map_test", "/map_cam"
OUT = f"{NS}/cad_perception"
S = 1_000_000_000
STAMPS = [100 * S, 101 * S, 102 * S]


def rigid(rotvec, t) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = Rotation.from_rotvec(rotvec).as_matrix(), t
    return m


WORLD_CHAIR = rigid([0.2, 0.5, 0.1], [1.0, 0.5, 3.0])  # canonical -> map
MAP_ODOM = rigid([0.0, 0.0, 0.3], [0.5, -0.2, 0.0])
CAMERAS = [rigid([0.0, 0.05 * k, 0.0], [0.3 * k, 0.0, 0.1 * k]) for k in range(3)]  # camera_to_map, moving


def chair_seen_from(camera_to_map: np.ndarray):
    from cad_perception_ros.types import Alignment9D, CadPrediction
    in_camera = np.linalg.inv(camera_to_map) @ WORLD_CHAIR
    return CadPrediction(class_id=5, class_name="chair", score=0.9, box_xyxy=np.array([10.0, 10, 40, 40]),
                         alignment=Alignment9D(in_camera[:3, :3], in_camera[:3, 3], np.array([0.5, 0.9, 0.6])),
                         cad_id="chair_a")


@pytest.fixture(scope="module")
def map_session(tmp_path_factory, apply_env, dds_env, make_image, start_node, stop_process, unique_domain_id,
                CameraClient):
    from cad_perception_ros.ros.aligners import image_key, write_fixture
    tmp = tmp_path_factory.mktemp("map_node")
    images = [make_image(40 + k) for k in range(5)]
    by_image = {image_key(images[k]): [chair_seen_from(CAMERAS[min(k, 2)])] for k in range(5)}
    fixture = write_fixture(tmp / "fixture.json", by_image=by_image)
    env = dds_env(unique_domain_id(3))
    apply_env(env)
    proc = start_node(env, ["-p", f"model:=fixture:{fixture}", "-r", f"__ns:={NS}", "-p", f"image_topic:={CAM}/image",
                            "-p", f"camera_info_topic:={CAM}/camera_info", "-p", "diagnostics_period_s:=0.2",
                            "-p", "map_frame:=map"], tmp / "node.log")
    rclpy.init()
    try:
        yield MapClient(CameraClient(rclpy, camera=CAM, out_ns=OUT), images), proc, tmp
    finally:
        stop_process(proc)
        rclpy.try_shutdown()


class MapClient:
    """The conftest CameraClient (camera publishers, output subscribers, executor) plus /tf and
    /tf_static publishers and subscribers to ~/objects and /diagnostics; frames with chosen stamps."""

    def __init__(self, camera, images):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, QoSProfile
        from tf2_msgs.msg import TFMessage

        from cad_perception_ros.msg import ObjectAlignmentArray
        self.camera, self.images = camera, images
        self.node, self.executor = camera.node, camera.executor
        self.image_pub, self.info_pub, self.spin_until = camera.image_pub, camera.info_pub, camera.spin_until
        self.tf_pub = self.node.create_publisher(TFMessage, "/tf", QoSProfile(depth=100))
        self.static_pub = self.node.create_publisher(
            TFMessage, "/tf_static", QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.got = {"objects": [], "diagnostics": []}
        for name, msg_type, topic in (("objects", ObjectAlignmentArray, f"{OUT}/objects"),
                                      ("diagnostics", DiagnosticArray, "/diagnostics")):
            self.node.create_subscription(msg_type, topic, lambda m, n=name: self.got[n].append(m), 100)

    def transform(self, parent: str, child: str, stamp_ns: int, matrix: np.ndarray):
        from geometry_msgs.msg import TransformStamped

        from cad_perception_ros.ros import conversions as conv
        msg = TransformStamped()
        msg.header.stamp, msg.header.frame_id, msg.child_frame_id = conv.ns_to_stamp(stamp_ns), parent, child
        x, y, z, w = Rotation.from_matrix(matrix[:3, :3]).as_quat()
        msg.transform.rotation.x, msg.transform.rotation.y, msg.transform.rotation.z, msg.transform.rotation.w = x, y, z, w
        msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = matrix[:3, 3]
        return msg

    def publish_image(self, k: int, stamp_ns: int, make_K) -> None:
        from std_msgs.msg import Header

        from cad_perception_ros.ros import conversions as conv
        header = Header(stamp=conv.ns_to_stamp(stamp_ns), frame_id="cam_optical")
        image = self.images[k]
        self.info_pub.publish(conv.camera_info_msg(header, make_K(), image.shape[:2]))
        self.image_pub.publish(conv.image_msg(header, image, "rgb8"))

    def serve(self, k: int, stamp_ns: int, make_K, output: str, timeout: float = 20.0, retry_s: float = 3.0):
        """Publish image k with this stamp (again every retry_s: the first frames after discovery
        can be lost) until `output` arrives for the stamp; returns that message."""
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.publish_image(k, stamp_ns, make_K)
            try:
                self.spin_until(lambda: self.by_stamp(output, stamp_ns) is not None,
                                min(retry_s, max(deadline - time.monotonic(), 0.1)), output)
                return self.by_stamp(output, stamp_ns)
            except AssertionError:
                continue
        raise AssertionError(f"{output} of stamp {stamp_ns} never arrived (node: {self.diagnostic('frames_received')} "
                             f"received, {self.diagnostic('frames_processed')} processed, {self.diagnostic('last_error')})")

    def by_stamp(self, name: str, stamp_ns: int):
        if name != "objects":
            return self.camera.by_stamp(name, stamp_ns)  # the node's per-frame outputs
        from cad_perception_ros.ros.conversions import stamp_to_ns
        return next((m for m in self.got[name] if stamp_to_ns(m.header.stamp) == stamp_ns), None)

    def diagnostic(self, key: str):
        for msg in reversed(self.got["diagnostics"]):
            for status in msg.status:
                if status.name.startswith(OUT):
                    values = {kv.key: kv.value for kv in status.values}
                    if key in values:
                        return values[key]
        return None


def pose_matrix(pose) -> np.ndarray:
    m = np.eye(4)
    q = pose.orientation
    m[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    m[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
    return m


def test_moving_camera_fused_object_stays_put_with_one_name(map_session, make_K):
    from tf2_msgs.msg import TFMessage
    client, proc, _ = map_session
    client.spin_until(lambda: (client.image_pub.get_subscription_count() > 0 and client.tf_pub.get_subscription_count() > 0
                               and client.static_pub.get_subscription_count() > 0) or proc.poll() is not None,
                      30.0, "the node to subscribe to the camera and TF")
    assert proc.poll() is None
    client.static_pub.publish(TFMessage(transforms=[client.transform("map", "odom", 0, MAP_ODOM)]))
    odom_cam = [np.linalg.inv(MAP_ODOM) @ c for c in [CAMERAS[0], *CAMERAS]]  # still from 99 s to 100 s
    dynamic = TFMessage(transforms=[client.transform("odom", "cam_optical", s, m)
                                    for s, m in zip([99 * S, *STAMPS], odom_cam)])
    warm_up = None  # the first /tf messages after discovery can be lost: until one frame is fused
    for attempt in range(10):
        client.tf_pub.publish(dynamic)
        stamp = 99 * S + attempt * 50_000_000
        try:
            warm_up = client.serve(0, stamp, make_K, "objects", timeout=3.0)
            break
        except AssertionError:
            continue
    assert warm_up is not None, "no frame was ever fused"
    names, camera_poses = set(), []
    for k, stamp in enumerate(STAMPS):
        fused = client.serve(k, stamp, make_K, "objects")
        assert fused.header.frame_id == "map" and len(fused.objects) == 1
        np.testing.assert_allclose(pose_matrix(fused.objects[0].pose), WORLD_CHAIR, atol=1e-5)
        names.add(fused.objects[0].tf_frame)
        client.spin_until(lambda: client.by_stamp("alignments", stamp) is not None, 10.0, "~/alignments")
        camera_poses.append(pose_matrix(client.by_stamp("alignments", stamp).objects[0].pose))
    assert names == {"cad_map_chair_0"}
    assert np.linalg.norm(camera_poses[0][:3, 3] - camera_poses[2][:3, 3]) > 0.3  # moved in the camera frame
    client.spin_until(lambda: any(t.child_frame_id == "cad_map_chair_0" and t.header.frame_id == "map"
                                  for _, m in client.camera.got["tf"] for t in m.transforms), 10.0, "the map object's TF frame")


def test_frame_without_tf_is_not_fused_and_counted(map_session, make_K):
    client, proc, _ = map_session
    stamp = 200 * S  # far after the last odom -> cam_optical sample
    client.serve(3, stamp, make_K, "alignments")
    client.spin_until(lambda: int(client.diagnostic("frames_not_fused_no_tf") or 0) >= 1, 10.0,
                      "frames_not_fused_no_tf in /diagnostics")
    assert client.by_stamp("objects", stamp) is None and proc.poll() is None
    assert "extrapolation into the future" in client.diagnostic("last_error")


@pytest.mark.skipif(importlib.util.find_spec("std_srvs") is None, reason="std_srvs not built (scripts/setup_env.sh)")
def test_clear_map_service_forgets_the_objects(map_session, make_K):
    from std_srvs.srv import Trigger
    client, proc, _ = map_session
    service = client.node.create_client(Trigger, f"{OUT}/clear_map")
    client.spin_until(service.service_is_ready, 15.0, "~/clear_map")
    future = service.call_async(Trigger.Request())
    client.spin_until(future.done, 10.0, "the clear_map reply")
    assert future.result().success and "cleared 1" in future.result().message
    stamp = int(101.5 * S)  # between two TF samples: interpolated
    (obj,) = client.serve(4, stamp, make_K, "objects").objects
    assert obj.tf_frame == "cad_map_chair_1"  # a new object: the old id never comes back
