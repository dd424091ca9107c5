"""The demo's reporting without ROS: 9-DoF mesh placement and the 3D scene view, Scan2CAD
accuracy of prediction lists, latency percentiles, decoding ~/alignments back to predictions."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cad_perception_ros.data.sample import ObjectAnnotation
from cad_perception_ros.evaluation.scene_view import place, render_scene_view
from cad_perception_ros.tools.demo_report import accuracy, latency_stats
from cad_perception_ros.types import Alignment9D, CadPrediction


def _object(t, class_id=5, cad_id="chair_x"):
    a = Alignment9D(Rotation.from_euler("y", 30, degrees=True).as_matrix(), np.array(t, float), np.array([0.5, 1.0, 0.6]))
    return ObjectAnnotation(class_id=class_id, cad_id=cad_id, alignment=a, box_xyxy=np.array([1.0, 2.0, 30.0, 40.0]))


def _prediction(obj, dt=(0.0, 0.0, 0.0), score=0.9):
    a = Alignment9D(obj.alignment.rotation, obj.alignment.translation + np.array(dt), obj.alignment.scale)
    return CadPrediction(class_id=obj.class_id, class_name="chair", score=score, box_xyxy=obj.box_xyxy,
                         alignment=a, cad_id=obj.cad_id)


def test_place_applies_rotation_anisotropic_scale_then_translation():
    obj = _object([1.0, -0.5, 3.0])
    x = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.5]])
    R, t, s = obj.alignment.rotation, obj.alignment.translation, obj.alignment.scale
    np.testing.assert_allclose(place(x, obj.alignment), (R @ (x * s).T).T + t, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        place(np.zeros((4, 2)), obj.alignment)


def test_scene_view_draws_predictions_and_ground_truth(tmp_path):
    from PIL import Image
    objects = [_object([0.5, 0.0, 3.0]), _object([-1.0, 0.2, 4.0])]
    path = render_scene_view(tmp_path / "v.png", [_prediction(objects[0], (0.3, 0, 0))], objects, None)
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    red = ((rgb[..., 0] - rgb[..., 1] > 40) & (rgb[..., 0] - rgb[..., 2] > 40)).sum()
    blue = ((rgb[..., 2] - rgb[..., 0] > 80) & (rgb[..., 2] > rgb[..., 1])).sum()
    assert rgb.shape[1] > rgb.shape[0] and red > 20 and blue > 20


def test_accuracy_uses_scan2cad_criteria():
    objects = [_object([0.5, 0.0, 3.0]), _object([-1.0, 0.2, 4.0])]
    good = accuracy([([_prediction(objects[0]), _prediction(objects[1], (0.15, 0, 0))], objects)])
    assert good["instance_average"]["alignment_accuracy"] == 100.0 and good["aligned"] == 2
    off = accuracy([([_prediction(objects[0]), _prediction(objects[1], (0.25, 0, 0))], objects)])  # 25 cm > 20 cm
    assert off["instance_average"]["alignment_accuracy"] == 50.0 and off["criteria"]["translation_m"] == 0.2
    low = accuracy([([_prediction(objects[0], score=0.4)], objects[:1])])  # score <= 0.5 is not scored
    assert low["aligned"] == 0 and low["predicted"] == 1


def test_latency_stats_percentiles():
    s = latency_stats([10.0, 20.0, 30.0, 40.0, 100.0])
    assert (s["n"], s["p50"], s["max"]) == (5, 30.0, 100.0) and s["p95"] == pytest.approx(88.0)
    assert latency_stats([]) == {}


def test_prediction_from_alignment_inverts_alignments_msg():
    pytest.importorskip("rclpy")
    from std_msgs.msg import Header

    from cad_perception_ros.ros.conversions import UNIT_CUBE, alignments_msg, prediction_from_alignment
    pred = _prediction(_object([0.1, 0.2, 2.5]))
    msg = alignments_msg(Header(frame_id="cam"), [pred], lambda _: UNIT_CUBE)
    back = prediction_from_alignment(msg.objects[0])
    np.testing.assert_allclose(back.alignment.rotation, pred.alignment.rotation, atol=1e-12)
    np.testing.assert_allclose(back.alignment.translation, pred.alignment.translation, atol=1e-12)
    np.testing.assert_allclose(back.alignment.scale, pred.alignment.scale, atol=1e-12)
    assert (back.class_id, back.cad_id, back.score) == (pred.class_id, pred.cad_id, pytest.approx(0.9))
