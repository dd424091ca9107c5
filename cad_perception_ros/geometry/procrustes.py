"""Weighted rigid Procrustes (Kabsch / Umeyama without scale) and ROCA's refined translation.

All functions are batched, differentiable pure torch. Frames: `src` points live in the source
frame (for ROCA: scaled NOCs, canonical axes, metres), `dst` in the target frame (camera frame,
metres). The fit maps source to target: dst ~ R @ src + t.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from cad_perception_ros.geometry._checks import check_shape


class RigidFit(NamedTuple):
    """rotation: (B, 3, 3), det = +1, source -> target. translation: (B, 3), target frame."""

    rotation: torch.Tensor
    translation: torch.Tensor


def _normalized_weights(weights: torch.Tensor | None, batch: int, n: int, like: torch.Tensor,
                        eps: float) -> torch.Tensor:
    """(B, N) non-negative weights summing to 1 per batch item (uniform when None)."""
    if weights is None:
        return like.new_full((batch, n), 1.0 / n)
    check_shape("weights", weights, (batch, n))
    weights = weights.to(like.dtype).clamp(min=0.0)  # (B, N)
    return weights / weights.sum(dim=1, keepdim=True).clamp(min=eps)


def weighted_mean(points: torch.Tensor, weights: torch.Tensor | None = None,
                  eps: float = 1e-12) -> torch.Tensor:
    """Weighted average mu_c of points (B, N, 3) with weights (B, N) (uniform if None) -> (B, 3)."""
    check_shape("points", points, (None, None, 3))
    w = _normalized_weights(weights, points.shape[0], points.shape[1], points, eps)  # (B, N)
    return (w.unsqueeze(-1) * points).sum(dim=1)  # (B, 3)


def rotation_from_covariance(cov: torch.Tensor) -> torch.Tensor:
    """Closest rotation for a cross-covariance dst^T W src (B, 3, 3) -> R (B, 3, 3), det(R) = +1.

    R = U diag(1, 1, det(U V^T)) V^T with U S V^T = svd(cov) (ROCA Eqs. 8-9). The SVD runs in
    float64 for stability (as ROCA does) and the result is cast back to the input dtype.
    """
    check_shape("cov", cov, (None, 3, 3))
    u, _, vh = torch.linalg.svd(cov.double())  # (B, 3, 3) each
    d = torch.det(u @ vh)  # (B,) +-1
    diag = torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1)  # (B, 3)
    rotation = (u * diag.unsqueeze(-2)) @ vh  # (B, 3, 3) = U diag V^T
    return rotation.to(cov.dtype)


def weighted_procrustes(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None,
                        with_translation: bool = True, eps: float = 1e-12) -> RigidFit:
    """Weighted least-squares rigid fit: argmin_{R in SO(3), t} sum_k w_k |R src_k + t - dst_k|^2.

    src: (B, N, 3) source points. dst: (B, N, 3) target points. weights: (B, N) >= 0 or None
    (uniform); they are normalised per item. with_translation=False solves for R only about the
    origin (no centring, t = 0), which is ROCA's Eq. 7 when src, dst are already q*s and p - t_init.
    Reflections are removed with the determinant, so det(R) = +1 even when the unconstrained
    least-squares answer is a reflection. Differentiable; gradients are ill-defined only when the
    covariance has repeated singular values (degenerate, e.g. planar-symmetric point sets).
    Returns RigidFit(rotation (B, 3, 3), translation (B, 3)).
    """
    check_shape("src", src, (None, None, 3))
    check_shape("dst", dst, tuple(src.shape))
    if src.shape[1] < 1:
        raise ValueError("src must contain at least one point, got N = 0")
    w = _normalized_weights(weights, src.shape[0], src.shape[1], src, eps)  # (B, N)
    if with_translation:
        mu_src = (w.unsqueeze(-1) * src).sum(dim=1)  # (B, 3)
        mu_dst = (w.unsqueeze(-1) * dst).sum(dim=1)  # (B, 3)
        src_c, dst_c = src - mu_src.unsqueeze(1), dst - mu_dst.unsqueeze(1)  # (B, N, 3)
    else:
        src_c, dst_c = src, dst
    cov = dst_c.transpose(1, 2) @ (w.unsqueeze(-1) * src_c)  # (B, 3, 3) = dst^T W src
    rotation = rotation_from_covariance(cov)  # (B, 3, 3)
    if with_translation:
        translation = mu_dst - (rotation @ mu_src.unsqueeze(-1)).squeeze(-1)  # (B, 3)
    else:
        translation = src.new_zeros(src.shape[0], 3)
    return RigidFit(rotation, translation)


def refined_translation(scaled_noc: torch.Tensor, centered_points: torch.Tensor,
                        weights: torch.Tensor | None, rotation: torch.Tensor,
                        translation_init: torch.Tensor) -> torch.Tensor:
    """ROCA Eq. 11: t = t_init + mu_c(p~) - R mu_c(q~) -> (B, 3), camera frame, metres.

    scaled_noc q~ = q * s: (B, N, 3) canonical axes, metres. centered_points p~ = p - t_init:
    (B, N, 3) camera frame. weights c: (B, N) or None. rotation: (B, 3, 3). translation_init: (B, 3).
    Algebraically this is the usual Procrustes translation mu(p) - R mu(q~); ROCA writes it
    relative to t_init for numerical stability.
    """
    check_shape("scaled_noc", scaled_noc, (None, None, 3))
    check_shape("centered_points", centered_points, tuple(scaled_noc.shape))
    batch = scaled_noc.shape[0]
    check_shape("rotation", rotation, (batch, 3, 3))
    check_shape("translation_init", translation_init, (batch, 3))
    mu_q = weighted_mean(scaled_noc, weights)  # (B, 3)
    mu_p = weighted_mean(centered_points, weights)  # (B, 3)
    return translation_init + mu_p - (rotation @ mu_q.unsqueeze(-1)).squeeze(-1)  # (B, 3)


def roca_procrustes(noc: torch.Tensor, scale: torch.Tensor, points: torch.Tensor,
                    translation_init: torch.Tensor, weights: torch.Tensor | None = None,
                    zero_center: bool = False) -> RigidFit:
    """ROCA's alignment solve (Sec. 3.3, Eqs. 7-9 and 11) for one batch of objects.

    noc q: (B, N, 3) canonical coordinates in [-0.5, 0.5]. scale s: (B, 3) metres per unit.
    points p: (B, N, 3) back-projected depth points, camera frame. translation_init: (B, 3).
    weights c: (B, N) >= 0 or None. The rotation comes from the weighted covariance of
    q~ = q * s and p~ = p - t_init about the origin, as ROCA's code does by default
    (zero_center=False); zero_center=True centres both sets first (plain Umeyama rotation).
    Returns RigidFit(rotation (B, 3, 3), refined translation (B, 3) from Eq. 11).
    """
    check_shape("noc", noc, (None, None, 3))
    batch = noc.shape[0]
    check_shape("scale", scale, (batch, 3))
    check_shape("points", points, tuple(noc.shape))
    check_shape("translation_init", translation_init, (batch, 3))
    scaled_noc = noc * scale.unsqueeze(1)  # (B, N, 3)
    centered = points - translation_init.unsqueeze(1)  # (B, N, 3)
    fit = weighted_procrustes(scaled_noc, centered, weights, with_translation=zero_center)
    translation = refined_translation(scaled_noc, centered, weights, fit.rotation, translation_init)
    return RigidFit(fit.rotation, translation)
