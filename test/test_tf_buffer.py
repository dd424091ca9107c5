"""The project's TF buffer: known chains, static and dynamic edges, interpolation in time,
refused extrapolation (with the reason), and the camera poses of v2 scenes replayed as TF."""
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cad_perception_ros.data.scenes import look_at
from cad_perception_ros.mapping.tf_buffer import RigidTransform, TfBuffer, TfLookupError, interpolate

S = 1_000_000_000  # ns per second
HOLDOUT_V2 = Path(__file__).resolve().parents[1] / "datasets" / "holdout-v2"  # where the checkout has it


def random_transform(rng) -> RigidTransform:
    return RigidTransform(Rotation.random(random_state=rng.integers(1 << 31)).as_matrix(), rng.normal(size=3))


def test_chain_composes_like_matrix_products():
    rng = np.random.default_rng(0)
    map_odom, odom_base, base_cam, map_table = (random_transform(rng) for _ in range(4))
    tf = TfBuffer()
    tf.set_transform("map", "odom", 0, map_odom, static=True)
    tf.set_transform("odom", "base", 5 * S, odom_base)
    tf.set_transform("base", "camera", 0, base_cam, static=True)
    tf.set_transform("map", "table", 0, map_table, static=True)
    got = tf.lookup("map", "camera", 5 * S).matrix()
    np.testing.assert_allclose(got, map_odom.matrix() @ odom_base.matrix() @ base_cam.matrix(), atol=1e-9)
    # across branches: camera points into the table frame
    expected = np.linalg.inv(map_table.matrix()) @ got
    np.testing.assert_allclose(tf.lookup("table", "camera", 5 * S).matrix(), expected, atol=1e-9)
    np.testing.assert_allclose(tf.lookup("camera", "map", 5 * S).matrix(), np.linalg.inv(got), atol=1e-9)
    np.testing.assert_allclose(tf.lookup("camera", "camera", 0).matrix(), np.eye(4))


