"""Rotation as an up vector and a heading class, in the allocentric frame of a crop's centre ray.

Front and back of an object differ by a half turn of its heading, so the crop network classifies
the heading into bins (Mask2CAD and SPARC treat rotation the same way) instead of regressing a
coordinate that averages the two. The classes are allocentric: what a crop shows depends on the
rotation relative to its viewing ray, not relative to the optical axis.

Frames: R (N, 3, 3) canonical -> camera (columns: the object's +x, +y up, +z front in the camera
frame); d (N, 3) the unit ray through the crop centre; R_ray (N, 3, 3) the smallest rotation taking
the optical axis (0, 0, 1) to d; allocentric R_a = R_ray^T R. In the allocentric frame, the
heading psi of the front f_a = R_a e_z is measured about the up u_a = R_a e_y from a = the
direction towards the camera (-e_z) made perpendicular to u_a, with b = u_a x a:
f_a = cos(psi) a + sin(psi) b. A turn of the object by phi about its own +y adds phi to psi,
so an object with k-fold symmetry has the k equivalent headings psi + 2 pi j / k.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def ray_rotation(d: torch.Tensor) -> torch.Tensor:
    """Unit rays d (N, 3) with d_z > 0 -> R_ray (N, 3, 3), R_ray (0, 0, 1) = d (Rodrigues about e_z x d)."""
    d = F.normalize(d, dim=-1)
    v = torch.stack([-d[:, 1], d[:, 0], torch.zeros_like(d[:, 0])], 1)  # e_z x d, (N, 3)
    zero = torch.zeros_like(d[:, 0])
    vx = torch.stack([torch.stack([zero, -v[:, 2], v[:, 1]], 1), torch.stack([v[:, 2], zero, -v[:, 0]], 1),
                      torch.stack([-v[:, 1], v[:, 0], zero], 1)], 1)  # (N, 3, 3) cross-product matrix
    eye = torch.eye(3, dtype=d.dtype, device=d.device).expand_as(vx)
    return eye + vx + vx @ vx / (1 + d[:, 2]).clamp_min(1e-6)[:, None, None]


def heading_frame(up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Allocentric up (N, 3) -> (a, b) (N, 3) each: towards the camera, perpendicular to up; b = up x a."""
    u = F.normalize(up, dim=-1)
    towards = torch.zeros_like(u)
    towards[:, 2] = -1.0
    a = F.normalize(towards - (towards * u).sum(1, keepdim=True) * u, dim=-1, eps=1e-6)
    return a, torch.cross(u, a, dim=1)


def heading_targets(rotation: torch.Tensor, ray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """R (N, 3, 3) canonical -> camera and centre rays (N, 3) -> (allocentric up (N, 3), heading psi (N,) in (-pi, pi])."""
    r_a = ray_rotation(ray).transpose(1, 2) @ rotation.to(ray.dtype)  # (N, 3, 3)
    u, f = r_a[:, :, 1], r_a[:, :, 2]
    a, b = heading_frame(u)
    return u, torch.atan2((f * b).sum(1), (f * a).sum(1))


def heading_rotation(up: torch.Tensor, psi: torch.Tensor, ray: torch.Tensor) -> torch.Tensor:
    """Inverse of ``heading_targets``: allocentric up (N, 3) (any length), psi (N,), rays (N, 3) -> R (N, 3, 3)."""
    u = F.normalize(up, dim=-1)
    a, b = heading_frame(u)
    f = torch.cos(psi)[:, None] * a + torch.sin(psi)[:, None] * b
    r_a = torch.stack([torch.cross(u, f, dim=1), u, f], 2)  # columns x, y, z
    return ray_rotation(ray) @ r_a


def heading_bin(psi: torch.Tensor, bins: int) -> torch.Tensor:
    """Heading (...) radians -> bin index (...) int64 in [0, bins); bin j covers [-pi + 2 pi j / bins, ...)."""
    return torch.floor((psi + math.pi) / (2 * math.pi) * bins).long() % bins


def heading_centres(bins: int, dtype=torch.float32) -> torch.Tensor:
    """(bins,) the centre angle of each heading bin."""
    return -math.pi + (torch.arange(bins, dtype=dtype) + 0.5) * 2 * math.pi / bins


def decode_heading(logits: torch.Tensor) -> torch.Tensor:
    """Heading logits (N, Y) -> psi (N,): the arg-max bin, refined by the vertex of the parabola
    through the log-probabilities of it and its two neighbours on the circle (exact for the
    Gaussian soft labels of ``heading_loss``; never an average of two opposite modes)."""
    bins = logits.shape[1]
    logp = torch.log_softmax(logits.double(), 1)
    peak = logp.argmax(1)  # (N,)
    left, mid, right = (logp.gather(1, ((peak + k) % bins)[:, None])[:, 0] for k in (-1, 0, 1))
    curve = left - 2 * mid + right  # <= 0 at a maximum
    shift = torch.where(curve < -1e-9, 0.5 * (left - right) / curve.clamp(max=-1e-9), torch.zeros_like(curve))
    psi = heading_centres(bins, torch.float64)[peak] + shift.clamp(-0.5, 0.5) * 2 * math.pi / bins
    return torch.remainder(psi + math.pi, 2 * math.pi) - math.pi


def heading_loss(logits: torch.Tensor, psi: torch.Tensor, folds: torch.Tensor, sigma_bins: float = 1.0) -> torch.Tensor:
    """Cross entropy of heading logits (N, Y) against a circular Gaussian soft label (sigma in bins)
    around the true heading psi (N,), the minimum over the folds (N,) symmetric equivalents -> (N,)."""
    n, bins = logits.shape
    logp = F.log_softmax(logits, 1)  # (N, Y)
    max_folds = max(int(folds.max()) if folds.numel() else 1, 1)
    j = torch.arange(max_folds, dtype=logits.dtype)
    cands = psi[:, None].to(logits.dtype) + 2 * math.pi * j[None] / folds.to(logits.dtype)[:, None]  # (N, F)
    centres = heading_centres(bins, logits.dtype)
    diff = torch.remainder(centres[None, None] - cands[:, :, None] + math.pi, 2 * math.pi) - math.pi  # (N, F, Y)
    soft = torch.softmax(-0.5 * (diff / (sigma_bins * 2 * math.pi / bins)) ** 2, 2)  # (N, F, Y)
    ce = -(soft * logp[:, None]).sum(2)  # (N, F)
    return ce.masked_fill(j[None] >= folds[:, None], float("inf")).amin(1)


def up_loss(up: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cos of the angle between predicted (N, 3) (any length) and true allocentric up (N, 3) -> (N,)."""
    return 1.0 - (F.normalize(up, dim=-1) * target).sum(1)
