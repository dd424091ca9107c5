"""geometry/depth_fit.py: the retrieved CAD fitted to registered depth (translation + heading ICP)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import trimesh

from cad_perception_ros.cad.sampling import surface_points
from cad_perception_ros.geometry.camera import project
from cad_perception_ros.geometry.depth_fit import (
    DepthFitConfig,
    fit_alignment,
    fit_to_depth,
    free_space_fraction,
    observed_points,
    yaw_matrix,
    yaw_step,
)
from cad_perception_ros.types import Alignment9D, CadPrediction

K = np.array([[525.0, 0.0, 320.0], [0.0, 525.0, 240.0], [0.0, 0.0, 1.0]])
SIZE = (480, 640)  # a camera frame, not a thumbnail


def chair_mesh() -> trimesh.Trimesh:
    """A canonical chair-like shape (seat, backrest at -z, one leg): its front and back differ."""
    seat = trimesh.creation.box((1.0, 0.15, 0.9))
    back = trimesh.creation.box((1.0, 0.85, 0.12))
    back.apply_translation((0.0, 0.5, -0.39))
    leg = trimesh.creation.box((0.1, 0.5, 0.1))
    leg.apply_translation((0.45, -0.32, 0.4))
    mesh = trimesh.util.concatenate([seat, back, leg])
    mesh.apply_translation(-mesh.bounds.mean(0))
    mesh.apply_scale(1.0 / mesh.extents.max())
    return mesh


def splat_depth(points: np.ndarray) -> np.ndarray:
    """Dense camera points (N, 3) -> (H, W) depth, the nearest point per pixel, 0 = hole."""
    uv = project(points, K)
    cols, rows = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    ok = (cols >= 0) & (rows >= 0) & (cols < SIZE[1]) & (rows < SIZE[0])
    depth = np.full(SIZE, np.inf)
    np.minimum.at(depth, (rows[ok], cols[ok]), points[ok, 2])
    depth[~np.isfinite(depth)] = 0.0
    return depth.astype(np.float32)


@pytest.fixture(scope="module")
def scene():
    """(truth alignment, CAD samples (1024, 3), depth (480, 640), mask): a tilted chair 2.5 m away."""
    mesh = chair_mesh()
    tilt = np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    rotation = tilt @ np.diag([1.0, -1.0, -1.0]) @ yaw_matrix(np.deg2rad(35))  # canonical y up -> image up
    truth = Alignment9D(rotation, np.array([0.2, 0.1, 2.5]), np.array([0.55, 0.9, 0.6]))
    depth = splat_depth(truth.transform_points(surface_points(mesh, 300_000, seed=1)))
    return truth, surface_points(mesh, 1024, seed=0), depth, depth > 0


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.rad2deg(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))))


def test_yaw_step_recovers_a_known_yaw_and_offset():
    rng = np.random.default_rng(0)
    model = rng.normal(size=(50, 3))
    ry, d = yaw_matrix(0.7), np.array([0.1, -0.2, 0.3])
    got_ry, got_d = yaw_step(model, model @ ry.T + d)
    assert np.allclose(got_ry, ry, atol=1e-9) and np.allclose(got_d, d, atol=1e-9)


def test_project_numpy_matches_torch():
    points = np.array([[0.1, -0.2, 2.0], [1.0, 0.5, 4.0]])
    assert np.allclose(project(points, K), project(torch.from_numpy(points), torch.from_numpy(K)).numpy())


def test_observed_points_lie_on_their_pixels_rays(scene):
    _, _, depth, mask = scene
    points = observed_points(depth, mask, K, 200)
    assert points.shape == (200, 3)
    uv = project(points, K)
    rows, cols = np.floor(uv[:, 1]).astype(int), np.floor(uv[:, 0]).astype(int)
    assert mask[rows, cols].all() and np.allclose(depth[rows, cols], points[:, 2], atol=1e-5)


@pytest.mark.parametrize("heading_deg, shift", [(0, (0.15, 0.0, 0.2)), (20, (0.05, 0.0, 0.1)),
                                                (90, (0.0, 0.0, 0.3)), (180, (0.1, 0.05, -0.15))])
def test_fit_recovers_the_pose_from_a_wrong_centre_and_heading(scene, heading_deg, shift):
    truth, samples, depth, mask = scene
    start = Alignment9D(truth.rotation @ yaw_matrix(np.deg2rad(heading_deg)), truth.translation + shift, truth.scale)
    fit = fit_alignment(start, samples, depth, mask, K)
    assert np.linalg.norm(fit.translation - truth.translation) < 0.06
    assert angle_deg(fit.rotation, truth.rotation) < 5.0
    assert np.array_equal(fit.scale, truth.scale)  # the network's scale stays


def test_the_right_pose_puts_no_model_point_in_free_space_and_a_flipped_one_does(scene):
    truth, samples, depth, _ = scene
    surface = truth.transform_points(samples)
    flipped = Alignment9D(truth.rotation @ yaw_matrix(np.pi), truth.translation, truth.scale).transform_points(samples)
    assert free_space_fraction(surface, depth, K, 0.05) < 0.02
    assert free_space_fraction(flipped, depth, K, 0.05) > 0.1


def test_too_few_depth_pixels_or_a_far_jump_leave_the_alignment_alone(scene):
    truth, samples, depth, mask = scene
    start = Alignment9D(truth.rotation, truth.translation + (0.2, 0.0, 0.0), truth.scale)
    few = np.zeros_like(mask)
    few[np.nonzero(mask)[0][:10], np.nonzero(mask)[1][:10]] = True
    assert fit_alignment(start, samples, depth, few, K) is start
    assert fit_alignment(start, samples, depth, mask, K, DepthFitConfig(max_shift_m=0.05)) is start


def test_fit_to_depth_skips_predictions_without_a_mask_or_a_known_cad(scene):
    truth, samples, depth, mask = scene
    start = Alignment9D(truth.rotation, truth.translation + (0.1, 0.0, 0.1), truth.scale)
    base = CadPrediction(class_id=0, class_name="chair", score=0.9, box_xyxy=np.zeros(4), alignment=start,
                         cad_id="chair_0", mask=mask)
    preds = [base, dataclasses.replace(base, mask=None), dataclasses.replace(base, cad_id="unknown")]
    out = fit_to_depth(preds, depth, K, {"chair_0": samples}.get)
    assert np.linalg.norm(out[0].alignment.translation - truth.translation) < 0.03
    assert out[1] is preds[1] and out[2] is preds[2]


@pytest.mark.parametrize("bad", [dict(trim=0.0), dict(iterations=0), dict(headings_deg=(90.0,)), dict(min_points=1)])
def test_config_refuses_bad_settings(bad):
    with pytest.raises(ValueError, match="depth_fit"):
        DepthFitConfig(**bad)


def test_the_node_parameter_switches_the_fit_on_the_aligner(scene):
    from cad_perception_ros.ros.aligners import run_aligner
    from cad_perception_ros.ros.params import NodeParams

    class Recorder:
        depth_fit = None
        score_threshold = 0.5

        def __call__(self, image, K, depth=None, floor=None):
            self.seen = self.depth_fit
            return []

    _, _, depth, _ = scene
    aligner, image = Recorder(), np.zeros((*SIZE, 3), np.uint8)
    run_aligner(aligner, image, K, NodeParams(depth_fit=True), depth)
    assert isinstance(aligner.seen, DepthFitConfig)
    run_aligner(aligner, image, K, NodeParams(), depth)
    assert aligner.seen is None
