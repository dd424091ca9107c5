"""The node with a registered depth topic: good depth is used; bad depth (wrong encoding, another
size, all zeros, NaN only), a missing depth and a depth stamp with no colour image are each counted
in /diagnostics, and the frame is still served on RGB alone."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]
rclpy = pytest.importorskip("rclpy")
NS = "/cp_depth"
H, W = 48, 64


@pytest.fixture(scope="module")
def camera(tmp_path_factory, apply_env, dds_env, make_image, make_K, start_node, stop_process, unique_domain_id,
           spin_until):
    from test_ros_node import ground_truth

    from cad_perception_ros.ros.aligners import write_fixture
    tmp = tmp_path_factory.mktemp("depth")
    fixture = write_fixture(tmp / "fixture.json", default=ground_truth(3, 1))
    env = dds_env(unique_domain_id(offset=60))
    apply_env(env)
    proc = start_node(env, ["-p", f"model:=fixture:{fixture}", "-r", f"__ns:={NS}", "-p", "depth_topic:=depth",
                            "-p", "diagnostics_period_s:=0.1", "-p", "qos_reliability:=reliable",
                            "-p", "sync_window_s:=0.5"], tmp / "node.log")
    rclpy.init()
    try:
        cam = DepthCamera(make_image(7), make_K(H, W))
        spin_until(cam.executor, lambda: cam.node.count_subscribers(f"{NS}/depth") > 0 and
                   cam.node.count_publishers(f"{NS}/cad_perception/alignments") > 0, 30.0, "node discovery")
        yield cam
    finally:
        stop_process(proc)
        rclpy.try_shutdown()


class DepthCamera:
    """Publishes colour image, CameraInfo and depth with one stamp; reads alignments and diagnostics."""

    def __init__(self, rgb, K):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, Image

        from cad_perception_ros.msg import ObjectAlignmentArray
        self.rgb, self.K = rgb, K
        self.node = rclpy.create_node("depth_camera")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.image_pub = self.node.create_publisher(Image, f"{NS}/image", 10)
        self.info_pub = self.node.create_publisher(CameraInfo, f"{NS}/camera_info", 10)
        self.depth_pub = self.node.create_publisher(Image, f"{NS}/depth", 10)
        self.alignments, self.diagnostics = [], []
        self.node.create_subscription(ObjectAlignmentArray, f"{NS}/cad_perception/alignments", self.alignments.append, 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 50)
        self.last_stamp = 0

    def counters(self) -> dict[str, str]:
        for msg in reversed(self.diagnostics):
            for status in msg.status:
                if status.name.startswith(f"{NS}/cad_perception"):
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def send(self, depth=None, *, colour=True, mutate_depth=None, skip_s: float = 0.0) -> int:
        from std_msgs.msg import Header

        from cad_perception_ros.ros import conversions as conv
        stamp = self.last_stamp = max(time.time_ns(), self.last_stamp + 50_000_000 + int(skip_s * 1e9))
        header = Header(stamp=conv.ns_to_stamp(stamp), frame_id="cam")
        if depth is not None:
            msg = conv.depth_image_msg(header, depth)
            if mutate_depth:
                mutate_depth(msg)
            self.depth_pub.publish(msg)
        if colour:
            self.info_pub.publish(conv.camera_info_msg(header, self.K, self.rgb.shape[:2]))
            self.image_pub.publish(conv.image_msg(header, self.rgb, "rgb8"))
        return stamp

    def stamps(self) -> set[int]:
        from cad_perception_ros.ros.conversions import stamp_to_ns
        return {stamp_to_ns(m.header.stamp) for m in self.alignments}

    def count(self, key: str) -> int:
        return int(self.counters().get(key, -1))

    def settled(self, key: str) -> int:
        """The counter once the frames served so far are done: after 3 more diagnostics messages."""
        target = len(self.diagnostics) + 3
        deadline = time.monotonic() + 5.0
        while len(self.diagnostics) < target and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        return self.count(key)


GOOD_MM = np.full((H, W), 2000, np.uint16)


def _mono8(msg):
    msg.encoding, msg.step, msg.data = "mono8", W, bytes(H * W)


BAD = {
    "encoding": dict(depth=GOOD_MM, mutate_depth=_mono8),
    "size": dict(depth=np.full((H // 2, W // 2), 2000, np.uint16)),
    "empty": dict(depth=np.zeros((H, W), np.uint16)),
    "empty_nan": dict(depth=np.full((H, W), np.nan, np.float32)),
    "missing": dict(depth=None),
}


def _wait_good(camera, spin_until) -> int:
    good = camera.send(GOOD_MM)
    spin_until(camera.executor, lambda: good in camera.stamps(), 10.0, "a good frame")
    return good


def test_a_good_depth_image_is_used(camera, spin_until):
    _wait_good(camera, spin_until)
    before = camera.settled("frames_with_depth")
    good = camera.send(np.full((H, W), 1.5, np.float32))  # 32FC1 metres
    spin_until(camera.executor, lambda: good in camera.stamps(), 10.0, "the frame")
    spin_until(camera.executor, lambda: camera.count("frames_with_depth") == before + 1, 5.0, "frames_with_depth")
    assert camera.counters()["depth_fallback_size"] == "0"


@pytest.mark.parametrize("case", list(BAD))
def test_bad_or_missing_depth_is_counted_and_the_frame_runs_on_rgb(camera, case, spin_until):
    kind = case.removesuffix("_nan")
    _wait_good(camera, spin_until)
    spin_until(camera.executor, lambda: camera.count(f"depth_fallback_{kind}") >= 0, 5.0, "diagnostics")
    before = camera.count(f"depth_fallback_{kind}")
    bad = camera.send(**BAD[case])
    if case == "missing":  # the frame waits while depth flows; a newer depth says its own will not come
        camera.send(GOOD_MM, colour=False)
    spin_until(camera.executor, lambda: bad in camera.stamps(), 10.0, "the frame on RGB alone")
    spin_until(camera.executor, lambda: camera.count(f"depth_fallback_{kind}") == before + 1, 5.0,
               f"depth_fallback_{kind}")
    assert f"depth {kind}" in camera.counters()["last_error"]
    with_depth = camera.settled("frames_with_depth")
    good = camera.send(GOOD_MM)  # the next frame has its depth again
    spin_until(camera.executor, lambda: good in camera.stamps(), 10.0, "the next frame")
    spin_until(camera.executor, lambda: camera.count("frames_with_depth") == with_depth + 1, 5.0, "frames_with_depth")


def test_a_depth_stamp_without_a_colour_image_is_counted(camera, spin_until):
    first = camera.send(None, skip_s=1.0)  # earlier lone depths (tests above) fall out of the window
    spin_until(camera.executor, lambda: first in camera.stamps(), 10.0, "a frame")
    before = camera.settled("depth_fallback_unmatched")
    camera.send(GOOD_MM, colour=False)
    good = camera.send(GOOD_MM, skip_s=1.0)  # beyond sync_window_s: the lone depth expires
    spin_until(camera.executor, lambda: good in camera.stamps(), 10.0, "the next frame")
    spin_until(camera.executor, lambda: camera.count("depth_fallback_unmatched") >= before + 1, 5.0,
               f"depth_fallback_unmatched above {before}: {camera.counters()}")
    assert camera.settled("depth_fallback_unmatched") == before + 1


def test_the_demo_camera_publishes_registered_depth_in_millimetres(camera, make_scene, spin_until):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from cad_perception_ros.ros.image_codec import decode_depth
    from cad_perception_ros.tools.camera_player import CameraPlayer
    sample = make_scene(np.random.default_rng(0))
    got = []
    camera.node.create_subscription(Image, "/cp_depth_player/depth", got.append, qos_profile_sensor_data)
    player = CameraPlayer([sample], camera="/cp_depth_player", depth="true", node_name="depth_player")
    player.timer.cancel()
    try:
        camera.executor.add_node(player)
        spin_until(camera.executor, lambda: player.depth_pub.get_subscription_count() > 0, 10.0, "discovery")
        player.publish_next()
        spin_until(camera.executor, lambda: got, 10.0, "the depth image")
    finally:
        camera.executor.remove_node(player)
        player.destroy_node()
    msg = got[0]
    assert msg.encoding == "16UC1" and (msg.height, msg.width) == sample.depth.shape
    depth = decode_depth(msg.height, msg.width, msg.encoding, msg.step, bytes(msg.data), msg.is_bigendian)
    np.testing.assert_array_equal(depth, np.round(sample.depth * 1000).astype(np.uint16))


def test_run_aligner_gives_the_model_the_depth_and_the_node_s_range():
    """The worker's call: the live depth range reaches the CadAligner, and the result is the pipeline's with depth."""
    from pathlib import Path

    from cad_perception_ros.pipeline import CadAligner
    from cad_perception_ros.ros.aligners import run_aligner
    from cad_perception_ros.ros.params import NodeParams
    root = Path(__file__).resolve().parents[1]
    aligner = CadAligner.from_model_dir(root / "models" / "roca")  # the default (crop network), its meta.json's database
    assert aligner.crop_stage is not None
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    K = np.array([[144.0, 0, 80], [0, 144.0, 60], [0, 0, 1]])
    depth = np.full((120, 160), 3.0, np.float32)
    params = NodeParams(score_threshold=0.0, max_objects=1000, depth_min_m=0.5, depth_max_m=4.0)
    got = run_aligner(aligner, image, K, params, depth)
    assert aligner.depth_range == (0.5, 4.0)
    want = sorted(aligner(image, K, depth), key=lambda p: -p.score)
    assert len(got) == len(want) > 0  # the candidates the rescoring keeps (overlaps suppressed)
    assert all(np.array_equal(p.alignment.translation, q.alignment.translation) for p, q in zip(got, want))
    params = params.replace(depth_max_m=2.0)  # the whole map is now out of range: refused, named
    with pytest.raises(ValueError, match="no valid pixel"):
        run_aligner(aligner, image, K, params, depth)


def test_depth_messages_decode_with_padding_and_byte_order_and_the_size_is_checked_first():
    from std_msgs.msg import Header

    from cad_perception_ros.ros import conversions as conv
    mm = np.arange(12, dtype=np.uint16).reshape(3, 4) * 500  # 0 .. 5.5 m
    msg = conv.depth_image_msg(Header(), mm)
    got = conv.depth_from_image_msg(msg, (3, 4), 0.001, (0.1, 5.0))
    np.testing.assert_allclose(got, np.where((mm >= 100) & (mm <= 5000), mm / 1000, 0), rtol=1e-6)
    big = mm.astype(">u2")
    padded = np.zeros((3, 6), ">u2")
    padded[:, :4] = big
    msg.is_bigendian, msg.step, msg.data = 1, 12, padded.tobytes()  # 2 padding pixels a row
    np.testing.assert_array_equal(conv.depth_from_image_msg(msg, (3, 4), 0.001, (0.1, 5.0)), got)
    msg.data = b""  # a wrong size is named before the buffer is read
    with pytest.raises(ValueError, match="depth is 4x3 but the colour image is 8x6") as info:
        conv.depth_from_image_msg(msg, (6, 8), 0.001, (0.1, 5.0))
    assert info.value.kind == "depth_size"
    with pytest.raises(ValueError, match="does not hold 4x3 16UC1 pixels") as info:
        conv.depth_from_image_msg(msg, (3, 4), 0.001, (0.1, 5.0))
    assert info.value.kind == "depth_encoding"
