"""Evaluation: Scan2CAD criteria flip at their thresholds, matching, averages, AP, scene protocol."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cad_perception_ros.data.sample import ObjectAnnotation
from cad_perception_ros.evaluation.detection import average_precision, box_iou
from cad_perception_ros.evaluation.metrics import (
    EvaluationConfig,
    evaluate_images,
    format_markdown,
    rotation_error_deg,
    scale_ratio_error,
)
from cad_perception_ros.evaluation.report import read_report, write_report
from cad_perception_ros.evaluation.scene import (
    SceneFrame,
    alignment_to_world,
    evaluate_scenes,
    scene_nms,
    scene_objects_from_frames,
)
from cad_perception_ros.types import SCAN2CAD_CLASSES, Alignment9D, CadPrediction

BASE_R = Rotation.from_euler("xyz", [10, 30, -5], degrees=True).as_matrix()
BOX = np.array([10.0, 20.0, 60.0, 90.0])


def alignment(t=(0.0, 0.0, 2.0), r=BASE_R, s=(1.0, 0.8, 0.6)) -> Alignment9D:
    return Alignment9D(rotation=np.asarray(r), translation=np.asarray(t), scale=np.asarray(s))


def gt(cls=5, cad="chair_0", sym="none", box=BOX, **kw) -> ObjectAnnotation:
    return ObjectAnnotation(class_id=cls, cad_id=cad, alignment=alignment(**kw), box_xyxy=np.asarray(box),
                            symmetry=sym)


def pred(cls=5, cad="chair_0", score=0.9, box=BOX, **kw) -> CadPrediction:
    return CadPrediction(class_id=cls, class_name=SCAN2CAD_CLASSES[cls], score=score, box_xyxy=np.asarray(box),
                         alignment=alignment(**kw), cad_id=cad)


def accuracy(p, g, **kw) -> float:
    return evaluate_images([([p], [g])], **kw).instance_average("alignment_accuracy")


def yaw(deg: float) -> np.ndarray:
    return BASE_R @ Rotation.from_euler("y", deg, degrees=True).as_matrix()


@pytest.mark.parametrize("inside,outside", [
    (dict(t=(0.199, 0.0, 2.0)), dict(t=(0.201, 0.0, 2.0))),
    (dict(r=yaw(19.9)), dict(r=yaw(20.1))),
    (dict(s=(1.199, 0.8 * 1.199, 0.6 * 1.199)), dict(s=(1.201, 0.8 * 1.201, 0.6 * 1.201))),
])
def test_each_criterion_flips_at_threshold(inside, outside):
    assert accuracy(pred(**inside), gt()) == 100.0
    assert accuracy(pred(**outside), gt()) == 0.0


def test_error_definitions_match_scan2cad():
    assert scale_ratio_error(np.array([1.2, 1.0, 0.8]), np.ones(3)) == pytest.approx(0.0)  # mean of ratios
    assert scale_ratio_error(np.array([2.0, 1.0, 1.0]), np.ones(3)) == pytest.approx(1 / 3)
    assert rotation_error_deg(yaw(180), BASE_R, "2fold") == pytest.approx(0.0, abs=1e-5)
    assert rotation_error_deg(yaw(180), BASE_R, "none") == pytest.approx(180.0, abs=1e-5)


def test_wrong_class_never_matches():
    assert accuracy(pred(cls=4), gt(cls=5)) == 0.0


def test_symmetry_rule_follows_predicted_cad():
    sym_gt = gt(sym="2fold")
    assert accuracy(pred(r=yaw(180)), sym_gt) == 100.0
    assert accuracy(pred(r=yaw(180)), sym_gt, symmetry_of={"chair_0": "2fold"}) == 100.0
    assert accuracy(pred(r=yaw(180), cad="other"), sym_gt, symmetry_of={"other": "none"}) == 0.0


def test_duplicates_count_once_and_cap_per_class():
    objects = [gt(), gt(t=(3.0, 0.0, 5.0), box=[100, 100, 150, 150])]  # two chairs, far apart
    predictions = [pred(score=0.9), pred(score=0.8), pred(score=0.7)]  # all on the first chair
    res = evaluate_images([(predictions, objects)])
    chair = res.classes[5]
    assert (chair.num_gt, chair.aligned) == (2, 1)
    assert res.instance_average("alignment_accuracy") == pytest.approx(50.0)
    # the cap keeps only the two best predictions: a correct third one is never evaluated
    predictions = [pred(score=0.9), pred(score=0.8), pred(score=0.7, t=(3.0, 0.0, 5.0))]
    assert evaluate_images([(predictions, objects)]).classes[5].aligned == 1
    predictions = [pred(score=0.9), pred(score=0.8, t=(3.0, 0.0, 5.0)), pred(score=0.7)]
    assert evaluate_images([(predictions, objects)]).classes[5].aligned == 2


def test_score_threshold_drops_low_scores():
    assert accuracy(pred(score=0.4), gt()) == 0.0
    assert accuracy(pred(score=0.4), gt(), config=EvaluationConfig(score_threshold=0.3)) == 100.0


def test_class_and_instance_averages_and_retrieval_aware():
    frame1 = ([pred(cls=0, cad="tub_0"), pred(cls=0, cad="tub_x", t=(1.0, 0.0, 3.0), score=0.8)],
              [gt(cls=0, cad="tub_0"), gt(cls=0, cad="tub_1", t=(1.0, 0.0, 3.0))])
    frame2 = ([pred(cls=5, cad="chair_0")], [gt(cls=5, cad="chair_0")])
    res = evaluate_images([frame1, frame2])
    tub, chair = res.classes[0], res.classes[5]
    assert (tub.num_gt, tub.aligned, tub.retrieval_aligned) == (2, 2, 1)
    assert (chair.num_gt, chair.aligned, chair.retrieval_aligned) == (1, 1, 1)
    assert res.class_average("alignment_accuracy") == pytest.approx(100.0)
    assert res.class_average("retrieval_accuracy") == pytest.approx((50.0 + 100.0) / 2)
    assert res.instance_average("retrieval_accuracy") == pytest.approx(200.0 / 3)
    assert math.isnan(res.classes[1].alignment_accuracy)  # no beds: excluded from the class average
    iou = lambda a, b: 0.6 if {a, b} == {"tub_x", "tub_1"} else 0.0  # noqa: E731
    exact = evaluate_images([frame1, frame2], cad_iou=iou)  # ROCA's default: the exact CAD model only
    assert exact.classes[0].retrieval_aligned == 1
    loose = evaluate_images([frame1, frame2], cad_iou=iou, config=EvaluationConfig(retrieval_match="surface-iou"))
    assert loose.classes[0].retrieval_aligned == 2


def test_ap_perfect_detector_and_ranked_false_positive():
    frames = [([pred(box=[0, 0, 10, 10], score=0.9), pred(cls=2, box=[20, 20, 40, 40], score=0.3)],
               [gt(box=[0, 0, 10, 10]), gt(cls=2, box=[20, 20, 40, 40])])]
    res = evaluate_images(frames)
    assert res.classes[5].ap50 == pytest.approx(100.0)
    assert res.classes[2].ap50 == pytest.approx(100.0)
    assert res.instance_average("ap50") == pytest.approx(100.0)
    assert res.class_average("ap50") == pytest.approx(100.0)
    assert average_precision([0.9, 0.8], [False, True], 1) == pytest.approx(0.5)
    assert average_precision([0.9], [True], 2) == pytest.approx(51 / 101)  # recall 0.5 reached
    assert math.isnan(average_precision([0.9], [False], 0))
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0] == pytest.approx(1 / 3)


def pose(yaw_deg: float, t) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
    out[:3, 3] = t
    return out


def test_scene_protocol_merges_frames_and_removes_duplicates():
    world_obj = alignment(t=(1.0, 0.5, 4.0))
    poses = [pose(0, (0, 0, 0)), pose(30, (0.5, 0.0, -0.2))]
    frames = []
    for i, cam_to_world in enumerate(poses):
        world_to_cam = np.linalg.inv(cam_to_world)
        cam = Alignment9D(rotation=world_to_cam[:3, :3] @ world_obj.rotation,
                          translation=world_to_cam[:3, :3] @ world_obj.translation + world_to_cam[:3, 3],
                          scale=world_obj.scale)
        g = ObjectAnnotation(class_id=5, cad_id="chair_0", alignment=cam, box_xyxy=BOX)
        p = CadPrediction(class_id=5, class_name="chair", score=0.9 - 0.1 * i, box_xyxy=BOX, alignment=cam,
                          cad_id="chair_0")
        frames.append(SceneFrame(scene_id="s0", camera_to_world=cam_to_world, predictions=[p], objects=[g]))
    objects = scene_objects_from_frames(frames)
    assert len(objects["s0"]) == 1
    assert np.allclose(objects["s0"][0].alignment.translation, world_obj.translation)
    world_preds = [alignment_to_world(f.predictions[0].alignment, f.camera_to_world) for f in frames]
    assert np.allclose(world_preds[1].rotation, world_obj.rotation)
    merged = scene_nms([CadPrediction(5, "chair", 0.9 - 0.1 * i, BOX, a, "chair_0")
                        for i, a in enumerate(world_preds)], EvaluationConfig())
    assert len(merged) == 1 and merged[0].score == pytest.approx(0.9)
    res = evaluate_scenes(frames)
    assert (res.classes[5].num_gt, res.classes[5].aligned) == (1, 1)
    assert res.num_units == 1 and res.protocol == "scene"
    extra = {"s0": objects["s0"], "s1": [objects["s0"][0]]}  # a scene without frames still counts
    assert evaluate_scenes(frames, extra).instance_average("alignment_accuracy") == pytest.approx(50.0)
    with pytest.raises(ValueError, match="rigid"):
        alignment_to_world(world_obj, np.diag([2.0, 1.0, 1.0, 1.0]))


def test_markdown_and_report(tmp_path):
    res = evaluate_images([([pred()], [gt()])])
    table = format_markdown(res)
    assert "| chair | 1 | 100.0 | 100.0 | 100.0 |" in table
    assert "| **class avg** |" in table and "| **instance avg** |" in table
    assert "| bed | 0 | - | - | - |" in table
    json_path, md_path = write_report(res, tmp_path, title="Synthetic val")
    data = read_report(json_path)
    assert data["instance_average"]["alignment_accuracy"] == 100.0
    assert data["classes"][1]["alignment_accuracy"] is None
    assert md_path.read_text().startswith("# Synthetic val")
    with pytest.raises(FileExistsError):
        write_report(res, tmp_path)
    write_report(res, tmp_path, overwrite=True)
    assert json.loads(json_path.read_text())["protocol"] == "image"


def test_error_breakdown_without_detections_reports_nothing_detected():
    from cad_perception_ros.data.sample import ObjectAnnotation
    from cad_perception_ros.evaluation.breakdown import error_breakdown, format_breakdown
    from cad_perception_ros.types import Alignment9D
    gt = ObjectAnnotation(class_id=0, cad_id="a", alignment=Alignment9D(np.eye(3), np.zeros(3), np.ones(3)),
                          box_xyxy=np.array([0.0, 0.0, 10.0, 10.0]), symmetry="none", visible_pixels=100)
    b = error_breakdown([([], [gt])])
    assert (b.num_gt, b.num_detected) == (1, 0) and math.isnan(b.median_rotation_deg) and math.isnan(b.all_ok)
    assert "| 1 | 0 |" in format_breakdown(b)


def test_bootstrap_interval_collapses_on_identical_units_and_matches_the_binomial():
    from cad_perception_ros.evaluation.bootstrap import bootstrap_alignment

    same = np.tile(np.array([[[2, 1]], [[1, 1]]]).reshape(1, 2, 2), (50, 1, 1))  # 2 chairs 1 right, 1 bed right
    interval = bootstrap_alignment(same)
    assert interval["instance_average"] == pytest.approx((100 * 2 / 3, 100 * 2 / 3))
    assert interval["class_average"] == pytest.approx((75.0, 75.0))
    # 400 one-object images, 40 aligned: p = 10 %, binomial standard error 1.5 points
    counts = np.zeros((400, 2, 1), dtype=int)
    counts[:, 0, 0] = 1
    counts[:40, 1, 0] = 1
    low, high = bootstrap_alignment(counts, draws=2000)["instance_average"]
    assert 6.5 < low < 7.8 and 12.2 < high < 13.5
    assert bootstrap_alignment(counts, seed=3) == bootstrap_alignment(counts, seed=3)
    with pytest.raises(ValueError, match="shape"):
        bootstrap_alignment(np.zeros((0, 2, 9)))
    with pytest.raises(ValueError, match="level"):
        bootstrap_alignment(counts, level=100)


def test_paired_bootstrap_separates_models_whose_own_intervals_overlap():
    from cad_perception_ros.evaluation.bootstrap import bootstrap_alignment, bootstrap_difference

    counts_b = np.zeros((400, 2, 1), dtype=int)
    counts_b[:, 0, 0] = 1
    counts_b[:40, 1, 0] = 1  # B: 10 %
    counts_a = counts_b.copy()
    counts_a[40:60, 1, 0] = 1  # A: B's 40 plus 20 more, 15 %
    a_low, _ = bootstrap_alignment(counts_a)["instance_average"]
    _, b_high = bootstrap_alignment(counts_b)["instance_average"]
    assert a_low < b_high  # side by side the intervals overlap ...
    low, high = bootstrap_difference(counts_a, counts_b)["instance_average"]
    assert 2.0 < low < 5.0 < high < 8.0  # ... paired, A is ahead: 20 of 400 images, +5 points
    assert bootstrap_difference(counts_b, counts_a)["instance_average"] == pytest.approx((-high, -low))
    assert bootstrap_difference(counts_a, counts_a) == {"class_average": (0.0, 0.0), "instance_average": (0.0, 0.0)}
    other_units = counts_b.copy()
    other_units[0, 0, 0] = 2
    with pytest.raises(ValueError, match="same units"):
        bootstrap_difference(counts_a, other_units)
    with pytest.raises(ValueError, match="same units"):
        bootstrap_difference(counts_a, counts_b[:100])


def test_results_carry_per_unit_counts_and_report_the_interval(tmp_path):
    right, wrong = pred(), pred(t=np.array([1.0, 0.0, 2.5]))
    frames = [([right], [gt()])] * 3 + [([wrong], [gt()])]
    res = evaluate_images(frames)
    assert res.unit_counts.shape == (4, 2, len(res.classes))
    assert res.unit_counts[:, 0].sum() == 4 and res.unit_counts[:, 1].sum() == 3  # GT, aligned
    low, high = res.alignment_interval["instance_average"]
    assert low <= res.instance_average("alignment_accuracy") == 75.0 <= high and low < high
    assert "95 % bootstrap interval over the 4 images" in format_markdown(res)
    json_path, _ = write_report(res, tmp_path)
    assert read_report(json_path)["alignment_accuracy_95_interval"]["instance_average"] == [low, high]
