"""The node in its own process, a camera publisher and subscribers in this one, over real DDS
(shared memory, localhost discovery, a domain id of this run). The aligner is a fixture that
returns known poses (the ground truth of each frame), so the node's mechanics are tested alone."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]
rclpy = pytest.importorskip("rclpy")

NS, CAM = "/cp_test", "/cam"
OUT = f"{NS}/cad_perception"
# serve() publishes a fresh frame every 0.5 s until one is answered, so the CameraInfo of a retry
# may be newer than the stamp it returns: a test that needs "no CameraInfo near this stamp" takes
# a stamp this far past the last one published.
CLEAR_OF_RETRIES_NS = 200_000_000


def ground_truth(seed: int, n: int):
    from cad_perception_ros.types import Alignment9D, CadPrediction
    rng = np.random.default_rng(seed)
    preds = []
    for i in range(n):
        R = Rotation.from_euler("xyz", rng.uniform(-1, 1, 3)).as_matrix()
        a = Alignment9D(R, rng.uniform([-0.5, -0.3, 2.0], [0.5, 0.3, 4.0]), rng.uniform(0.3, 1.2, 3))
        preds.append(CadPrediction(class_id=5 - i, class_name=("chair", "cabinet")[i % 2], score=0.9 - 0.1 * i,
                                   box_xyxy=np.array([5.0 + i, 6.0, 30.0, 40.0]), alignment=a, cad_id=f"cad{i}",
                                   retrieval_distance=0.1 * i))
    return preds


@pytest.fixture(scope="module")
def ros_session(tmp_path_factory, CameraClient, apply_env, dds_env, make_image, make_K, start_node, stop_process,
                unique_domain_id):
    from rclpy.qos import qos_profile_sensor_data

    from cad_perception_ros.ros.aligners import image_key, write_fixture
    from cad_perception_ros.ros.conversions import CadInfo
    tmp = tmp_path_factory.mktemp("node")
    frames = {seed: (make_image(seed), ground_truth(seed, n)) for seed, n in ((1, 2), (2, 1))}
    low = ground_truth(3, 3)
    frames[3] = (make_image(3), [dataclasses.replace(p, score=s) for p, s in zip(low, (0.9, 0.3, 0.1))])
    cad_models = {"cad0": CadInfo("file:///tmp/cad0.stl", (1.0, 0.5, 0.8)), "cad1": CadInfo("file:///tmp/cad1.stl", (0.6, 1.0, 0.4))}
    fixture = write_fixture(tmp / "fixture.json", by_image={image_key(img): gt for img, gt in frames.values()},
                            cad_models=cad_models)
    env = dds_env(unique_domain_id())
    apply_env(env)
    proc = start_node(env, ["-p", f"model:=fixture:{fixture}", "-r", f"__ns:={NS}", "-p", f"image_topic:={CAM}/image",
                            "-p", f"camera_info_topic:={CAM}/camera_info", "-p", "diagnostics_period_s:=0.2"],
                      tmp / "node.log")
    rclpy.init()
    try:
        client = CameraClient(rclpy, camera=CAM, out_ns=OUT, qos=qos_profile_sensor_data, encoding="bgr8",
                              diagnostics=True)
        yield Session(client, frames, cad_models, make_K), proc, tmp
    finally:
        stop_process(proc)
        rclpy.try_shutdown()


class Session(NamedTuple):
    """The conftest CameraClient (best-effort, bgr8) and the frames it sends: seed -> (RGB image,
    the fixture's predictions for it)."""

    client: Any
    frames: dict
    cad_models: dict
    make_K: Any  # conftest helper

    def frame(self, seed: int):
        image = self.frames[seed][0]
        return image, self.make_K(*image.shape[:2])

    def publish(self, seed: int, **options) -> int:
        return self.client.publish(*self.frame(seed), **options)

    def serve(self, seed: int, outputs=("alignments", "detections", "poses", "tf", "markers"), timeout=15.0) -> int:
        """Publish frame `seed` (again, with a fresh stamp, until best-effort delivery gets through)
        and return the stamp whose outputs all arrived."""
        return self.client.serve(*self.frame(seed), outputs=outputs, timeout=timeout, retry_s=0.5)


def quat_matrix(q) -> np.ndarray:
    return Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()


def test_outputs_arrive_with_the_image_header_and_agree(ros_session, spin_until):
    session, proc, _ = ros_session
    client = session.client
    spin_until(client.executor, lambda: client.node.count_subscribers(f"{CAM}/image") > 0 or proc.poll() is not None,
               20.0, "the node to subscribe")
    assert proc.poll() is None, "node process exited"
    stamp = session.serve(1)
    gt = session.frames[1][1]
    alignments, detections = client.by_stamp("alignments", stamp), client.by_stamp("detections", stamp)
    tf, markers, poses = client.by_stamp("tf", stamp), client.by_stamp("markers", stamp), client.by_stamp("poses", stamp)
    for header in (alignments.header, detections.header, poses.header, tf.transforms[0].header, markers.markers[0].header):
        assert header.frame_id == "cam_optical"
    assert alignments.model == "fixture" and len(alignments.objects) == len(gt) == len(detections.detections)
    ids = [det.id for det in detections.detections]
    assert len(set(ids)) == len(ids)  # object ids (tracker), not CAD ids
    for i, (obj, det, tr, truth) in enumerate(zip(alignments.objects, detections.detections, tf.transforms, gt)):
        t = truth.alignment.translation
        assert obj.class_name == truth.class_name and obj.cad_id == truth.cad_id
        assert det.id.startswith(f"{truth.class_name}_") and det.id[len(truth.class_name) + 1:].isdigit()
        assert tr.child_frame_id == obj.tf_frame == f"cad_{det.id}"
        np.testing.assert_allclose(quat_matrix(obj.pose.orientation), truth.alignment.rotation, atol=1e-6)
        np.testing.assert_allclose([obj.pose.position.x, obj.pose.position.y, obj.pose.position.z], t, atol=1e-9)
        np.testing.assert_allclose([obj.scale.x, obj.scale.y, obj.scale.z], truth.alignment.scale, atol=1e-9)
        assert det.results[0].hypothesis.class_id == truth.class_name
        assert det.results[0].hypothesis.score == pytest.approx(truth.score, abs=1e-6)
        for pose in (det.results[0].pose.pose, det.bbox.center, poses.poses[i]):
            assert pose == obj.pose
        assert (tr.transform.translation.x, tr.transform.translation.y, tr.transform.translation.z) == (
            obj.pose.position.x, obj.pose.position.y, obj.pose.position.z)
        assert tr.transform.rotation == obj.pose.orientation
        size = np.asarray(truth.alignment.scale) * session.cad_models[truth.cad_id].extent
        np.testing.assert_allclose([det.bbox.size.x, det.bbox.size.y, det.bbox.size.z], size, rtol=1e-9)
    meshes = [m for m in markers.markers if m.ns == "cad_mesh"]
    assert [m.mesh_resource for m in meshes] == [session.cad_models[g.cad_id].mesh_uri for g in gt]
    assert all(0.0 <= c <= 1.0 for m in markers.markers for c in (m.color.r, m.color.g, m.color.b, m.color.a))


def test_object_ids_stay_stable_from_frame_to_frame(ros_session):
    session, _, _ = ros_session
    client = session.client
    first = [d.id for d in client.by_stamp("detections", session.serve(1, outputs=("detections",))).detections]
    again = [d.id for d in client.by_stamp("detections", session.serve(1, outputs=("detections",))).detections]
    assert first == again and len(set(first)) == 2


def test_lowered_score_threshold_takes_effect_at_once(ros_session, spin_until):
    """One threshold, applied once: frame 3's fixture has scores 0.9, 0.3, 0.1."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    session, _, _ = ros_session
    client = session.client
    assert len(client.by_stamp("alignments", session.serve(3, outputs=("alignments",))).objects) == 1  # at 0.5
    service = client.node.create_client(SetParameters, f"{OUT}/set_parameters")
    spin_until(client.executor, service.service_is_ready, 10.0, "set_parameters service")

    def set_threshold(value: float) -> bool:
        request = SetParameters.Request(parameters=[Parameter(name="score_threshold", value=ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=value))])
        future = service.call_async(request)
        spin_until(client.executor, future.done, 10.0, "set_parameters reply")
        return future.result().results[0].successful

    try:
        assert set_threshold(0.05)
        scores = sorted(o.score for o in client.by_stamp("alignments", session.serve(3, outputs=("alignments",))).objects)
        assert scores == pytest.approx([0.1, 0.3, 0.9])
        assert set_threshold(0.2)
        assert len(client.by_stamp("alignments", session.serve(3, outputs=("alignments",))).objects) == 2
    finally:
        set_threshold(0.5)


def test_fewer_objects_clear_markers_and_debug_image_follows_subscribers(ros_session, spin_until):
    session, _, _ = ros_session
    client = session.client
    session.serve(1)
    stamp = session.serve(2, outputs=("alignments", "markers", "debug_image"))
    markers = client.by_stamp("markers", stamp)
    assert markers.markers[0].action == markers.markers[0].DELETEALL
    assert len(client.by_stamp("alignments", stamp).objects) == 1
    debug = client.by_stamp("debug_image", stamp)
    assert (debug.height, debug.width, debug.encoding) == (48, 64, "rgb8") and debug.header.frame_id == "cam_optical"
    spin_until(client.executor, lambda: any(
        int(kv.value) >= 2 for _, d in client.got["diagnostics"] for s in d.status for kv in s.values
        if kv.key == "frames_processed"), 5.0, "diagnostics counting processed frames")


def test_node_latency_stamp_to_publication(ros_session):
    """Overhead of the node: image stamp (set at publication) to arrival of ~/alignments."""
    session, _, _ = ros_session
    client = session.client
    latencies = []
    for _ in range(10):
        stamp = session.serve(1, outputs=("alignments",))
        arrival = next(t for t, m in client.got["alignments"] if m.header.stamp == client.by_stamp("alignments", stamp).header.stamp)
        latencies.append((arrival - stamp) / 1e6)
    median = float(np.median(latencies))
    print(f"\nnode latency stamp->~/alignments arrival with the fixture aligner: median {median:.1f} ms, "
          f"max {max(latencies):.1f} ms over {len(latencies)} frames")
    assert 0.0 < median < 500.0


def _set_parameter(client, spin_until, name: str, value) -> bool:
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    service = client.node.create_client(SetParameters, f"{OUT}/set_parameters")
    spin_until(client.executor, service.service_is_ready, 10.0, "set_parameters service")
    if isinstance(value, str):
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    else:
        pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(value))
    future = service.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=pv)]))
    spin_until(client.executor, future.done, 10.0, "set_parameters reply")
    return future.result().results[0].successful


def _diagnostic(client, key: str) -> int:
    values = [int(kv.value) for _, d in client.got["diagnostics"] for s in d.status for kv in s.values if kv.key == key]
    return max(values, default=0)


def _spin_for(client, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        client.executor.spin_once(timeout_sec=0.02)


def test_a_duplicate_image_stamp_is_served_once_and_counted(ros_session, spin_until):
    session, _, _ = ros_session
    client = session.client
    stamp = session.serve(1, outputs=("alignments",))
    for _ in range(3):
        session.publish(1, stamp_ns=stamp)
    _spin_for(client, 1.0)
    assert sum(1 for _, m in client.got["alignments"] if conv_ns(m.header.stamp) == stamp) == 1
    spin_until(client.executor, lambda: _diagnostic(client, "rejected_duplicate_stamp") >= 1, 5.0,
               "diagnostics counting the duplicate stamps")


def test_latest_camera_info_mode_serves_images_without_their_own_camera_info(ros_session, spin_until):
    """A driver that sent CameraInfo once: in the default (exact) mode its images are rejected; in
    the latest mode, set at run time, they are served with that CameraInfo."""
    session, _, _ = ros_session
    client = session.client
    session.serve(1, outputs=("alignments",))  # the node has a CameraInfo of this size now

    def image_only() -> int:  # clear of every stamp serve() published (its retries may still be arriving)
        return session.publish(1, info=False, stamp_ns=client.next_stamp(CLEAR_OF_RETRIES_NS))

    strict = [image_only() for _ in range(3)]
    _spin_for(client, 0.5)
    assert all(client.by_stamp("alignments", s) is None for s in strict)
    assert _set_parameter(client, spin_until, "camera_info_mode", "latest")
    try:
        served = []
        deadline = time.monotonic() + 10.0
        while not served and time.monotonic() < deadline:
            stamp = image_only()
            _spin_for(client, 0.3)
            served = [s for s in [stamp] if client.by_stamp("alignments", s) is not None]
        assert served, "no image served in the latest mode"
        assert not _set_parameter(client, spin_until, "camera_info_mode", "newest")  # refused, not ignored
    finally:
        assert _set_parameter(client, spin_until, "camera_info_mode", "exact")


def conv_ns(stamp) -> int:
    from cad_perception_ros.ros.conversions import stamp_to_ns
    return stamp_to_ns(stamp)


def test_a_frame_above_max_image_pixels_is_rejected_before_decoding(ros_session, spin_until):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    session, _, _ = ros_session
    client = session.client
    service = client.node.create_client(SetParameters, f"{OUT}/set_parameters")
    spin_until(client.executor, service.service_is_ready, 10.0, "set_parameters service")

    def set_limit(value: int) -> bool:
        future = service.call_async(SetParameters.Request(parameters=[Parameter(name="max_image_pixels", value=ParameterValue(
            type=ParameterType.PARAMETER_INTEGER, integer_value=value))]))
        spin_until(client.executor, future.done, 10.0, "set_parameters reply")
        return future.result().results[0].successful

    assert set_limit(1000)  # the test frames are 64x48 = 3072 pixels
    try:
        stamps = [session.publish(1) for _ in range(3)]
        spin_until(client.executor, lambda: _diagnostic(client, "rejected_too_large") >= 1, 5.0,
                   "diagnostics counting too_large frames")
        assert all(client.by_stamp("alignments", s) is None for s in stamps)
    finally:
        assert set_limit(4096 * 4096)
    session.serve(1, outputs=("alignments",))  # served again once the limit allows it


def test_publish_tf_and_sync_tolerance_take_effect_at_run_time(ros_session, spin_until):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    session, _, _ = ros_session
    client = session.client
    service = client.node.create_client(SetParameters, f"{OUT}/set_parameters")
    spin_until(client.executor, service.service_is_ready, 10.0, "set_parameters service")

    def set_param(name, value) -> bool:
        pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value) if isinstance(value, bool) else \
            ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
        future = service.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=pv)]))
        spin_until(client.executor, future.done, 10.0, "set_parameters reply")
        return future.result().results[0].successful

    assert set_param("publish_tf", False)
    try:
        stamp = session.serve(1, outputs=("alignments",))
        _spin_for(client, 0.5)
        assert client.by_stamp("tf", stamp) is None
    finally:
        assert set_param("publish_tf", True)
    session.serve(1, outputs=("alignments", "tf"))  # false -> true: /tf again at the next frame

    def pair_50ms_apart() -> int:  # clear of every stamp published before (serve()'s retries, the last pair)
        stamp = client.next_stamp(CLEAR_OF_RETRIES_NS)
        client.last_stamp = stamp + 50_000_000
        return session.publish(1, stamp_ns=stamp, info_stamp_ns=stamp + 50_000_000)

    strict = pair_50ms_apart()
    _spin_for(client, 0.5)
    assert client.by_stamp("alignments", strict) is None  # 5 ms tolerance: no pair
    assert set_param("sync_tolerance_s", 0.1)
    try:
        served, deadline = None, time.monotonic() + 10.0
        while served is None and time.monotonic() < deadline:
            stamp = pair_50ms_apart()
            _spin_for(client, 0.3)
            served = client.by_stamp("alignments", stamp)
        assert served is not None, "a pair 50 ms apart was not served at sync_tolerance_s 0.1"
    finally:
        assert set_param("sync_tolerance_s", 0.005)
