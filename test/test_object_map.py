"""The object map's fusion: association across a moving camera, robust and symmetry-aware
averages, CAD vote, confidence, removal of objects not seen where they should have been."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cad_perception_ros.data.scenes import look_at
from cad_perception_ros.evaluation.metrics import rotation_error_deg
from cad_perception_ros.mapping.averaging import average_rotations, nearest_equivalent, rotation_y
from cad_perception_ros.mapping.object_map import MapConfig, ObjectMap, vote_cad, Observation
from cad_perception_ros.mapping.tf_buffer import RigidTransform
from cad_perception_ros.types import Alignment9D, CadPrediction

K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
SIZE = (480, 640)
UPRIGHT = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # canonical +y -> world +z


def world_object(x, y, yaw=0.3, scale=(0.6, 0.9, 0.5)) -> Alignment9D:
    rot = Rotation.from_euler("z", yaw).as_matrix() @ UPRIGHT
    return Alignment9D(rot, np.array([x, y, 0.45]), np.array(scale))


def seen_from(obj: Alignment9D, camera_to_map: RigidTransform, *, cls="chair", score=0.8, cad="chair_a",
              dt=np.zeros(3), rot_noise=np.eye(3), scale_factor=1.0) -> CadPrediction:
    inv = camera_to_map.inverse()
    cam = Alignment9D(inv.rotation @ obj.rotation @ rot_noise, inv.rotation @ (obj.translation + dt) + inv.translation,
                      obj.scale * scale_factor)
    return CadPrediction(class_id=5 if cls == "chair" else 8, class_name=cls, score=score,
                         box_xyxy=np.array([0.0, 0, 10, 10]), alignment=cam, cad_id=cad)


def camera_at(eye, target=(2.0, 2.0, 0.45)) -> RigidTransform:
    return RigidTransform.from_matrix(look_at(np.asarray(eye, float), np.asarray(target, float)))


ORBIT = [camera_at((2 + 3 * np.cos(a), 2 + 3 * np.sin(a), 1.4)) for a in np.linspace(0, 1.2, 8)]


def test_static_objects_keep_ids_and_the_fused_pose_beats_each_frame():
    rng = np.random.default_rng(0)
    chair, table = world_object(2.0, 2.0), world_object(2.4, 1.6, yaw=1.0)
    fusion, frame_errors, frame_angles, ids = ObjectMap(), [], [], set()
    for i, cam in enumerate(ORBIT):
        ray = (chair.translation - cam.translation) / np.linalg.norm(chair.translation - cam.translation)
        noise = rng.normal(0, 0.15) * ray + rng.normal(0, 0.04, 3)  # monocular: depth least sure
        turn = rng.normal(0, 0.12, 3)
        frame_errors.append(np.linalg.norm(noise))
        frame_angles.append(np.degrees(np.linalg.norm(turn)))
        preds = [seen_from(chair, cam, dt=noise, rot_noise=Rotation.from_rotvec(turn).as_matrix()),
                 seen_from(table, cam, cls="table", cad="table_a", dt=rng.normal(0, 0.08, 3))]
        assigned = fusion.update(preds, cam, K, SIZE, stamp_s=float(i))
        ids.add((assigned[0].object_id, assigned[1].object_id))
    assert ids == {(0, 1)} and [o.name for o in fusion.objects] == ["chair_0", "table_0"]
    fused = fusion.objects[0]
    assert np.linalg.norm(fused.alignment.translation - chair.translation) < 0.7 * np.mean(frame_errors)
    assert rotation_error_deg(fused.alignment.rotation, chair.rotation) < 0.6 * np.mean(frame_angles)
    assert fused.confidence > 0.99 and fused.last_seen_s == 7.0 and len(fused.observations) == 8


def test_two_views_with_depth_errors_meet_where_their_rays_cross():
    from cad_perception_ros.mapping.averaging import ray_weighted_mean
    truth = np.array([2.0, 2.0, 0.5])
    rays = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    seen = truth + np.array([0.4, -0.3])[:, None] * rays  # each wrong only along its own ray
    fused = ray_weighted_mean(seen, rays, np.ones(2), ratio=100.0)
    assert np.linalg.norm(fused - truth) < 0.01 < np.linalg.norm(seen.mean(0) - truth)
    np.testing.assert_allclose(ray_weighted_mean(seen, rays, np.ones(2), ratio=1.0), seen.mean(0), atol=1e-9)


def test_two_fold_flips_are_averaged_on_the_nearest_equivalent():
    truth = world_object(2.0, 2.0)
    flip = rotation_y(np.pi)
    fusion = ObjectMap(symmetry_of=lambda cad: "2fold")
    for i, cam in enumerate(ORBIT):  # 5 of 8 flipped
        fusion.update([seen_from(truth, cam, rot_noise=flip if i % 3 else np.eye(3))], cam, K, SIZE, float(i))
    (obj,) = fusion.objects
    assert rotation_error_deg(obj.alignment.rotation, truth.rotation, "2fold") < 1e-6


def test_four_fold_quarter_turns_swap_the_scale_axes_back():
    truth = world_object(2.0, 2.0, scale=(0.4, 0.8, 1.2))
    fusion = ObjectMap(symmetry_of=lambda cad: "4fold")
    for i, cam in enumerate(ORBIT):
        quarter = i % 2 == 1
        pred = seen_from(truth, cam, rot_noise=rotation_y(np.pi / 2) if quarter else np.eye(3))
        if quarter:  # the same box described a quarter turn on: x and z extents swapped
            pred.alignment.scale[:] = truth.scale[[2, 1, 0]]
        fusion.update([pred], cam, K, SIZE, float(i))
    (obj,) = fusion.objects
    np.testing.assert_allclose(obj.alignment.scale, truth.scale, atol=1e-9)
    assert rotation_error_deg(obj.alignment.rotation, truth.rotation) < 1e-6


def test_inf_symmetry_averages_the_up_axis_and_keeps_the_heading():
    reference = world_object(0, 0).rotation
    tilts = [Rotation.from_rotvec(v).as_matrix() for v in ([0.1, 0, 0], [-0.1, 0, 0])]
    spins = [t @ reference @ rotation_y(a) for a, t in zip((0.0, 2.0), tilts)]  # world tilts, any spin
    mean = average_rotations(np.stack(spins), np.ones(2), "inf", reference)
    np.testing.assert_allclose(mean[:, 1], reference[:, 1], atol=1e-9)  # up: the tilts cancel
    np.testing.assert_allclose(mean[:, 0], reference[:, 0], atol=1e-9)  # heading: the reference's
    turned, j = nearest_equivalent(reference @ rotation_y(2.0), reference, "inf")
    assert j == 0 and rotation_error_deg(turned, reference) < 1e-6
    with pytest.raises(ValueError, match="symmetry"):
        nearest_equivalent(reference, reference, "3fold")


def test_a_wrong_heading_now_and_then_pulls_the_robust_mean_little():
    truth = world_object(2.0, 2.0)
    fusion = ObjectMap()
    for i, cam in enumerate(ORBIT):
        wrong = Rotation.from_euler("y", 150, degrees=True).as_matrix() if i in (2, 5) else np.eye(3)
        fusion.update([seen_from(truth, cam, rot_noise=wrong, dt=np.array([0.3, 0, 0]) if i == 3 else np.zeros(3))],
                      cam, K, SIZE, float(i))
    (obj,) = fusion.objects
    assert rotation_error_deg(obj.alignment.rotation, truth.rotation) < 3.0
    assert np.linalg.norm(obj.alignment.translation - truth.translation) < 0.02  # the shifted one weighs little


def test_an_object_not_seen_where_it_should_be_visible_is_removed_out_of_view_kept():
    chair, far_table = world_object(2.0, 2.0), world_object(12.0, -9.0)
    fusion = ObjectMap(MapConfig(max_missed=2, miss_confidence_factor=0.5))
    cam = ORBIT[0]
    fusion.update([seen_from(chair, cam), seen_from(far_table, cam, cls="table")], cam, K, SIZE, 0.0)
    assert len(fusion.objects) == 2
    fusion.update([], cam, K, SIZE, 1.0)  # chair in view, not detected: one miss; table out of range
    assert [o.missed for o in fusion.objects] == [1, 0] and fusion.objects[0].confidence < 0.8
    behind = camera_at((2.0, 5.0, 1.4), target=(2.0, 8.0, 0.45))  # looking away from both
    fusion.update([], behind, K, SIZE, 2.0)
    assert [o.missed for o in fusion.objects] == [1, 0]
    fusion.update([], cam, K, SIZE, 3.0)
    assert [o.name for o in fusion.objects] == ["table_0"] and fusion.removed == 1
    assigned = fusion.update([seen_from(chair, cam)], cam, K, SIZE, 4.0)
    assert assigned[0].name == "chair_1" and assigned[0].object_id == 2  # an id never comes back


def test_classes_low_scores_cad_vote_and_clear():
    chair = world_object(2.0, 2.0)
    fusion = ObjectMap()
    cam = ORBIT[0]
    out = fusion.update([seen_from(chair, cam), seen_from(chair, cam, cls="table"), seen_from(chair, cam, score=0.2)],
                        cam, K, SIZE, 0.0)
    assert [o.name if o else None for o in out] == ["chair_0", "table_0", None]
    for i, cad in enumerate(["chair_b", "chair_b"]):
        fusion.update([seen_from(chair, ORBIT[i + 1], cad=cad, score=0.5)], ORBIT[i + 1], K, SIZE, 1.0 + i)
    assert fusion.objects[0].cad_id == "chair_b"  # 0.5 + 0.5 > 0.8
    obs = [Observation(chair, 0.6, cad, 0.0, np.zeros(4), np.array([0.0, 0, 1])) for cad in ("a", "b")]
    assert vote_cad(obs) == "a"  # a tie goes to the first seen
    assert fusion.clear() == 2 and fusion.objects == []
    assert fusion.update([seen_from(chair, cam)], cam, K, SIZE, 5.0)[0].object_id == 2


def test_config_is_validated():
    with pytest.raises(ValueError, match="match_distance_m"):
        MapConfig(match_distance_m=0.0)
    with pytest.raises(ValueError, match="score_threshold"):
        MapConfig(score_threshold=1.5)
    with pytest.raises(ValueError, match="max_missed"):
        MapConfig(max_missed=0)


def test_weak_detections_add_up_to_a_confident_object_and_the_node_runs_at_the_lower_score():
    from cad_perception_ros.ros.aligners import run_aligner
    from cad_perception_ros.ros.params import NodeParams

    chair = world_object(2.0, 2.0)
    fusion = ObjectMap(MapConfig(score_threshold=NodeParams().map_fuse_score))
    fusion.update([seen_from(chair, ORBIT[0], score=0.4)], ORBIT[0], K, SIZE, stamp_s=0.0)
    assert len(fusion.objects) == 1 and fusion.objects[0].confidence < 0.5  # kept, not yet published
    fusion.update([seen_from(chair, ORBIT[1], score=0.4)], ORBIT[1], K, SIZE, stamp_s=1.0)
    assert len(fusion.objects) == 1 and fusion.objects[0].confidence == pytest.approx(1 - 0.6 ** 2)
    below = ObjectMap(MapConfig(score_threshold=0.3))
    below.update([seen_from(chair, ORBIT[0], score=0.2)], ORBIT[0], K, SIZE, stamp_s=0.0)
    assert not below.objects  # under map_fuse_score: not fused

    class Recorder:
        score_threshold = 0.5

        def __call__(self, image, K, depth=None, floor=None):
            self.seen = self.score_threshold
            return []

    aligner = Recorder()
    run_aligner(aligner, np.zeros((*SIZE, 3), np.uint8), K, NodeParams(), min_score=0.3)
    assert aligner.seen == 0.3
    run_aligner(aligner, np.zeros((*SIZE, 3), np.uint8), K, NodeParams())
    assert aligner.seen == 0.5
