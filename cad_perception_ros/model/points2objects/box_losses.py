"""9-DoF box outputs and losses of Points2Objects (Eq. 6-7 and the L1 scale loss, Sec. 3.3).

A canonical point x maps to the camera frame as R diag(s) x + t (project convention). The
rotation head outputs 9 numbers per object, projected onto SO(3) by SVD with the determinant fix
(Eq. 6). L_Rt (Eq. 7) compares the ground-truth object's surface points placed with the predicted
[R | t] and with the ground-truth [R | t], both scaled by the ground-truth scale, so rotation and
translation are supervised jointly in metres. The paper sums over points and objects; we average
(mean squared point distance per object, mean over objects) so the loss does not depend on P or M.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from cad_perception_ros.geometry.rotations import SYMMETRY_ORDERS, rotation_about_y, svd_orthogonalize

INF_SYMMETRY_STEPS = 36  # "inf" symmetry: GT rotations about +y every 10 degrees (as ROCA)


def rotation_from_9d(raw: torch.Tensor) -> torch.Tensor:
    """Eq. 6: raw network output (M, 9) (row-major 3x3) -> rotation matrices (M, 3, 3), det +1."""
    if raw.ndim != 2 or raw.shape[1] != 9:
        raise ValueError(f"rotation_from_9d expects (M, 9), got {tuple(raw.shape)}")
    return svd_orthogonalize(raw).to(raw.dtype)


def _place(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
           scale: torch.Tensor) -> torch.Tensor:
    """Canonical points (M, P, 3) -> camera frame (M, P, 3): R diag(s) x + t."""
    return (points * scale[:, None, :]) @ rotation.transpose(1, 2) + translation[:, None, :]


def _symmetric_gt_rotations(rotation_gt: torch.Tensor, symmetries: Sequence[str] | None) -> list[torch.Tensor]:
    """Per object the GT rotations (m_i, 3, 3) equivalent under its symmetry about canonical +y."""
    if symmetries is None:
        return [r[None] for r in rotation_gt]
    if len(symmetries) != rotation_gt.shape[0]:
        raise ValueError(f"{len(symmetries)} symmetry labels for {rotation_gt.shape[0]} objects")
    out = []
    for r, sym in zip(rotation_gt, symmetries):
        order = INF_SYMMETRY_STEPS if sym == "inf" else SYMMETRY_ORDERS.get(sym)
        if order is None:
            raise ValueError(f"symmetry must be one of none, 2fold, 4fold, inf; got {sym!r}")
        angles = torch.arange(order, dtype=r.dtype, device=r.device) * (2 * math.pi / order)
        out.append(r[None] @ rotation_about_y(angles, dtype=r.dtype, device=r.device))
    return out


def point_cloud_loss(rotation_pred: torch.Tensor, translation_pred: torch.Tensor,
                     rotation_gt: torch.Tensor, translation_gt: torch.Tensor, scale_gt: torch.Tensor,
                     points: torch.Tensor, symmetries: Sequence[str] | None = None) -> torch.Tensor:
    """L_Rt (Eq. 7): mean over M objects of the mean squared distance (m^2) between the object's
    points (M, P, 3, canonical) under [R_pred | t_pred] and [R_gt | t_gt], both with scale_gt.

    rotation_*: (M, 3, 3); translation_*: (M, 3) metres; scale_gt: (M, 3). With `symmetries`
    (M labels), each object takes the minimum over its symmetry-equivalent GT rotations.
    Returns a scalar (0 for M = 0, still attached to the graph).
    """
    m = points.shape[0]
    shapes = {"rotation_pred": (rotation_pred.shape, (m, 3, 3)), "rotation_gt": (rotation_gt.shape, (m, 3, 3)),
              "translation_pred": (translation_pred.shape, (m, 3)), "translation_gt": (translation_gt.shape, (m, 3)),
              "scale_gt": (scale_gt.shape, (m, 3))}
    for name, (got, want) in shapes.items():
        if tuple(got) != want:
            raise ValueError(f"point_cloud_loss: {name} must be {want}, got {tuple(got)}")
    if points.ndim != 3 or points.shape[2] != 3:
        raise ValueError(f"point_cloud_loss: points must be (M, P, 3), got {tuple(points.shape)}")
    if m == 0:
        return (rotation_pred.sum() + translation_pred.sum()) * 0.0
    pred = _place(points, rotation_pred, translation_pred, scale_gt)  # (M, P, 3)
    losses = []
    for i, r_gts in enumerate(_symmetric_gt_rotations(rotation_gt, symmetries)):
        k = r_gts.shape[0]
        gt = _place(points[i:i + 1].expand(k, -1, -1), r_gts, translation_gt[i:i + 1].expand(k, -1),
                    scale_gt[i:i + 1].expand(k, -1))  # (k, P, 3)
        per_candidate = ((pred[i:i + 1] - gt) ** 2).sum(-1).mean(-1)  # (k,)
        losses.append(per_candidate.min())
    return torch.stack(losses).mean()


def scale_loss(scale_pred: torch.Tensor, scale_gt: torch.Tensor) -> torch.Tensor:
    """L_s: L1 distance between predicted and GT scales (M, 3), summed over xyz, mean over M."""
    if scale_pred.shape != scale_gt.shape or scale_pred.ndim != 2 or scale_pred.shape[1] != 3:
        raise ValueError(f"scale_loss: scales must both be (M, 3), got {tuple(scale_pred.shape)} "
                         f"and {tuple(scale_gt.shape)}")
    if scale_pred.shape[0] == 0:
        return scale_pred.sum() * 0.0
    return (scale_pred - scale_gt).abs().sum(-1).mean()
