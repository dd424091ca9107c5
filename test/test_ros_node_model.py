"""The node with a REAL model (random-weight tiny RocaNet model dir, procedural CAD database) in its
own process; rendered views with ground truth fed from this process over loopback-only DDS.

Checks that every output carries the input's stamp and frame, that ~/alignments, ~/detections,
~/poses and /tf agree, and that the published predictions score exactly like the CadAligner run
directly on the same frames (what `cad-perception evaluate` reports). Score threshold 0, so the
random weights still produce objects."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(120)]
rclpy = pytest.importorskip("rclpy")

NS, CAM = "/cp_model", "/cam_model"
OUT = f"{NS}/cad_perception"


@pytest.fixture(scope="module")
def served(tmp_path_factory, CameraClient, apply_env, dds_env, start_node, stop_process, tiny_model_and_views, unique_domain_id):
    """Every view served through the node: (dataset, model_dir, client, [(stamp, view index)])."""
    tmp = tmp_path_factory.mktemp("node_model")
    model_dir, _, dataset = tiny_model_and_views(tmp)
    env = dds_env(unique_domain_id(3))
    apply_env(env)
    proc = start_node(env, ["-r", f"__ns:={NS}", "-p", f"model_dir:={model_dir}", "-p", "score_threshold:=0.0",
                            "-p", f"image_topic:={CAM}/image", "-p", f"camera_info_topic:={CAM}/camera_info",
                            "-p", "qos_reliability:=reliable"], tmp / "node.log")
    rclpy.init()
    try:
        client = CameraClient(rclpy, camera=CAM, out_ns=OUT)
        try:
            client.wait_connected(proc=proc)
        except AssertionError:
            raise AssertionError("node not ready; log:\n" + (tmp / "node.log").read_text()[-3000:]) from None
        stamps = [(client.serve(dataset[i].image, dataset[i].K), i) for i in range(len(dataset))]
        yield dataset, model_dir, client, stamps
    finally:
        stop_process(proc)
        rclpy.try_shutdown()


def test_outputs_carry_the_input_stamp_and_frame(served):
    from cad_perception_ros.ros.conversions import stamp_to_ns
    _, _, client, stamps = served
    for stamp, _ in stamps:
        alignments = client.by_stamp("alignments", stamp)
        assert len(alignments.objects) > 0  # threshold 0: the random model still yields objects
        headers = [alignments.header, client.by_stamp("detections", stamp).header,
                   client.by_stamp("poses", stamp).header, client.by_stamp("debug_image", stamp).header]
        headers += [t.header for t in client.by_stamp("tf", stamp).transforms]
        headers += [m.header for m in client.by_stamp("markers", stamp).markers]
        assert all(stamp_to_ns(h.stamp) == stamp and h.frame_id == "cam_optical" for h in headers)
        assert alignments.model == "roca_tiny_random"


def test_alignments_detections_poses_and_tf_agree(served):
    _, _, client, stamps = served
    for stamp, _ in stamps:
        alignments, detections = client.by_stamp("alignments", stamp), client.by_stamp("detections", stamp)
        poses, tf = client.by_stamp("poses", stamp), client.by_stamp("tf", stamp)
        n = len(alignments.objects)
        assert len(detections.detections) == len(poses.poses) == len(tf.transforms) == n
        assert len({d.id for d in detections.detections}) == n  # one id per object
        for obj, det, pose, tr in zip(alignments.objects, detections.detections, poses.poses, tf.transforms):
            # det.id: the object's track name (its class + a number), not the CAD id
            assert det.id.startswith(f"{obj.class_name}_") and det.results[0].hypothesis.class_id == obj.class_name
            assert det.results[0].pose.pose == det.bbox.center == pose == obj.pose
            assert tr.child_frame_id == obj.tf_frame == f"cad_{det.id}"
            p, t = obj.pose.position, tr.transform.translation
            assert (t.x, t.y, t.z) == (p.x, p.y, p.z) and tr.transform.rotation == obj.pose.orientation


def test_published_predictions_score_like_the_pipeline(served):
    """Same poses (1e-4) and exactly the same Scan2CAD accuracy / AP50 as the aligner run directly."""
    from cad_perception_ros.evaluation.metrics import EvaluationConfig, evaluate_images
    from cad_perception_ros.evaluation.run import evaluate_aligner, grid_iou_lookup
    from cad_perception_ros.pipeline import CadAligner
    from cad_perception_ros.ros.aligners import filter_predictions
    from cad_perception_ros.ros.conversions import prediction_from_alignment
    from cad_perception_ros.ros.params import NodeParams
    dataset, model_dir, client, stamps = served
    aligner = CadAligner.from_model_dir(model_dir, score_threshold=0.0)
    params = NodeParams(score_threshold=0.0)
    node_frames, direct_frames = [], []
    for stamp, i in sorted(stamps, key=lambda s: s[1]):
        sample = dataset[i]
        published = [prediction_from_alignment(o) for o in client.by_stamp("alignments", stamp).objects]
        direct = filter_predictions(aligner(sample.image, sample.K), params)
        assert [(p.class_id, p.cad_id) for p in published] == [(q.class_id, q.cad_id) for q in direct]
        for p, q in zip(published, direct):
            np.testing.assert_allclose(p.alignment.translation, q.alignment.translation, atol=1e-4)
            np.testing.assert_allclose(p.alignment.scale, q.alignment.scale, atol=1e-4)
            np.testing.assert_allclose(p.alignment.rotation, q.alignment.rotation, atol=1e-4)
            np.testing.assert_allclose(p.box_xyxy, q.box_xyxy, atol=1e-3)  # float32 in the message
            assert p.score == pytest.approx(q.score, abs=1e-6)
        node_frames.append((published, sample.objects))
        direct_frames.append((direct, sample.objects))
    db = aligner.cad_database
    kwargs = dict(class_names=aligner.class_names, symmetry_of={m.cad_id: m.symmetry for m in db},
                  cad_iou=grid_iou_lookup(db))
    reported = evaluate_aligner(aligner, dataset, protocols=("image",), progress=False)["image"]
    assert evaluate_images(node_frames, **kwargs).to_dict() == reported.to_dict()
    loose = EvaluationConfig(score_threshold=0.0)  # every published object takes part in the matching
    assert (evaluate_images(node_frames, config=loose, **kwargs).to_dict()
            == evaluate_images(direct_frames, config=loose, **kwargs).to_dict())
    assert sum(c.num_gt for c in reported.classes) == sum(len(s.objects) for s in (dataset[i] for i in range(len(dataset))))


def test_rotation_in_messages_is_orthonormal(served):
    _, _, client, stamps = served
    for stamp, _ in stamps:
        for obj in client.by_stamp("alignments", stamp).objects:
            q = obj.pose.orientation
            R = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
            assert abs(np.linalg.det(R) - 1.0) < 1e-9 and np.linalg.norm([q.x, q.y, q.z, q.w]) == pytest.approx(1.0)