def test_interpolates_between_samples_slerp_and_lerp():
    tf = TfBuffer(max_extrapolation_s=0.0)
    r0, r1 = np.eye(3), Rotation.from_euler("z", 90, degrees=True).as_matrix()
    tf.set_transform("odom", "base", 10 * S, RigidTransform(r0, np.zeros(3)))
    tf.set_transform("odom", "base", 12 * S, RigidTransform(r1, np.array([2.0, 0.0, 0.0])))
    mid = tf.lookup("odom", "base", 11 * S)
    np.testing.assert_allclose(mid.translation, [1.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(Rotation.from_matrix(mid.rotation).as_euler("xyz", degrees=True), [0, 0, 45], atol=1e-6)
    quarter = tf.lookup("odom", "base", int(10.5 * S))
    assert Rotation.from_matrix(quarter.rotation).magnitude() == pytest.approx(np.radians(22.5))


def test_slerp_takes_the_short_arc():
    a = RigidTransform(Rotation.from_euler("z", 170, degrees=True).as_matrix(), np.zeros(3))
    b = RigidTransform(Rotation.from_euler("z", -170, degrees=True).as_matrix(), np.zeros(3))
    mid = interpolate(a, b, 0.5)
    assert abs(Rotation.from_matrix(mid.rotation).as_euler("xyz", degrees=True)[2]) == pytest.approx(180.0)


def test_refuses_extrapolation_beyond_tolerance_and_says_why():
    tf = TfBuffer(max_extrapolation_s=0.1)
    tf.set_transform("odom", "camera", 10 * S, RigidTransform.identity())
    tf.set_transform("odom", "camera", 11 * S, RigidTransform(np.eye(3), np.ones(3)))
    np.testing.assert_allclose(tf.lookup("odom", "camera", int(11.05 * S)).translation, np.ones(3))  # within 0.1 s
    with pytest.raises(TfLookupError, match="into the future.*0.500 s after the newest transform odom -> camera"):
        tf.lookup("odom", "camera", int(11.5 * S))
    with pytest.raises(TfLookupError, match="into the past"):
        tf.lookup("odom", "camera", 9 * S)
    with pytest.raises(TfLookupError, match="unknown"):
        tf.lookup("map", "camera", 10 * S)
    tf.set_transform("world", "other", 0, RigidTransform.identity(), static=True)
    with pytest.raises(TfLookupError, match="not connected"):
        tf.lookup("world", "camera", 10 * S)


def test_old_samples_are_pruned_and_bad_input_is_refused():
    tf = TfBuffer(cache_time_s=2.0, max_extrapolation_s=0.0)
    for t in range(10):
        tf.set_transform("odom", "camera", t * S, RigidTransform(np.eye(3), np.array([t, 0.0, 0.0])))
    with pytest.raises(TfLookupError, match="past"):
        tf.lookup("odom", "camera", 5 * S)
    assert tf.lookup("odom", "camera", int(8.5 * S)).translation[0] == pytest.approx(8.5)
    with pytest.raises(ValueError, match="already has parent"):
        tf.set_transform("map", "camera", 0, RigidTransform.identity())
    with pytest.raises(ValueError, match="orthonormal"):
        tf.set_transform("odom", "x", 0, RigidTransform(2 * np.eye(3), np.zeros(3)))
    with pytest.raises(ValueError, match="two different"):
        tf.set_transform("odom", "odom", 0, RigidTransform.identity())
    tf.set_transform("odom", "camera", 1 * S, RigidTransform(np.eye(3), np.array([-1.0, 0, 0])))  # a bag restarted
    tf.set_transform("odom", "camera", 2 * S, RigidTransform(np.eye(3), np.array([-2.0, 0, 0])))
    assert tf.lookup("odom", "camera", int(1.5 * S)).translation[0] == pytest.approx(-1.5)
    with pytest.raises(TfLookupError, match="future"):
        tf.lookup("odom", "camera", 8 * S)  # the old samples are gone
    tf.clear()
    assert tf.frames() == set()


def _v2_like_poses(rng, n=6) -> list[np.ndarray]:
    """camera_to_world poses as the v2 scenes make them (data/scenes.look_at, eye 0.7-6 m from a target)."""
    poses = []
    for _ in range(n):
        target = np.array([rng.uniform(1, 4), rng.uniform(1, 4), rng.uniform(0.2, 1.0)])
        eye = target + np.array([*rng.uniform(-3, 3, 2), rng.uniform(0.3, 1.2)])
        poses.append(look_at(eye, target))
    return poses


def _holdout_poses(limit=8) -> list[np.ndarray]:
    files = sorted(HOLDOUT_V2.glob("images/tasks/scannet_frames_25k/val_0000*/pose/*.txt"))[:limit]
    return [np.loadtxt(f) for f in files]


@pytest.mark.parametrize("source", ["generated", "holdout-v2"])
def test_scene_camera_poses_replayed_as_tf_come_back(source):
    poses = _v2_like_poses(np.random.default_rng(3)) if source == "generated" else _holdout_poses()
    if not poses:
        pytest.skip(f"{HOLDOUT_V2} not present")
    tf = TfBuffer(max_extrapolation_s=0.0)
    base_to_camera = RigidTransform(Rotation.from_euler("xyz", [-90, 0, -90], degrees=True).as_matrix(),
                                    np.array([0.1, 0.0, 1.2]))  # optical frame on a robot base
    tf.set_transform("base", "camera_optical", 0, base_to_camera, static=True)
    for i, pose in enumerate(poses):  # map <- base such that map <- camera is the scene's pose
        base = RigidTransform.from_matrix(pose).compose(base_to_camera.inverse())
        tf.set_transform("map", "base", i * S, base)
    for i, pose in enumerate(poses):
        np.testing.assert_allclose(tf.lookup("map", "camera_optical", i * S).matrix(), pose, atol=1e-9)
    # half-way between two views: the camera centre is the midpoint of the two centres
    half = tf.lookup("map", "camera_optical", S // 2)
    base0, base1 = (tf.lookup("map", "base", t).translation for t in (0, S))
    np.testing.assert_allclose(half.translation - half.rotation @ np.zeros(3),
                               0.5 * (base0 + base1) + tf.lookup("map", "base", S // 2).rotation @ base_to_camera.translation,
                               atol=1e-9)
