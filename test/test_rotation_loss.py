"""The rotation losses through the SVD projection: l1 (ROCA Eq. 10) and chordal."""
import math

import pytest
import torch

from cad_perception_ros.geometry.rotations import rotation_about_y, svd_orthogonalize
from cad_perception_ros.model.losses import rotation_error


def test_chordal_is_four_times_one_minus_cos_of_the_angle():
    angles = torch.tensor([0.0, 0.3, 1.0, 2.0, math.pi], dtype=torch.float64)
    r = rotation_about_y(angles, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand_as(r)
    assert torch.allclose(rotation_error(r, eye, "chordal"), 4 * (1 - torch.cos(angles)))
    assert torch.allclose(rotation_error(r, eye, "l1"), 2 * (1 - torch.cos(angles)).abs() + 2 * torch.sin(angles).abs())
    with pytest.raises(ValueError, match="rotation loss"):
        rotation_error(r, eye, "l2")


def _fit(kind: str, steps: int = 500) -> torch.Tensor:
    """Free 9-D matrices (one per target) fitted through the SVD projection -> angle errors (deg)."""
    gen = torch.Generator().manual_seed(0)
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # object up = camera -y, as in the data
    target = flip @ rotation_about_y(torch.rand(128, generator=gen) * 2 * math.pi, dtype=torch.float32)
    raw = (0.01 * torch.randn(128, 9, generator=gen)).requires_grad_()
    optimizer = torch.optim.Adam([raw], lr=5e-3)
    for _ in range(steps):
        loss = rotation_error(svd_orthogonalize(raw), target, kind).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    rel = svd_orthogonalize(raw).detach().transpose(1, 2) @ target
    cos = ((rel.diagonal(dim1=1, dim2=2).sum(1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


def test_l1_through_the_svd_leaves_rotations_stuck_and_chordal_does_not():
    stuck_l1 = (_fit("l1") > 90).float().mean().item()
    stuck_chordal = (_fit("chordal") > 90).float().mean().item()
    assert stuck_l1 > 0.1  # local minima of Eq. 10 (why `rotation_loss: chordal` exists)
    assert stuck_chordal == 0.0
