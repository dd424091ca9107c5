"""The node under bursts, stalls, late or changing CameraInfo, clock jumps and a failing backend,
in its own process over loopback-only DDS with a fixture aligner (known predictions per image,
30 ms artificial processing time, one poison image that makes the aligner raise). The node must
recover each time without a restart."""
from __future__ import annotations

import json
import time

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(60)]
rclpy = pytest.importorskip("rclpy")
NS = "/cp_rel"
OUT = f"{NS}/cad_perception"
SIZES = {1: (48, 64), 2: (48, 64), 3: (96, 128), 4: (48, 64)}  # seed -> (H, W); 4 = poison
COUNTS = {1: 2, 2: 1, 3: 3}  # objects the fixture returns per image
DELAY_MS = 30.0


@pytest.fixture(scope="module")
def session(tmp_path_factory, CameraClient, apply_env, dds_env, make_image, make_K, spin_until, start_node,
            stop_process, unique_domain_id):
    from test_ros_node import ground_truth

    from cad_perception_ros.ros.aligners import image_key, write_fixture
    tmp = tmp_path_factory.mktemp("reliability")
    images = {seed: make_image(seed, *SIZES[seed]) for seed in SIZES}
    fixture = write_fixture(tmp / "fixture.json", by_image={image_key(images[s]): ground_truth(s, n) for s, n in COUNTS.items()},
                            delay_ms=DELAY_MS, raise_on_images=[image_key(images[4])])
    env = dds_env(unique_domain_id(offset=70))
    apply_env(env)
    proc = start_node(env, ["-p", f"model:=fixture:{fixture}", "-r", f"__ns:={NS}", "-p", "diagnostics_period_s:=0.1",
                            "-p", "qos_reliability:=reliable", "-p", "qos_depth:=10"], tmp / "node.log")
    rclpy.init()
    try:
        # synthetic stamps 50 ms apart (the tests jump them like a bag replay loop)
        client = CameraClient(rclpy, camera=NS, out_ns=OUT, qos=100, frame_id="cam", diagnostics=True,
                              stamp_step_ns=50_000_000, wall_clock=False, node_name="reliability_camera")
        spin_until(client.executor, lambda: proc.poll() is not None or (client.node.count_subscribers(f"{NS}/image") > 0
                   and client.node.count_publishers(f"{OUT}/alignments") > 0), 20.0, "node discovery")
        assert proc.poll() is None, (tmp / "node.log").read_text()
        yield Camera(client, images, make_K), proc, tmp
    finally:
        stop_process(proc)
        rclpy.try_shutdown()


class Camera:
    """The images of SIZES sent by seed through a conftest CameraClient, and the checks on what
    the node answers (fixture predictions, diagnostics counters)."""

    def __init__(self, client, images, make_K):
        self.client, self.images, self.make_K = client, images, make_K
        self.executor = client.executor

    def counter(self, key: str) -> int:
        return int(self.client.counters().get(key, 0))

    def send(self, seed: int, stamp: int | None = None, *, info_after_s: float | None = None) -> int:
        rgb = self.images[seed]
        return self.client.publish(rgb, self.make_K(*rgb.shape[:2]), stamp_ns=stamp, info_after_s=info_after_s)

    def served(self, stamp: int, seed: int, timeout: float = 10.0) -> None:
        """Wait for ~/alignments of `stamp` and check it is the fixture's answer for image `seed`."""
        self.client.spin_until(lambda: stamp in self.client.stamps(), timeout, f"alignments for stamp {stamp}")
        assert [o.cad_id for o in self.client.by_stamp("alignments", stamp).objects] == \
            [f"cad{i}" for i in range(COUNTS[seed])]

    def settle(self) -> None:
        """Wait until the node has handled every image it received (processed + dropped + errors)."""
        def idle():
            c, counters = self.counter, self.client.counters()
            return c("frames_received") > 0 and c("frames_processed") + c("frames_dropped") + c("errors") + sum(
                int(v) for k, v in counters.items() if k.startswith("rejected_")) == c("frames_received")
        self.client.spin(0.3)
        self.client.spin_until(idle, 10.0, "the node to finish its queue")


def test_burst_at_5x_rate_drops_frames_and_keeps_serving(session):
    camera, proc, _ = session
    camera.served(camera.send(1), 1)
    camera.settle()
    received, dropped, processed = (camera.counter(k) for k in ("frames_received", "frames_dropped", "frames_processed"))
    period, seeds, stamps = 1.0 / 150.0, {}, []  # 5 x 30 Hz against a 30 ms aligner
    start = time.monotonic()
    for i in range(60):
        seed = (1, 2)[i % 2]
        stamps.append(camera.send(seed, camera.client.next_stamp(int(period * 1e9))))
        seeds[stamps[-1]] = seed
        while time.monotonic() < start + (i + 1) * period:
            camera.executor.spin_once(timeout_sec=0.001)
    camera.settle()
    new_dropped = camera.counter("frames_dropped") - dropped
    out = camera.client.stamps()
    new_out = [s for s in stamps if s in out]
    assert camera.counter("frames_received") - received == 60
    assert new_dropped > 10, "a 30 ms aligner at 150 Hz must drop frames"
    assert camera.counter("frames_processed") - processed + new_dropped == 60
    assert len(new_out) == 60 - new_dropped and stamps[-1] in out  # the newest frame always wins
    for s in new_out:  # every published frame carries the predictions of its own image
        assert len(camera.client.by_stamp("alignments", s).objects) == COUNTS[seeds[s]]
    camera.served(camera.send(2), 2)
    assert proc.poll() is None


