"""The floor cue in the node (floor_frame): with the camera's pose in base_footprint on /tf_static,
an object seen too far away and too large (the same image) is brought back onto the floor; a frame
from a camera with no pose in floor_frame runs without the floor and is counted in /diagnostics."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(90)]
rclpy = pytest.importorskip("rclpy")

NS, CAM = "/floor_test", "/floor_cam"
OUT = f"{NS}/cad_perception"
CANONICAL_TO_WORLD = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
SIZE = np.array([0.5, 0.9, 0.6])  # metres, unit CAD box
OFF = 1.3  # the recorded prediction: depth and size 1.3x the truth


def camera_pose() -> np.ndarray:
    from cad_perception_ros.data.scenes import look_at
    return look_at(np.array([0.0, -3.0, 1.2]), np.array([0.2, 0.0, 0.45]))  # camera_to_base_footprint


def chair_in_camera(scale: float):
    from cad_perception_ros.types import Alignment9D
    pose = camera_pose()
    R, t = pose[:3, :3].T @ CANONICAL_TO_WORLD, pose[:3, :3].T @ (np.array([0.2, 0.0, SIZE[1] / 2]) - pose[:3, 3])
    return Alignment9D(R, t * scale, SIZE * scale)


@pytest.fixture(scope="module")
def floor_session(tmp_path_factory, apply_env, dds_env, start_node, stop_process, unique_domain_id):
    from cad_perception_ros.ros.aligners import write_fixture
    from cad_perception_ros.types import CadPrediction
    tmp = tmp_path_factory.mktemp("floor_node")
    chair = CadPrediction(class_id=5, class_name="chair", score=0.9, box_xyxy=np.array([200.0, 150, 420, 400]),
                          alignment=chair_in_camera(OFF), cad_id="chair_a")
    fixture = write_fixture(tmp / "fixture.json", default=[chair])
    env = dds_env(unique_domain_id(5))
    apply_env(env)
    proc = start_node(env, ["-p", f"model:=fixture:{fixture}", "-r", f"__ns:={NS}", "-p", f"image_topic:={CAM}/image",
                            "-p", f"camera_info_topic:={CAM}/camera_info", "-p", "diagnostics_period_s:=0.2",
                            "-p", "floor_frame:=base_footprint"], tmp / "node.log")
    rclpy.init()
    try:
        yield proc
    finally:
        stop_process(proc)
        rclpy.try_shutdown()


def _translation(msg) -> np.ndarray:
    p = msg.objects[0].pose.position
    return np.array([p.x, p.y, p.z])


def test_objects_stand_on_the_floor_of_floor_frame_and_a_camera_without_tf_is_counted(floor_session, CameraClient,
                                                                                       make_image, make_K):
    from geometry_msgs.msg import TransformStamped
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from scipy.spatial.transform import Rotation
    from tf2_msgs.msg import TFMessage
    proc = floor_session
    client = CameraClient(rclpy, camera=CAM, out_ns=OUT, diagnostics=True)
    static = client.node.create_publisher(TFMessage, "/tf_static",
                                          QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = "base_footprint", "cam_optical"
    pose = camera_pose()
    q = Rotation.from_matrix(pose[:3, :3]).as_quat()
    msg.transform.rotation.x, msg.transform.rotation.y, msg.transform.rotation.z, msg.transform.rotation.w = q
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = pose[:3, 3]
    client.wait_connected(proc=proc)
    client.spin_until(lambda: static.get_subscription_count() > 0, 20.0, "the node to subscribe to /tf_static")
    static.publish(TFMessage(transforms=[msg]))
    image, K = make_image(7, 480, 640), make_K(480, 640)
    truth, off = chair_in_camera(1.0).translation, chair_in_camera(OFF).translation
    moved = None
    for _ in range(10):  # until the static transform has arrived
        stamp = client.serve(image, K, outputs=("alignments",))
        t = _translation(client.by_stamp("alignments", stamp))
        if not np.allclose(t, off, atol=1e-6):
            moved = t
            break
    assert moved is not None, "the floor was never applied"
    assert np.linalg.norm(moved - truth) < 0.3 * np.linalg.norm(off - truth)
    np.testing.assert_allclose(np.cross(moved, off), 0.0, atol=1e-3)  # along its own ray
    other = CameraClient(rclpy, camera=CAM, out_ns=OUT, diagnostics=True, frame_id="other_cam", node_name="other_camera")
    other.wait_connected(proc=proc)
    stamp = other.serve(image, K, outputs=("alignments",))
    np.testing.assert_allclose(_translation(other.by_stamp("alignments", stamp)), off, atol=1e-5)
    other.spin_until(lambda: int(other.counters().get("frames_without_floor", 0)) >= 1, 10.0,
                     "frames_without_floor in /diagnostics")
    assert "other_cam" in other.counters()["last_error"] and proc.poll() is None
