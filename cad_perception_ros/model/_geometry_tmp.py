"""TEMPORARY stand-in for cad_perception_ros.geometry (feat/geometry), DELETE after merging it.

Implements only the COMMON.md contract signatures the model needs. ``model/geo.py`` imports
the real geometry package first and falls back to this file.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class RigidFit(NamedTuple):
    rotation: torch.Tensor
    translation: torch.Tensor


def weighted_procrustes(src, dst, weights, with_translation=True):
    w = weights.clamp_min(0).unsqueeze(-1)  # (B, N, 1)
    wsum = w.sum(1, keepdim=True).clamp_min(1e-8)
    if with_translation:
        mu_s = (w * src).sum(1, keepdim=True) / wsum
        mu_d = (w * dst).sum(1, keepdim=True) / wsum
    else:
        mu_s = torch.zeros_like(src[:, :1])
        mu_d = torch.zeros_like(dst[:, :1])
    cov = ((dst - mu_d) * w).transpose(1, 2) @ (src - mu_s)  # (B, 3, 3)
    cov = cov + 1e-6 * torch.eye(3, dtype=cov.dtype, device=cov.device)
    u, _, vh = torch.linalg.svd(cov)
    d = torch.det(u @ vh)
    diag = torch.ones_like(u[:, 0])
    diag = torch.stack([diag[:, 0], diag[:, 1], d], -1)
    rot = u @ torch.diag_embed(diag) @ vh
    t = mu_d.squeeze(1) - (rot @ mu_s.transpose(1, 2)).squeeze(-1)
    return RigidFit(rot, t)


def svd_orthogonalize(m):
    u, _, vh = torch.linalg.svd(m)
    d = torch.det(u @ vh)
    diag = torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1)
    return u @ torch.diag_embed(diag) @ vh


def trilinear_voxelize(points, weights, grid=32):
    b, n, _ = points.shape
    x = ((points + 0.5) * grid - 0.5).clamp(0, grid - 1)  # voxel-centre coordinates
    x0 = x.floor().clamp(max=grid - 2)
    f = x - x0
    x0 = x0.long()
    out = points.new_zeros(b, grid * grid * grid)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                wx = f[..., 0] if dx else 1 - f[..., 0]
                wy = f[..., 1] if dy else 1 - f[..., 1]
                wz = f[..., 2] if dz else 1 - f[..., 2]
                idx = ((x0[..., 0] + dx) * grid + (x0[..., 1] + dy)) * grid + (x0[..., 2] + dz)
                out = out.scatter_add(1, idx, weights * wx * wy * wz)
    return out.view(b, grid, grid, grid)
