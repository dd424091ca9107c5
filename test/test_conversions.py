"""Messages built without starting ROS; image codec round trips; stamp sync; worker; params."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cad_perception_ros.ros import image_codec
from cad_perception_ros.ros.image_codec import InputError
from cad_perception_ros.ros.params import NodeParams, check_changes
from cad_perception_ros.ros.sync import StampSynchronizer
from cad_perception_ros.ros.worker import FrameWorker
from cad_perception_ros.types import Alignment9D, CadPrediction

conv = pytest.importorskip("cad_perception_ros.ros.conversions")


def _prediction(class_name="chair", class_id=5, cad_id="c1"):
    R = Rotation.from_euler("zyx", [0.3, -0.7, 1.1]).as_matrix()
    return CadPrediction(class_id=class_id, class_name=class_name, score=0.75, box_xyxy=np.array([1.0, 2.0, 30.0, 40.0]),
                         alignment=Alignment9D(R, np.array([0.1, -0.2, 3.0]), np.array([0.5, 0.8, 0.4])), cad_id=cad_id)


def _header():
    from std_msgs.msg import Header
    return Header(stamp=conv.ns_to_stamp(1_700_000_000_123_456_789), frame_id="camera_optical")


LOOKUP = {"c1": conv.CadInfo("file:///db/c1.stl", (1.0, 0.6, 0.5))}.get


@pytest.mark.parametrize("encoding", sorted(image_codec.CHANNELS))
@pytest.mark.parametrize("padding", [0, 3])
def test_codec_round_trip(encoding, padding):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    native = image_codec.from_rgb(rgb, encoding)
    raw = image_codec.encode(native, encoding, step=7 * image_codec.CHANNELS[encoding] + padding)
    np.testing.assert_array_equal(image_codec.decode(*raw), native)
    back = image_codec.decode_rgb(*raw)
    if encoding == "mono8":
        assert back.shape == (5, 7, 3) and (back[..., 0] == back[..., 2]).all()
    else:
        np.testing.assert_array_equal(back, rgb)


@pytest.mark.parametrize(("args", "kind"), [
    ((0, 7, "rgb8", 21, b""), "empty_image"),
    ((5, 7, "16UC1", 14, bytes(70)), "encoding"),
    ((5, 7, "rgb8", 20, bytes(100)), "step"),
    ((5, 7, "rgb8", 21, bytes(104)), "step"),
])
def test_codec_rejects_malformed(args, kind):
    with pytest.raises(InputError) as info:
        image_codec.decode(*args)
    assert info.value.kind == kind


def test_image_message_round_trip_copies_header():
    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    msg = conv.image_msg(_header(), image_codec.from_rgb(rgb, "bgra8"), "bgra8")
    assert (msg.step, msg.encoding, msg.header.frame_id) == (24, "bgra8", "camera_optical")
    np.testing.assert_array_equal(conv.rgb_from_image_msg(msg), rgb)


def test_messages_agree_and_copy_header():
    preds = [_prediction()]
    header = _header()
    frames = conv.object_frames(preds, "obj_")
    alignments = conv.alignments_msg(header, preds, LOOKUP, model="m", tf_frames=frames)
    detections = conv.detections_msg(header, preds, LOOKUP)
    tf = conv.tf_msg(header, preds, frames)
    obj, det, tr = alignments.objects[0], detections.detections[0], tf.transforms[0]
    for h in (alignments.header, detections.header, det.header, tr.header):
        assert h == header and h is not header
    q = obj.pose.orientation
    np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), preds[0].alignment.rotation, atol=1e-12)
    assert det.bbox.center == obj.pose == det.results[0].pose.pose and det.id == "c1"
    np.testing.assert_allclose([det.bbox.size.x, det.bbox.size.y, det.bbox.size.z], [0.5, 0.48, 0.2])
    assert tr.child_frame_id == obj.tf_frame == "obj_chair_0" and tr.transform.rotation == q
    assert obj.mesh_resource == "file:///db/c1.stl" and np.isnan(obj.retrieval_distance)


def test_markers_deleteall_mesh_and_label():
    header = _header()
    markers = conv.markers_msg(header, [_prediction()], LOOKUP, previous_count=3, lifetime_s=1.5).markers
    assert markers[0].action == markers[0].DELETEALL
    mesh, label = markers[1], markers[2]
    assert (mesh.type, mesh.ns, mesh.id, mesh.mesh_resource) == (mesh.MESH_RESOURCE, "cad_mesh", 0, "file:///db/c1.stl")
    assert (mesh.scale.x, mesh.scale.y, mesh.scale.z) == (0.5, 0.8, 0.4)
    assert (mesh.lifetime.sec, mesh.lifetime.nanosec) == (1, 500_000_000)
    assert label.type == label.TEXT_VIEW_FACING and label.text.startswith("chair") and label.ns == "cad_label"
    assert all(0 <= c <= 1 for m in markers for c in (m.color.r, m.color.g, m.color.b, m.color.a))
    unknown = conv.markers_msg(header, [_prediction(cad_id="nope")], LOOKUP).markers
    assert unknown[0].type == unknown[0].CUBE and unknown[0].action == unknown[0].ADD


def test_object_names_and_marker_ids_come_from_tracks():
    header = _header()
    preds = [_prediction(), _prediction()]  # two objects of one CAD model
    names = ["chair_4", "chair_7"]
    assert conv.object_frames(preds, "cad_", names) == ["cad_chair_4", "cad_chair_7"]
    assert [d.id for d in conv.detections_msg(header, preds, LOOKUP, ids=names).detections] == names
    markers = conv.markers_msg(header, preds, LOOKUP, marker_ids=[4, 7], clear=True).markers
    assert markers[0].action == markers[0].DELETEALL
    assert [m.id for m in markers[1:] if m.ns == "cad_mesh"] == [4, 7]
    assert conv.markers_msg(header, preds, LOOKUP, marker_ids=[4, 7], clear=False).markers[0].action == 0  # ADD


def test_mesh_uri_package_inside_the_installed_share_else_file(tmp_path, monkeypatch):
    from cad_perception_ros import paths
    share = tmp_path / "install" / "share" / "cad_perception_ros"
    (share / "config").mkdir(parents=True)
    mesh = share / "models" / "cad_db" / "meshes" / "chair_0.obj"
    mesh.parent.mkdir(parents=True)
    mesh.write_text("")
    outside = tmp_path / "elsewhere.obj"
    outside.write_text("")
    monkeypatch.setattr(paths, "installed_share", lambda: share.resolve())
    assert paths.mesh_uri(mesh) == "package://cad_perception_ros/models/cad_db/meshes/chair_0.obj"
    assert paths.mesh_uri(mesh, "file") == mesh.resolve().as_uri()
    assert paths.mesh_uri(outside) == outside.resolve().as_uri()
    monkeypatch.setattr(paths, "installed_share", lambda: None)  # a source checkout: file://
    assert paths.mesh_uri(mesh).startswith("file://")
    with pytest.raises(ValueError, match="scheme"):
        paths.mesh_uri(mesh, "http")


def test_camera_matrix_checks():
    header = _header()
    K = np.array([[50.0, 0, 32], [0, 55.0, 24], [0, 0, 1]])
    info = conv.camera_info_msg(header, K, (48, 64))
    np.testing.assert_array_equal(conv.camera_matrix(info, (48, 64)), K)
    np.testing.assert_array_equal(conv.camera_matrix(info, (48, 64), use_rectified=True), K)
    with pytest.raises(InputError, match="64x48") as e:
        conv.camera_matrix(info, (48, 80))
    assert e.value.kind == "size_mismatch"
    info.k = [float("nan")] + [0.0] * 8
    with pytest.raises(InputError) as e:
        conv.camera_matrix(info, (48, 64))
    assert e.value.kind == "intrinsics"


def test_sync_pairs_by_stamp_drops_unmatched_and_resets_on_jump():
    sync = StampSynchronizer(tolerance_s=0.002)
    assert sync.add_image(1_000_000_000, "img1").matched == []
    assert sync.add_info(1_001_000_000, "info1").matched == [("img1", "info1")]  # within tolerance
    assert sync.add_info(2_000_000_000, "info2").matched == []
    assert sync.add_image(2_000_000_000, "img2").matched == [("img2", "info2")]  # info first
    sync.add_image(3_000_000_000, "lonely")
    assert sync.add_info(4_000_000_000, "info4").unmatched_images == ["lonely"]
    jumped = sync.add_image(10, "after_jump")
    assert jumped.reset and jumped.matched == [] and sync.resets == 1


def test_worker_drops_oldest_and_survives_errors():
    gate, seen, errors = threading.Event(), [], []

    def process(item):
        gate.wait(5)
        if item == "boom":
            raise RuntimeError("boom")
        seen.append(item)

    worker = FrameWorker(process, on_error=errors.append)
    worker.submit("first")
    assert worker.wait_idle(0.05) is False  # blocked on the gate
    worker.submit("dropped")
    worker.submit("boom")
    gate.set()
    assert worker.wait_idle(5)
    worker.submit("last")
    assert worker.wait_idle(5)
    worker.stop()
    assert seen == ["first", "last"] and worker.dropped == 1 and len(errors) == 1


def test_params_validation():
    assert NodeParams().classes == ()
    for bad in (dict(score_threshold=1.5), dict(model="yolo"), dict(qos_reliability="sometimes"),
                dict(class_filter="chair,dra gon"), dict(mesh_uri_scheme="http"), dict(max_objects=0), dict(device="tpu"),
                dict(sync_tolerance_s=float("nan")), dict(tf_prefix="a/b"), dict(publish_tf="yes")):
        with pytest.raises(ValueError, match="parameter"):
            NodeParams(**bad)
    assert NodeParams(class_filter="chair, table", model="fixture:/x.json").classes == ("chair", "table")
    # class_filter is checked against the loaded model's classes, not a global list.
    assert check_changes(NodeParams(), {"class_filter": "chair"}, model_classes=("chair", "table")).ok
    refused = check_changes(NodeParams(), {"class_filter": "chair,sofa"}, model_classes=("chair", "table"))
    assert not refused.ok and "sofa" in refused.reason and "loaded model" in refused.reason
    assert check_changes(NodeParams(), {"class_filter": "mug"}, model_classes=("mug",)).ok
    assert check_changes(NodeParams(), {"score_threshold": 1}).ok
    result = check_changes(NodeParams(), {"score_threshold": -0.1})
    assert not result.ok and "score_threshold" in result.reason


def _info_with(K, size, **fields):
    from sensor_msgs.msg import RegionOfInterest
    info = conv.camera_info_msg(_header(), K, size)
    roi = fields.pop("roi", None)
    if roi is not None:
        info.roi = RegionOfInterest(x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3])
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def test_binning_and_roi_are_applied_to_k_as_rep104_defines_them():
    K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
    binned = _info_with(K, (480, 640), binning_x=2, binning_y=2)
    np.testing.assert_allclose(conv.camera_matrix(binned, (240, 320)), [[300, 0, 160], [0, 300, 120], [0, 0, 1]])
    roi = _info_with(K, (480, 640), roi=(100, 50, 320, 240))
    np.testing.assert_allclose(conv.camera_matrix(roi, (240, 320)), [[600, 0, 220], [0, 600, 190], [0, 0, 1]])
    with pytest.raises(InputError, match="320x240 expected") as e:
        conv.camera_matrix(binned, (480, 320))
    assert e.value.kind == "size_mismatch"
    already = _info_with(K, (240, 320), binning_x=2, binning_y=2)  # a driver that binned K itself
    assert conv.binning_already_applied(already, (240, 320))
    np.testing.assert_allclose(conv.camera_matrix(already, (240, 320)), K)


def test_implausible_k_is_rejected_with_its_numbers():
    for K, text in ((np.array([[1e12, 0, 320], [0, 1e12, 240], [0, 0, 1]]), r"fx=1e\+12"),
                    (np.array([[600.0, 0, 5000], [0, 600.0, 240], [0, 0, 1]]), "cx=5000")):
        with pytest.raises(InputError, match=text) as e:
            conv.camera_matrix(_info_with(K, (480, 640)), (480, 640))
        assert e.value.kind == "intrinsics" and "640x480" in str(e.value)
    info = _info_with(np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]]), (480, 640))
    assert not conv.has_distortion(info)
    info.d = [0.1, -0.05, 0.0, 0.0, 0.0]
    assert conv.has_distortion(info)
