"""ROCA v2's heading head: allocentric up + heading bins, their targets, decode, loss and gate."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cad_perception_ros.geometry.rotations import rotation_about_y
from cad_perception_ros.model.roca.crop_decode import gate_rotation, heading_pose
from cad_perception_ros.model.roca.crop_heading import (
    decode_heading,
    heading_bin,
    heading_centres,
    heading_loss,
    heading_rotation,
    heading_targets,
    ray_rotation,
    up_loss,
)


def _random_rotations(n, seed=0):
    q = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], 1),
                        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], 1),
                        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1)], 1)


def _rays(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    d = torch.cat([torch.rand(n, 2, generator=g, dtype=torch.float64) * 1.6 - 0.8, torch.ones(n, 1, dtype=torch.float64)], 1)
    return d / d.norm(dim=1, keepdim=True)


def test_ray_rotation_takes_the_optical_axis_to_the_ray():
    d = _rays(50)
    r = ray_rotation(d)
    assert torch.allclose(r[:, :, 2], d, atol=1e-12)
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3), atol=1e-12)
    assert torch.allclose(torch.det(r), torch.ones(50, dtype=torch.float64), atol=1e-12)


def test_heading_targets_and_rotation_invert_each_other():
    rot, d = _random_rotations(200), _rays(200)
    up, psi = heading_targets(rot, d)
    assert torch.allclose(up.norm(dim=1), torch.ones(200, dtype=torch.float64), atol=1e-9)
    assert (psi.abs() <= math.pi + 1e-9).all()
    assert torch.allclose(heading_rotation(up * 2.5, psi, d), rot, atol=1e-9)  # up of any length


def test_heading_is_allocentric_and_a_turn_about_up_adds_to_it():
    rot, d = _random_rotations(20), _rays(20)
    _, psi = heading_targets(rot, d)
    # the same allocentric view on another ray: the heading does not change
    other = _rays(20, seed=5)
    moved = ray_rotation(other) @ ray_rotation(d).transpose(1, 2) @ rot
    assert torch.allclose(heading_targets(moved, other)[1], psi, atol=1e-9)
    # a turn by phi about the object's own +y adds phi
    phi = 0.4
    turned = rot @ rotation_about_y(torch.full((20,), phi, dtype=torch.float64), dtype=torch.float64)
    diff = torch.remainder(heading_targets(turned, d)[1] - psi + math.pi, 2 * math.pi) - math.pi
    assert torch.allclose(diff, torch.full((20,), phi, dtype=torch.float64), atol=1e-9)


def test_decode_heading_refines_within_a_bin_and_wraps_around():
    bins = 24
    for psi in (0.1, -3.1, 3.13, 1.234):
        centres = heading_centres(bins, torch.float64)
        diff = torch.remainder(centres - psi + math.pi, 2 * math.pi) - math.pi
        logits = (-0.5 * (diff / (2 * math.pi / bins)) ** 2)[None]  # a sharp peak at psi
        got = decode_heading(logits)[0]
        err = abs(math.remainder(float(got) - psi, 2 * math.pi))
        assert err < 1e-6, (psi, float(got))  # exact for Gaussian logits
    # two opposite modes: the arg-max one wins, never the average of front and back
    logits = torch.full((1, bins), -10.0, dtype=torch.float64)
    logits[0, 3], logits[0, 15] = 2.0, 1.9
    got = float(decode_heading(logits)[0])
    assert abs(math.remainder(got - float(heading_centres(bins, torch.float64)[3]), 2 * math.pi)) < 1e-6
    assert heading_bin(torch.tensor([-math.pi, math.pi - 1e-6, 0.0]), bins).tolist() == [0, 23, 12]


def _peaked(psi, bins=24):
    diff = torch.remainder(heading_centres(bins, torch.float64)[None] - psi[:, None] + math.pi, 2 * math.pi) - math.pi
    return -0.5 * (diff / (2 * math.pi / bins)) ** 2  # log of the Gaussian soft label (sigma: one bin)


def test_heading_loss_forgives_a_half_turn_only_for_symmetric_objects():
    psi = torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64)
    best = heading_loss(_peaked(psi), psi, torch.tensor([1, 1, 1]))  # the entropy of the soft label
    loss = heading_loss(_peaked(psi + math.pi), psi, torch.tensor([2, 1, 4]))  # the half-turned heading
    assert torch.allclose(loss[[0, 2]], best[[0, 2]], atol=1e-9)  # 2-fold and 4-fold forgive a half turn
    assert loss[1] > best[1] + 10.0
    quarter = heading_loss(_peaked(psi + math.pi / 2), psi, torch.tensor([2, 1, 4]))
    assert quarter[2] == pytest.approx(float(best[2])) and quarter[0] > best[0] + 10.0


def test_up_loss_is_zero_for_the_right_direction_at_any_length():
    target = torch.tensor([[0.0, -1.0, 0.0], [0.6, -0.8, 0.0]])
    assert up_loss(target * 3, target).abs().max() < 1e-6
    assert up_loss(-target, target).min() == pytest.approx(2.0)


def test_heading_pose_of_oracle_outputs_and_the_gate():
    bins = 24
    rot = _random_rotations(8, seed=3)
    K = torch.tensor([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]], dtype=torch.float64)
    boxes = torch.tensor([[100.0 + 40 * i, 120.0, 220.0 + 40 * i, 240.0] for i in range(8)], dtype=torch.float64)
    from cad_perception_ros.model.roca.crop_decode import box_rays

    up, psi = heading_targets(rot, box_rays(boxes, K))
    out = {"up": up, "heading_logits": _peaked(psi, bins)}
    got = heading_pose(out, boxes, K)
    angle = torch.rad2deg(torch.acos(((got * rot).sum((1, 2)) - 1).clamp(-2, 2) / 2))
    assert angle.max() < 1e-3
    # the gate keeps the solve near the heading rotation and replaces a flipped one
    flipped = rot @ rotation_about_y(torch.full((8,), math.pi, dtype=torch.float64), dtype=torch.float64)
    nearby = rot @ rotation_about_y(torch.full((8,), 0.2, dtype=torch.float64), dtype=torch.float64)
    solve = torch.where((torch.arange(8) % 2 == 0)[:, None, None], flipped, nearby)
    gated = gate_rotation(solve, got, 30.0)
    assert torch.equal(gated[1::2], nearby[1::2]) and torch.equal(gated[::2], got[::2])
    assert np.isfinite(gated.numpy()).all()
