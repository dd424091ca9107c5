"""Rotation utilities: SVD orthogonalisation, quaternions (w, x, y, z), rotation errors.

Rotation matrices act on column vectors (x' = R x). Quaternions are (w, x, y, z), unit norm,
returned with w >= 0. Symmetry labels follow Scan2CAD: "none", "2fold", "4fold", "inf" are
rotational symmetries about the canonical up axis +y of the CAD model.
"""
from __future__ import annotations

import math

import torch

from cad_perception_ros.geometry._checks import check_last
from cad_perception_ros.geometry.procrustes import rotation_from_covariance

SYMMETRY_ORDERS = {"none": 1, "2fold": 2, "4fold": 4}


def svd_orthogonalize(m: torch.Tensor) -> torch.Tensor:
    """Project 3x3 matrices onto SO(3): U diag(1, 1, det(U V^T)) V^T (special orthogonalisation).

    m: (..., 3, 3), or (..., 9) read row-major, e.g. a network's raw 9-D rotation output
    (Points2Objects / Levinson et al. 2020). Returns (..., 3, 3) with det = +1; the identity on
    matrices that are already rotations. Differentiable (SVD in float64).
    """
    if m.dim() >= 1 and m.shape[-1] == 9:
        m = m.reshape(*m.shape[:-1], 3, 3)
    if m.dim() < 2 or m.shape[-2:] != (3, 3):
        raise ValueError(f"m must have shape (..., 3, 3) or (..., 9), got {tuple(m.shape)}")
    lead = m.shape[:-2]
    return rotation_from_covariance(m.reshape(-1, 3, 3)).reshape(*lead, 3, 3)


def _check_matrix(name: str, r: torch.Tensor) -> None:
    if not isinstance(r, torch.Tensor) or r.dim() < 2 or r.shape[-2:] != (3, 3):
        shape = tuple(r.shape) if isinstance(r, torch.Tensor) else type(r).__name__
        raise ValueError(f"{name} must have shape (..., 3, 3), got {shape}")


def matrix_from_quaternion(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternion (..., 4) as (w, x, y, z) -> rotation matrix (..., 3, 3). Normalises q first."""
    check_last("q", q, 4)
    q = q / q.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    w, x, y, z = q.unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def quaternion_from_matrix(r: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> unit quaternion (..., 4) as (w, x, y, z) with w >= 0.

    Shepperd's method: the largest of |w|, |x|, |y|, |z| is taken from the diagonal, the others
    from off-diagonal sums, so the result is accurate for every rotation (including 180 degrees).
    """
    _check_matrix("r", r)
    m = r.reshape(*r.shape[:-2], 9).unbind(-1)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m
    sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                      1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1)  # (..., 4) = 4 q_i^2
    big = 0.5 * sq.clamp(min=1e-12).sqrt()  # (..., 4): |q_i| for each candidate
    candidates = torch.stack([
        torch.stack([big[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, big[..., 1], m01 + m10, m02 + m20], -1),
        torch.stack([m02 - m20, m01 + m10, big[..., 2], m12 + m21], -1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, big[..., 3]], -1),
    ], dim=-2)  # (..., 4 candidates, 4)
    # off-diagonal entries are 4 q_i q_j: divide by 4 q_i; the diagonal entry is already q_i
    eye = torch.eye(4, dtype=r.dtype, device=r.device)
    candidates = candidates * eye + candidates * (1 - eye) / (4 * big.unsqueeze(-1))
    best = sq.argmax(dim=-1, keepdim=True)  # (..., 1)
    q = torch.gather(candidates, -2, best.unsqueeze(-1).expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = torch.where(q[..., :1] < 0, -q, q)  # (..., 4) canonical sign w >= 0
    return q / q.norm(dim=-1, keepdim=True)


def geodesic_angle(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Angle of the relative rotation r1^T r2, in radians in [0, pi]. r1, r2: (..., 3, 3) broadcast.

    Uses atan2(|sin|, cos) from the skew and trace parts, accurate near 0 and near pi.
    """
    _check_matrix("r1", r1)
    _check_matrix("r2", r2)
    rel = r1.transpose(-1, -2) @ r2  # (..., 3, 3)
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2  # (...)
    skew = torch.stack([rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0],
                        rel[..., 1, 0] - rel[..., 0, 1]], dim=-1)  # (..., 3) = 2 sin * axis
    sin = 0.5 * skew.norm(dim=-1)
    return torch.atan2(sin, cos)


def rotation_about_y(angle: torch.Tensor | float, dtype=torch.float64, device=None) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) about +y by `angle` radians (right-handed)."""
    a = torch.as_tensor(angle, dtype=dtype, device=device)
    c, s = torch.cos(a), torch.sin(a)
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    rows = (c, zero, s, zero, one, zero, -s, zero, c)
    return torch.stack(rows, dim=-1).reshape(*a.shape, 3, 3)


def symmetric_rotation_error(r_pred: torch.Tensor, r_gt: torch.Tensor,
                             symmetry: str = "none", inf_steps: int | None = None) -> torch.Tensor:
    """Scan2CAD rotation error in degrees (...), aware of symmetry about the canonical up axis.

    r_pred, r_gt: (..., 3, 3) canonical -> camera (or world) rotations. For "2fold"/"4fold" the
    error is the minimum over R_gt @ Ry(2 pi k / m), k < m (Scan2CAD / ROCA). For "inf" it is the
    exact minimum over all rotations about +y, i.e. the angle between the two up axes R[:, 1];
    with inf_steps = m the minimum over m sampled rotations Ry(2 pi k / m) instead (ROCA's
    evaluation samples 36, which can add up to 5 degrees).
    """
    _check_matrix("r_pred", r_pred)
    _check_matrix("r_gt", r_gt)
    if symmetry == "inf" and inf_steps is None:
        up_pred, up_gt = r_pred[..., :, 1], r_gt[..., :, 1]  # (..., 3) each
        cos = (up_pred * up_gt).sum(-1)
        sin = torch.linalg.cross(up_pred, up_gt).norm(dim=-1)
        return torch.rad2deg(torch.atan2(sin, cos))
    if symmetry not in SYMMETRY_ORDERS and symmetry != "inf":
        raise ValueError(f"symmetry must be one of none, 2fold, 4fold, inf; got {symmetry!r}")
    order = int(inf_steps) if symmetry == "inf" else SYMMETRY_ORDERS[symmetry]
    angles = torch.arange(order, dtype=r_gt.dtype, device=r_gt.device) * (2 * math.pi / order)
    flips = rotation_about_y(angles, dtype=r_gt.dtype, device=r_gt.device)  # (m, 3, 3)
    candidates = r_gt.unsqueeze(-3) @ flips  # (..., m, 3, 3)
    errors = geodesic_angle(r_pred.unsqueeze(-3), candidates)  # (..., m)
    return torch.rad2deg(errors.min(dim=-1).values)