def test_camera_stops_and_restarts(session):
    camera, proc, _ = session
    camera.served(camera.send(1), 1)
    camera.client.spin(2.5)  # the camera is silent
    assert camera.client.status().message.startswith("active")
    camera.served(camera.send(2), 2)
    camera.served(camera.send(1), 1)
    assert proc.poll() is None


def test_camera_info_after_the_image(session):
    camera, _, _ = session
    before = camera.counter("rejected_no_camera_info")
    stamp = camera.send(2, info_after_s=0.2)
    camera.served(stamp, 2)
    camera.client.spin(0.3)
    assert camera.counter("rejected_no_camera_info") == before


def test_resolution_changes_mid_stream(session):
    camera, _, _ = session
    for seed in (1, 3, 3, 2, 3):  # 64x48 -> 128x96 -> 64x48 -> 128x96, CameraInfo follows each image
        camera.served(camera.send(seed), seed)
    assert camera.counter("rejected_size_mismatch") == 0


def test_clock_jumps_backwards_like_a_bag_replay_loop(session, spin_until):
    camera, proc, tmp = session
    resets_logged = (tmp / "node.log").read_text().count("synchroniser reset")
    camera.served(camera.send(1), 1)
    camera.client.last_stamp -= 3600 * 10**9  # the bag restarts an hour earlier
    for seed in (2, 1, 2):
        camera.served(camera.send(seed), seed)
    spin_until(camera.executor, lambda: (tmp / "node.log").read_text().count("synchroniser reset") > resets_logged,
               5.0, "the node to log the reset")
    camera.client.last_stamp = 10**9  # and to a stamp near zero (simulated time restarting)
    camera.served(camera.send(1), 1)
    assert proc.poll() is None


def test_backend_raising_mid_run_drops_and_counts_the_frame(session, spin_until):
    camera, proc, tmp = session
    camera.served(camera.send(1), 1)
    camera.settle()
    errors = camera.counter("errors")
    poison = camera.send(4)
    camera.client.spin(0.2)
    good = camera.send(2)
    camera.served(good, 2)
    spin_until(camera.executor, lambda: camera.counter("errors") == errors + 1, 5.0, "the error to be counted")
    assert poison not in camera.client.stamps()
    assert "FixtureFailure" in camera.client.counters()["last_error"]
    assert "processing failed: FixtureFailure" in (tmp / "node.log").read_text()
    camera.served(camera.send(1), 1)
    assert proc.poll() is None


def test_configure_failure_keeps_the_node_alive(tmp_path, dds_env, spin_until, start_node, stop_process, unique_domain_id):
    """A model dir naming a CAD database that is not there: configure fails with the reason in
    /diagnostics, the node stays up in 'unconfigured' and answers another configure request."""
    from diagnostic_msgs.msg import DiagnosticArray
    from lifecycle_msgs.srv import ChangeState
    from rclpy.executors import SingleThreadedExecutor
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "meta.json").write_text(json.dumps({"cad_db": "../no_db", "cad_ids": []}))
    env = dds_env(unique_domain_id(offset=90))
    ns = "/cp_badmodel"
    proc = start_node(env, ["-p", f"model_dir:={tmp_path / 'model'}", "-r", f"__ns:={ns}",
                            "-p", "diagnostics_period_s:=0.1"], tmp_path / "node.log")
    context = rclpy.Context()  # its own context and domain, beside the module's session
    context.init(domain_id=int(env["ROS_DOMAIN_ID"]))
    try:
        node = rclpy.create_node("lifecycle_probe", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        statuses = []
        node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: statuses.extend(
            s for s in m.status if s.name.startswith(f"{ns}/cad_perception")), 20)
        spin_until(executor, lambda: statuses or proc.poll() is not None, 20.0, "diagnostics of the node")
        assert proc.poll() is None
        values = {kv.key: kv.value for kv in statuses[-1].values}
        assert statuses[-1].message.startswith("unconfigured") and statuses[-1].level == statuses[-1].WARN
        assert "configure failed: CAD database" in values["last_error"] and "no_db" in values["last_error"]
        client = node.create_client(ChangeState, f"{ns}/cad_perception/change_state")
        spin_until(executor, client.service_is_ready, 10.0, "the change_state service")
        request = ChangeState.Request()
        request.transition.id = request.transition.TRANSITION_CONFIGURE
        future = client.call_async(request)
        spin_until(executor, future.done, 10.0, "the configure answer")
        assert future.result().success is False and proc.poll() is None
    finally:
        stop_process(proc)
        context.try_shutdown()
