"""Geometry: known transforms are recovered, det = +1, weights help, finite gradients, references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cad_perception_ros.geometry.camera import backproject, crop_intrinsics, pixel_grid, project, scale_intrinsics
from cad_perception_ros.geometry.procrustes import refined_translation, roca_procrustes, weighted_procrustes
from cad_perception_ros.geometry.rotations import (
    geodesic_angle,
    matrix_from_quaternion,
    quaternion_from_matrix,
    rotation_about_y,
    svd_orthogonalize,
    symmetric_rotation_error,
)
from cad_perception_ros.geometry.voxelize import trilinear_voxelize

torch.set_num_threads(1)


def random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(Rotation.random(n, random_state=seed).as_matrix())  # (n, 3, 3) float64


def test_procrustes_recovers_known_transform_exactly():
    gen = torch.Generator().manual_seed(0)
    rot = random_rotations(4)
    trans = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    src = torch.randn(4, 50, 3, generator=gen, dtype=torch.float64)
    dst = src @ rot.transpose(1, 2) + trans[:, None]
    weights = torch.rand(4, 50, generator=gen, dtype=torch.float64)
    fit = weighted_procrustes(src, dst, weights)
    assert torch.allclose(fit.rotation, rot, atol=1e-10)
    assert torch.allclose(fit.translation, trans, atol=1e-10)
    assert torch.allclose(torch.det(fit.rotation), torch.ones(4, dtype=torch.float64))


def test_procrustes_det_positive_when_reflection_is_least_squares_answer():
    gen = torch.Generator().manual_seed(1)
    src = torch.randn(1, 30, 3, generator=gen, dtype=torch.float64)
    dst = src * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)  # mirror image
    cov = (dst - dst.mean(1, keepdim=True)).transpose(1, 2) @ (src - src.mean(1, keepdim=True))
    u, _, vh = torch.linalg.svd(cov)
    assert torch.det(u @ vh).item() < 0  # the unconstrained optimum is a reflection
    fit = weighted_procrustes(src, dst)
    assert torch.det(fit.rotation).item() == pytest.approx(1.0, abs=1e-10)
    assert torch.allclose(fit.rotation @ fit.rotation.transpose(1, 2), torch.eye(3, dtype=torch.float64),
                          atol=1e-10)


def test_weights_beat_uniform_under_outliers():
    gen = torch.Generator().manual_seed(2)
    rot = random_rotations(1, seed=3)
    src = torch.randn(1, 200, 3, generator=gen, dtype=torch.float64)
    dst = src @ rot.transpose(1, 2) + 0.01 * torch.randn(1, 200, 3, generator=gen, dtype=torch.float64)
    outliers = torch.zeros(1, 200, dtype=torch.bool)
    outliers[:, :60] = True
    dst = torch.where(outliers[..., None], 3 * torch.randn(1, 200, 3, generator=gen,
                                                           dtype=torch.float64), dst)
    weights = torch.where(outliers, 0.01, 1.0).to(torch.float64)
    err_w = geodesic_angle(weighted_procrustes(src, dst, weights).rotation, rot).item()
    err_u = geodesic_angle(weighted_procrustes(src, dst).rotation, rot).item()
    assert err_w < 0.5 * err_u
    assert math.degrees(err_w) < 2.0


def test_procrustes_matches_scipy_align_vectors_weighted():
    rng = np.random.default_rng(4)
    src = rng.normal(size=(40, 3))
    dst = Rotation.random(random_state=5).apply(src) + 0.2 * rng.normal(size=(40, 3))
    weights = rng.uniform(0.1, 2.0, size=40)
    reference, _ = Rotation.align_vectors(dst, src, weights=weights)  # a rotation src -> dst
    fit = weighted_procrustes(torch.from_numpy(src)[None], torch.from_numpy(dst)[None],
                              torch.from_numpy(weights)[None], with_translation=False)
    assert np.allclose(fit.rotation[0].numpy(), reference.as_matrix(), atol=1e-8)
    assert torch.count_nonzero(fit.translation) == 0


def test_procrustes_gradcheck_float64():
    gen = torch.Generator().manual_seed(6)
    src = torch.randn(1, 6, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    dst = torch.randn(1, 6, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(1, 6, generator=gen, dtype=torch.float64).add(0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, w: weighted_procrustes(a, b, w), (src, dst, weights))


def test_roca_refined_translation_recovers_pose_from_offset_init():
    gen = torch.Generator().manual_seed(7)
    rot, trans = random_rotations(2, seed=8), torch.tensor([[0.3, -0.1, 2.5], [-0.4, 0.2, 3.0]],
                                                           dtype=torch.float64)
    scale = torch.tensor([[0.8, 1.1, 0.5], [1.5, 0.9, 0.7]], dtype=torch.float64)
    noc = torch.rand(2, 80, 3, generator=gen, dtype=torch.float64) - 0.5
    points = (noc * scale[:, None]) @ rot.transpose(1, 2) + trans[:, None]
    t_init = trans + 0.05 * torch.randn(2, 3, generator=gen, dtype=torch.float64)
    fit = roca_procrustes(noc, scale, points, t_init, zero_center=True)  # centred: exact
    assert torch.allclose(fit.translation, trans, atol=1e-8)
    assert torch.allclose(fit.rotation, rot, atol=1e-8)
    exact = roca_procrustes(noc, scale, points, trans, zero_center=False)  # ROCA default, exact t_init
    assert torch.allclose(exact.rotation, rot, atol=1e-8)
    assert torch.allclose(exact.translation, trans, atol=1e-8)
    rough = roca_procrustes(noc, scale, points, t_init, zero_center=False)  # about t_init: biased
    assert (rough.translation - trans).norm(dim=1).max() < 0.02
    centered = points - trans[:, None]  # exact t_init: Eq. 11 is the identity on the true pose
    t = refined_translation(noc * scale[:, None], centered, None, rot, trans)
    assert torch.allclose(t, trans, atol=1e-12)


def test_procrustes_rejects_bad_shapes():
    with pytest.raises(ValueError, match="dst"):
        weighted_procrustes(torch.zeros(1, 5, 3), torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="weights"):
        weighted_procrustes(torch.zeros(1, 5, 3), torch.zeros(1, 5, 3), torch.ones(5))


def test_svd_orthogonalize_is_proper_and_identity_on_rotations():
    gen = torch.Generator().manual_seed(9)
    raw = torch.randn(16, 9, generator=gen, dtype=torch.float64)
    rot = svd_orthogonalize(raw)
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(16, 3, 3),
                          atol=1e-10)
    assert torch.allclose(torch.det(rot), torch.ones(16, dtype=torch.float64), atol=1e-10)
    known = random_rotations(8, seed=10)
    assert torch.allclose(svd_orthogonalize(known), known, atol=1e-10)
    assert torch.det(svd_orthogonalize(-torch.eye(3))).item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError):
        svd_orthogonalize(torch.zeros(4, 8))


def test_quaternion_round_trip_and_scipy_convention():
    rot = random_rotations(64, seed=11)
    rot = torch.cat([rot, rotation_about_y(torch.tensor([math.pi]))])  # include a 180 degree case
    quat = quaternion_from_matrix(rot)
    assert torch.all(quat[:, 0] >= 0)
    assert torch.allclose(matrix_from_quaternion(quat), rot, atol=1e-10)
    xyzw = Rotation.from_matrix(rot.numpy()).as_quat()  # scipy is (x, y, z, w)
    wxyz = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1) * np.sign(xyzw[:, 3:] + 1e-15)
    assert np.allclose(np.abs(np.sum(quat.numpy() * wxyz, axis=1)), 1.0, atol=1e-10)


def test_symmetric_rotation_error():
    rot = random_rotations(5, seed=12)
    yaw180 = rot @ rotation_about_y(torch.tensor(math.pi))
    assert torch.allclose(symmetric_rotation_error(yaw180, rot, "2fold"), torch.zeros(5, dtype=torch.float64),
                          atol=1e-5)
    assert torch.allclose(symmetric_rotation_error(yaw180, rot, "none"),
                          torch.full((5,), 180.0, dtype=torch.float64), atol=1e-5)
    yaw90 = rot @ rotation_about_y(torch.tensor(math.pi / 2))
    assert torch.allclose(symmetric_rotation_error(yaw90, rot, "4fold"), torch.zeros(5, dtype=torch.float64),
                          atol=1e-5)
    assert torch.allclose(symmetric_rotation_error(yaw90, rot, "2fold"), torch.full((5,), 90.0,
                                                                                   dtype=torch.float64), atol=1e-5)
    yaw37 = rot @ rotation_about_y(torch.tensor(0.65))
    assert torch.allclose(symmetric_rotation_error(yaw37, rot, "inf"), torch.zeros(5, dtype=torch.float64),
                          atol=1e-5)
    tilt = rot @ torch.from_numpy(Rotation.from_euler("x", 25, degrees=True).as_matrix())
    assert torch.allclose(symmetric_rotation_error(tilt, rot, "inf"), torch.full((5,), 25.0,
                                                                                dtype=torch.float64), atol=1e-6)
    with pytest.raises(ValueError, match="symmetry"):
        symmetric_rotation_error(rot, rot, "3fold")


def test_voxelize_conserves_weight_and_centres():
    gen = torch.Generator().manual_seed(13)
    points = torch.rand(2, 100, 3, generator=gen) - 0.5
    weights = torch.rand(2, 100, generator=gen)
    grid = trilinear_voxelize(points, weights, grid=8)
    assert grid.shape == (2, 8, 8, 8)
    assert torch.allclose(grid.sum(dim=(1, 2, 3)), weights.sum(1), atol=1e-5)
    centre = torch.tensor([[[-0.5 + 2.5 / 8, -0.5 + 5.5 / 8, -0.5 + 0.5 / 8]]])  # cell (2, 5, 0)
    single = trilinear_voxelize(centre, torch.tensor([[3.0]]), grid=8)
    assert single[0, 2, 5, 0].item() == pytest.approx(3.0, abs=1e-6)
    assert single.sum().item() == pytest.approx(3.0, abs=1e-6)


def test_voxelize_gradients_finite():
    gen = torch.Generator().manual_seed(14)
    points = (0.8 * (torch.rand(1, 5, 3, generator=gen, dtype=torch.float64) - 0.5)).requires_grad_()
    weights = torch.rand(1, 5, generator=gen, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, w: trilinear_voxelize(p, w, grid=4), (points, weights))
    target = torch.rand(1, 4, 4, 4, generator=gen, dtype=torch.float64)
    loss = ((trilinear_voxelize(points, weights, grid=4) - target) ** 2).sum()
    loss.backward()
    assert torch.isfinite(points.grad).all() and points.grad.abs().sum() > 0


def test_backproject_project_round_trip_off_centre_principal_point():
    k = torch.tensor([[[300.0, 0.0, 70.3], [0.0, 280.0, 31.7], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(15)
    depth = 1.0 + torch.rand(1, 12, 16, generator=gen, dtype=torch.float64)
    points = backproject(depth, k)  # (1, 12, 16, 3)
    assert torch.allclose(points[..., 2], depth)
    uv = project(points, k)
    assert torch.allclose(uv, pixel_grid(12, 16, torch.float64)[None], atol=1e-9)
    assert torch.allclose(project(points[0], k[0]), uv[0], atol=1e-12)
    with pytest.raises(ValueError, match="K"):
        backproject(depth, k[0])


def test_scale_intrinsics_consistent_with_resizing():
    k = torch.tensor([[200.0, 0.0, 41.0], [0.0, 190.0, 27.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    depth_big = torch.full((1, 24, 32), 2.0, dtype=torch.float64)  # a fronto-parallel plane
    points_big = backproject(depth_big, k[None])  # (1, 24, 32, 3)
    pooled = torch.nn.functional.avg_pool2d(points_big.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    k_small = scale_intrinsics(k, 0.5, 0.5)
    points_small = backproject(torch.full((1, 12, 16), 2.0, dtype=torch.float64), k_small[None])
    assert torch.allclose(points_small, pooled, atol=1e-12)


def test_crop_intrinsics_maps_box_to_output():
    k = torch.tensor([[250.0, 0.0, 160.0], [0.0, 250.0, 120.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    box = torch.tensor([[40.0, 30.0, 120.0, 70.0]], dtype=torch.float64)
    k_crop = crop_intrinsics(k, box, (32, 64))
    corners = torch.tensor([[[40.0, 30.0, 1.0], [120.0, 70.0, 1.0]]], dtype=torch.float64)
    rays = corners @ torch.linalg.inv(k).T  # camera points at depth 1 through the box corners
    uv = project(rays, k_crop)
    assert torch.allclose(uv, torch.tensor([[[0.0, 0.0], [64.0, 32.0]]], dtype=torch.float64), atol=1e-9)


def test_voxelize_exports_to_onnx_and_matches():
    ort = pytest.importorskip("onnxruntime")
    import io
    import warnings

    class Splat(torch.nn.Module):
        def forward(self, points, weights):
            return trilinear_voxelize(points, weights, grid=8)

    gen = torch.Generator().manual_seed(16)
    points, weights = torch.rand(2, 50, 3, generator=gen) - 0.5, torch.rand(2, 50, generator=gen)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Splat(), (points, weights), buffer, opset_version=17, dynamo=False)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    out = session.run(None, {names[0]: points.numpy(), names[1]: weights.numpy()})[0]
    assert np.allclose(out, Splat()(points, weights).numpy(), atol=1e-6)
