"""The floor cue (geometry/floor.py): planes from poses and from height + pitch, the rescale that
stands an object on the floor, its limits, and the pipeline and evaluation paths that use it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cad_perception_ros.data.scenes import look_at
from cad_perception_ros.evaluation.run import view_floor
from cad_perception_ros.geometry.floor import (
    FloorPrior,
    floor_correction,
    floor_factor,
    floor_from_camera_pose,
    floor_from_height_pitch,
    half_height,
    make_floor,
    rest_on_floor,
    stand_upright,
)
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.types import Alignment9D, CadPrediction

CANONICAL_TO_WORLD = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # canonical +y up -> world +z


def standing(camera_to_world: np.ndarray, xy, yaw: float, size) -> Alignment9D:
    """The camera-frame alignment of a box of metric size (3,) standing on the floor z = 0 at xy."""
    c, s = np.cos(yaw), np.sin(yaw)
    world_rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ CANONICAL_TO_WORLD
    world_t = np.array([xy[0], xy[1], size[1] / 2])
    R_cw, t_cw = camera_to_world[:3, :3], camera_to_world[:3, 3]
    return Alignment9D(R_cw.T @ world_rot, R_cw.T @ (world_t - t_cw), np.asarray(size, dtype=float))


def prediction(alignment: Alignment9D) -> CadPrediction:
    return CadPrediction(class_id=0, class_name="chair", score=0.9, box_xyxy=np.array([0.0, 0, 10, 10]),
                         mask=None, alignment=alignment, cad_id="c0")


POSE = look_at(np.array([0.0, -3.0, 1.4]), np.array([0.3, 0.0, 0.4]))


def test_floor_from_a_camera_pose_and_from_height_and_pitch_agree():
    floor = floor_from_camera_pose(POSE)
    assert floor.height == pytest.approx(1.4)
    pitch = np.rad2deg(np.arctan2(1.0, np.hypot(0.3, 3.0)))  # optical axis below the horizon
    other = floor_from_height_pitch(1.4, pitch)
    np.testing.assert_allclose(other.normal, floor.normal, atol=1e-9)
    level = floor_from_height_pitch(1.0)
    np.testing.assert_allclose(level.normal, [0, -1, 0], atol=1e-12)  # image up
    rolled = floor_from_height_pitch(1.0, 0.0, 90.0)
    np.testing.assert_allclose(rolled.normal, [1, 0, 0], atol=1e-12)
    # a floor point is at height 0
    point = POSE[:3, :3].T @ (np.array([0.5, 1.0, 0.0]) - POSE[:3, 3])
    assert floor.normal @ point + floor.height == pytest.approx(0.0, abs=1e-12)


def centre_height(alignment: Alignment9D, floor) -> float:
    return float(floor.normal @ alignment.translation + floor.height)


def test_a_standing_object_is_left_alone_and_one_off_the_floor_is_brought_to_it():
    floor = floor_from_camera_pose(POSE)
    extent = (0.6, 1.0, 0.8)  # a CAD box that is not the unit cube: its half height is 0.5 x 0.9
    truth = standing(POSE, (0.4, 0.5), 0.7, (0.5 / 0.6, 0.9, 0.6 / 0.8))
    assert half_height(truth, floor.normal, extent) == pytest.approx(0.45)
    assert floor_factor(truth, floor, extent) == pytest.approx(1.0)
    assert floor_correction(truth, floor, extent) == pytest.approx((0.0, 0.0), abs=1e-12)
    for wrong in (0.8, 1.3):  # the same image: size and depth off by one factor
        off = Alignment9D(truth.rotation, truth.translation * wrong, truth.scale * wrong)
        assert floor_factor(off, floor, extent) == pytest.approx(1 / wrong)
        (fixed,) = rest_on_floor([prediction(off)], floor, {"c0": extent}.get)
        a = fixed.alignment
        before = abs(centre_height(off, floor) - half_height(off, floor.normal, extent))
        after = abs(centre_height(a, floor) - half_height(a, floor.normal, extent))
        assert after < 0.2 * before  # nearly on the floor (floor_sigma_m lets it sit a little off)
        assert np.linalg.norm(a.translation - truth.translation) < 0.3 * np.linalg.norm(off.translation - truth.translation)
        np.testing.assert_allclose(np.cross(a.translation, off.translation), 0.0, atol=1e-9)  # same ray
        np.testing.assert_allclose(a.rotation, truth.rotation, atol=1e-12)
    # a hard floor and a sure size: the depth alone moves, and the object stands exactly on the floor
    sure_size = FloorPrior(scale_sigma=1e-6, floor_sigma_m=0.0)
    off = Alignment9D(truth.rotation, truth.translation * 1.2, truth.scale)
    (fixed,) = rest_on_floor([prediction(off)], floor, {"c0": extent}.get, sure_size)
    np.testing.assert_allclose(fixed.alignment.translation, truth.translation, atol=1e-6)
    np.testing.assert_allclose(fixed.alignment.scale, truth.scale, atol=1e-6)


def axis_angle(axis, deg: float) -> np.ndarray:
    k = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    t = np.deg2rad(deg)
    return np.eye(3) + np.sin(t) * cross + (1 - np.cos(t)) * cross @ cross


def test_a_slightly_tilted_object_is_stood_upright_with_its_heading_kept():
    floor = floor_from_camera_pose(POSE)
    truth = standing(POSE, (0.1, 0.2), 1.1, (0.5, 0.9, 0.6))
    tilt_axis = np.cross(truth.rotation[:, 1], truth.rotation[:, 2])  # about the object's own x axis
    tilted = axis_angle(tilt_axis, 12.0) @ truth.rotation
    np.testing.assert_allclose(stand_upright(tilted, floor.normal, 45.0), truth.rotation, atol=1e-9)
    lying = axis_angle(tilt_axis, 70.0) @ truth.rotation
    np.testing.assert_array_equal(stand_upright(lying, floor.normal, 45.0), lying)  # beyond the limit
    (p,) = rest_on_floor([prediction(Alignment9D(tilted, truth.translation, truth.scale))], floor)
    np.testing.assert_allclose(p.alignment.rotation, truth.rotation, atol=1e-9)
    (q,) = rest_on_floor([prediction(Alignment9D(tilted, truth.translation, truth.scale))], floor,
                         prior=FloorPrior(upright_deg=0.0))
    np.testing.assert_array_equal(q.alignment.rotation, tilted)


def test_corrections_beyond_the_limit_are_left_alone():
    floor = floor_from_camera_pose(POSE)
    truth = standing(POSE, (0.0, 0.0), 0.0, (0.5, 0.9, 0.6))
    far_off = Alignment9D(truth.rotation, truth.translation * 3.0, truth.scale * 3.0)
    (kept,) = rest_on_floor([prediction(far_off)], floor, prior=FloorPrior(max_ratio=1.2))
    np.testing.assert_array_equal(kept.alignment.translation, far_off.translation)
    (moved,) = rest_on_floor([prediction(far_off)], floor, prior=FloorPrior(max_ratio=10.0, max_offset_m=10.0))
    assert np.linalg.norm(moved.alignment.translation - truth.translation) < np.linalg.norm(far_off.translation - truth.translation)
    above = Alignment9D(truth.rotation, floor.normal * 5.0, truth.scale)  # its floor would lie above the camera
    assert np.isnan(floor_factor(above, floor))
    on_a_table = Alignment9D(truth.rotation, truth.translation + floor.normal * 0.75, truth.scale)
    (left,) = rest_on_floor([prediction(on_a_table)], floor)
    np.testing.assert_allclose(left.alignment.translation, on_a_table.translation, atol=1e-12)
    (pulled,) = rest_on_floor([prediction(on_a_table)], floor, prior=FloorPrior(max_offset_m=1.0, max_ratio=10.0))
    assert not np.allclose(pulled.alignment.translation, on_a_table.translation)
    with pytest.raises(ValueError, match="max_ratio"):
        FloorPrior(max_ratio=0.5)
    with pytest.raises(ValueError, match="sigma"):
        FloorPrior(depth_sigma=0.0)


@pytest.mark.parametrize("normal, height, match", [((0, 0, 0), 1.0, "normal"), ((0, -1, 0), 0.0, "height"),
                                                    ((0, np.nan, 1), 1.0, "normal"), ((0, -1), 1.0, "normal")])
def test_bad_floors_are_named(normal, height, match):
    with pytest.raises(ValueError, match=match):
        make_floor(normal, height)


class _FixedDecode:
    """A decode stand-in that returns one fixed prediction (the pipeline's floor step is what is tested)."""

    def __init__(self, alignment):
        self.alignment = alignment

    def __call__(self, raw, **kwargs):
        return [prediction(self.alignment)]


class _NoBackend:
    def run(self, inputs):
        return {}


def test_the_pipeline_rests_objects_on_the_floor_on_rgb_alone_and_not_with_depth():
    truth = standing(POSE, (0.2, 0.3), 0.3, (0.5, 0.9, 0.6))
    off = Alignment9D(truth.rotation, truth.translation * 1.2, truth.scale * 1.2)
    aligner = CadAligner(backend=_NoBackend(), decode=_FixedDecode(off), input_size=(48, 64), class_names=("chair",))
    image, K = np.zeros((48, 64, 3), np.uint8), np.array([[50.0, 0, 32], [0, 50, 24], [0, 0, 1]])
    floor = floor_from_camera_pose(POSE)
    (plain,) = aligner(image, K)
    np.testing.assert_array_equal(plain.alignment.translation, off.translation)
    (rested,) = aligner(image, K, floor=floor)
    assert np.linalg.norm(rested.alignment.translation - truth.translation) < 0.3 * np.linalg.norm(off.translation - truth.translation)
    (with_depth,) = aligner(image, K, np.full((48, 64), 2.0, np.float32), floor=floor)
    np.testing.assert_array_equal(with_depth.alignment.translation, off.translation)


def test_evaluation_names_views_without_a_floor_pose():
    class View:
        image_id, camera_to_world = "scene0/0", np.eye(4)

    with pytest.raises(ValueError, match="scene0/0.*camera pose"):
        view_floor(View(), "camera-pose")
    assert view_floor(View(), None) is None
    View.camera_to_world = POSE
    assert view_floor(View(), "camera-pose").height == pytest.approx(1.4)


def test_predict_with_a_camera_height_keeps_each_object_on_its_ray(tmp_path, make_image):
    from PIL import Image

    from cad_perception_ros.cli import main

    photo = tmp_path / "photo.png"
    Image.fromarray(make_image(5, 480, 640)).save(photo)

    def predict(out, *extra):
        return main(["predict", str(photo), "--intrinsics", "520,520,320,240", "--score-threshold", "0.0",
                     "--out", str(out), *extra])

    assert predict(tmp_path / "plain") == 0
    assert predict(tmp_path / "floor", "--camera-height", "1.1", "--camera-pitch", "20") == 0
    plain = json.loads((tmp_path / "plain" / "photo.json").read_text())
    floor = json.loads((tmp_path / "floor" / "photo.json").read_text())
    assert plain["floor"] is None and floor["floor"]["height_m"] == pytest.approx(1.1)
    assert len(plain["predictions"]) == len(floor["predictions"]) > 0
    t0 = np.array([p["translation"] for p in plain["predictions"]])
    t1 = np.array([p["translation"] for p in floor["predictions"]])
    np.testing.assert_allclose(np.cross(t0, t1), 0.0, atol=1e-6)  # same rays: the image does not move
    assert not np.allclose(t0, t1)
    with pytest.raises(SystemExit, match="camera-height.*> 0"):
        predict(tmp_path / "bad", "--camera-height", "-1")
