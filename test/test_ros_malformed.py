"""Malformed input: each case is counted in /diagnostics under its own kind, publishes nothing
for that frame, and the next good frame is served."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(90)]
rclpy = pytest.importorskip("rclpy")
NS = "/cp_bad"


@pytest.fixture(scope="module")
def session(tmp_path_factory, CameraClient, apply_env, dds_env, start_node, stop_process, unique_domain_id):
    from test_ros_node import ground_truth

    from cad_perception_ros.ros.aligners import write_fixture
    tmp = tmp_path_factory.mktemp("malformed")
    fixture = write_fixture(tmp / "fixture.json", default=ground_truth(3, 1))
    env = dds_env(unique_domain_id(offset=50))
    apply_env(env)
    proc = start_node(env, ["-p", f"model:=fixture:{fixture}", "-r", f"__ns:={NS}", "-p", "diagnostics_period_s:=0.1",
                            "-p", "qos_reliability:=reliable"], tmp / "node.log")
    rclpy.init()
    try:
        # camera-like stamps: successive frames >= 50 ms apart (beyond the sync tolerance)
        camera = CameraClient(rclpy, camera=NS, out_ns=f"{NS}/cad_perception", qos=10, frame_id="cam",
                              diagnostics=True, stamp_step_ns=50_000_000, node_name="bad_camera")
        yield camera, proc, tmp
    finally:
        stop_process(proc)
        rclpy.try_shutdown()


def _set(**fields):
    def mutate(msg):
        for k, v in fields.items():
            setattr(msg, k, v)
    return mutate


def _nan_k(info):
    k = list(info.k)
    k[0] = float("nan")
    info.k = k


CASES = {
    "encoding": dict(mutate_image=_set(encoding="16UC1")),
    "step": dict(mutate_image=_set(step=64 * 3 + 5)),
    "empty_image": dict(mutate_image=_set(height=0, width=0, step=0, data=b"")),
    "intrinsics": dict(mutate_info=_set(k=[0.0] * 9)),
    "size_mismatch": dict(mutate_info=_set(width=320, height=240)),
    "no_camera_info": dict(info=False),
    "too_small": dict(mutate_image=_set(height=1, width=1, step=3, data=b"\x00\x00\x00"),
                      mutate_info=_set(width=1, height=1)),
}


@pytest.fixture(scope="module")
def ready(session, spin_until, make_image, make_K):
    camera, proc, _ = session
    spin_until(camera.executor, lambda: camera.node.count_subscribers(f"{NS}/image") > 0 and
               camera.node.count_publishers(f"{NS}/cad_perception/alignments") > 0, 20.0, "node discovery")

    def frame(**spoil) -> int:  # the good 64x48 frame 7, spoilt as `spoil` says (CameraClient.publish)
        return camera.publish(make_image(7), make_K(), **spoil)

    good = frame()
    spin_until(camera.executor, lambda: good in camera.stamps(), 10.0, "the first good frame")
    return frame, camera


@pytest.mark.parametrize("kind", list(CASES))
def test_malformed_frame_is_counted_and_skipped(ready, kind, spin_until):
    frame, camera = ready
    spin_until(camera.executor, lambda: f"rejected_{kind}" in camera.counters(), 5.0, "diagnostics")
    before = int(camera.counters()[f"rejected_{kind}"])
    bad = frame(**CASES[kind])
    if kind == "no_camera_info":
        spin_until(camera.executor, lambda: True, 0.1)  # let the bad image reach the node first
    good = frame()
    spin_until(camera.executor, lambda: good in camera.stamps(), 10.0, "the next good frame")
    spin_until(camera.executor, lambda: int(camera.counters().get(f"rejected_{kind}", 0)) == before + 1, 5.0,
               f"rejected_{kind} to count the bad frame")
    assert bad not in camera.stamps()
    assert kind in camera.counters()["last_error"] or int(camera.counters()[f"rejected_{kind}"]) == before + 1


def test_nan_intrinsics_rejected(ready, spin_until):
    frame, camera = ready
    spin_until(camera.executor, lambda: "rejected_intrinsics" in camera.counters(), 5.0, "diagnostics")
    before = int(camera.counters()["rejected_intrinsics"])
    bad = frame(mutate_info=_nan_k)
    good = frame()
    spin_until(camera.executor, lambda: good in camera.stamps(), 10.0, "the next good frame")
    spin_until(camera.executor, lambda: int(camera.counters()["rejected_intrinsics"]) == before + 1, 5.0, "count")
    assert bad not in camera.stamps()


def test_warnings_are_specific_and_throttled(ready, session, spin_until):
    _, _, tmp = session
    frame, camera = ready
    for _ in range(3):
        frame(mutate_image=_set(encoding="yuv422"))
    good = frame()
    spin_until(camera.executor, lambda: good in camera.stamps(), 10.0, "a good frame")
    log = (tmp / "node.log").read_text()
    warnings = [line for line in log.splitlines() if "frame rejected (encoding)" in line]
    assert len(warnings) == 1 and "unsupported encoding" in warnings[0]
    assert "frame rejected (no_camera_info)" in log and "CameraInfo is 320x240 but the image is 64x48" in log
