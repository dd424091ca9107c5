"""Collision loss (Points2Objects Eq. 8-9) and the collision metrics of its Table 3.

Objects are placed as X = R diag(s) x + t (canonical -> camera). For an ordered pair (i, j) of
objects of the same image, the points P_i of object i are moved into the canonical frame of j,
x_j = diag(1/s_j) R_j^T (X - t_j), and j's penetration grid phi~_j = max(-phi_j, 0) (positive
inside j, 0 outside; the paper's "min(-phi, 0)" is a sign slip, its text says positive inside)
is sampled there with trilinear interpolation (grid_sample, zero outside the canonical cube).
  L_coll^i = sum_{j != i} sum_{x in P_i} phi~_j(T_ij x)         (Eq. 8)
  L_coll   = sum_i rho(L_coll^i),  rho(x) = (x^2 / 2) / (1 + x^2)  (Eq. 9, Geman-McClure)
Depths are in j's canonical units, as in the paper. The sum over points (not a mean) matters:
penetration depths of thin furniture parts are ~1e-3 canonical units, and only the sum over a
few hundred points reaches the range where rho is not negligible; rho then bounds each object's
term by 1/2. L_coll therefore depends on the number of points P (P2OConfig.points_per_object).
A batch's loss is the mean over its images.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from cad_perception_ros.model.points2objects.config import P2OConfig


def ordered_pairs(image_ids: torch.Tensor, ordered: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs (i, j), i != j, of objects with the same image id (M,) -> two (Q,) tensors.
    With ordered=False only i < j."""
    same = image_ids[:, None] == image_ids[None, :]  # (M, M)
    keep = same & ~torch.eye(len(image_ids), dtype=torch.bool, device=image_ids.device)
    if not ordered:
        keep = torch.triu(keep, diagonal=1)
    i, j = torch.nonzero(keep, as_tuple=True)
    return i, j


def place(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
          scale: torch.Tensor) -> torch.Tensor:
    """Canonical (Q, P, 3) -> camera (Q, P, 3): R diag(s) x + t with R (Q,3,3), t (Q,3), s (Q,3)."""
    return (points * scale[:, None, :]) @ rotation.transpose(1, 2) + translation[:, None, :]


def to_canonical(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
                 scale: torch.Tensor) -> torch.Tensor:
    """Camera (Q, P, 3) -> canonical frame of the object (R, t, s): diag(1/s) R^T (X - t)."""
    return ((points - translation[:, None, :]) @ rotation) / scale[:, None, :]


def sample_grid(grids: torch.Tensor, points: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Trilinear samples (Q, P) of grids (Q, G, G, G) (index [ix, iy, iz], cube [-0.5, 0.5]^3)
    at canonical points (Q, P, 3). Differentiable with respect to the points and the grids."""
    if grids.ndim != 4 or points.ndim != 3 or points.shape[0] != grids.shape[0] or points.shape[2] != 3:
        raise ValueError(f"sample_grid: grids (Q, G, G, G) and points (Q, P, 3) expected, got "
                         f"{tuple(grids.shape)} and {tuple(points.shape)}")
    # grid_sample reads the last grid coordinate as the depth axis (dim 2 of the volume = ix).
    coords = (2.0 * points).flip(-1).to(grids.dtype)[:, None, None]  # (Q, 1, 1, P, 3) in [-1, 1]
    out = F.grid_sample(grids[:, None], coords, mode="bilinear", padding_mode=padding_mode,
                        align_corners=False)  # (Q, 1, 1, 1, P)
    return out[:, 0, 0, 0]


def geman_mcclure(x: torch.Tensor) -> torch.Tensor:
    """rho(x) = (x^2 / 2) / (1 + x^2) (Eq. 9)."""
    x2 = x * x
    return 0.5 * x2 / (1.0 + x2)


def collision_loss(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
                   scale: torch.Tensor, penetration: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
    """L_coll (Eq. 8-9) of M predicted objects, averaged over the images present.

    points: (M, P, 3) canonical points of each object's selected exemplar; rotation (M, 3, 3),
    translation (M, 3), scale (M, 3): predicted placement; penetration: (M, G, G, G) phi~ grid of
    each object's selected exemplar (ExemplarSet.penetration_grids()); image_ids: (M,) int.
    """
    m = points.shape[0]
    if penetration.shape[0] != m or image_ids.shape != (m,) or rotation.shape != (m, 3, 3):
        raise ValueError(f"collision_loss: inconsistent object counts: points {tuple(points.shape)}, "
                         f"rotation {tuple(rotation.shape)}, penetration {tuple(penetration.shape)}, "
                         f"image_ids {tuple(image_ids.shape)}")
    zero = (rotation.sum() + translation.sum() + scale.sum()) * 0.0
    i, j = ordered_pairs(image_ids)
    if i.numel() == 0:
        return zero
    cam = place(points[i], rotation[i], translation[i], scale[i])  # (Q, P, 3)
    local = to_canonical(cam, rotation[j], translation[j], scale[j])  # (Q, P, 3) in j's frame
    depth = sample_grid(penetration[j], local).sum(-1)  # (Q,)
    per_object = torch.zeros(m, dtype=depth.dtype, device=depth.device).index_add(0, i, depth)  # (M,)
    rho = geman_mcclure(per_object)  # (M,)
    _, image_index = torch.unique(image_ids, return_inverse=True)
    per_image = torch.zeros(int(image_index.max()) + 1, dtype=rho.dtype, device=rho.device)
    per_image = per_image.index_add(0, image_index, rho)
    return per_image.mean() + zero


def collision_weight(step: int, config: P2OConfig) -> float:
    """lambda_coll at optimiser step `step`: 0 during the warm-up (Sec. 3.5), then the weight."""
    return 0.0 if step < config.collision_warmup_steps else config.weight_collision


class PairVolumes(NamedTuple):
    """Unordered pairs (Q, 2) of object indices (i < j) and their intersection volumes (Q,) m^3."""

    pairs: torch.Tensor
    volumes: torch.Tensor


def _regular_samples(n: int, dtype: torch.dtype) -> torch.Tensor:
    """(n^3, 3) cell centres of a regular n^3 grid in [-0.5, 0.5]^3."""
    axis = (torch.arange(n, dtype=dtype) + 0.5) / n - 0.5
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def _inside(sdf: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """Bool (Q, S): canonical points (Q, S, 3) inside the cube and where the SDF is negative."""
    in_cube = (local.abs() <= 0.5).all(-1)
    return in_cube & (sample_grid(sdf, local.clamp(-0.5, 0.5), padding_mode="border") < 0)


@torch.no_grad()
def intersection_volumes(sdf: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
                         scale: torch.Tensor, image_ids: torch.Tensor, samples_per_axis: int = 24) -> PairVolumes:
    """Intersection volume (m^3) of every unordered pair of objects of the same image.

    sdf: (M, G, G, G) SDF of each object's shape (negative inside), canonical frame. The volume
    of pair (i, j) is estimated from n^3 regular samples in i's box (volume prod(s_i)): the
    fraction inside both i and j (j's SDF sampled after moving the points into j's frame).
    """
    i, j = ordered_pairs(image_ids, ordered=False)
    samples = _regular_samples(samples_per_axis, sdf.dtype).to(sdf.device)  # (S, 3)
    local_i = samples[None].expand(len(i), -1, -1)  # (Q, S, 3)
    in_i = _inside(sdf[i], local_i)
    local_j = to_canonical(place(local_i, rotation[i], translation[i], scale[i]),
                           rotation[j], translation[j], scale[j])  # (Q, S, 3)
    both = in_i & _inside(sdf[j], local_j)
    volumes = both.to(sdf.dtype).mean(-1) * scale[i].prod(-1)  # (Q,)
    return PairVolumes(pairs=torch.stack([i, j], -1), volumes=volumes)


class CollisionMetrics(NamedTuple):
    """Table 3 metrics over a set of images. Volumes in m^3.

    mean_intersection_volume: mean over images of the summed pair intersection volume;
    mean_colliding_pair_volume: mean volume over colliding pairs (0 when none);
    num_colliding_pairs: pairs with volume > eps; num_pairs; num_images."""

    mean_intersection_volume: float
    mean_colliding_pair_volume: float
    num_colliding_pairs: int
    num_pairs: int
    num_images: int


def summarize_collisions(per_image: Sequence[PairVolumes], eps: float = 1e-6) -> CollisionMetrics:
    """Aggregate the PairVolumes of several images into CollisionMetrics."""
    totals = [float(v.volumes.sum()) for v in per_image]
    vols = torch.cat([v.volumes.double() for v in per_image]) if per_image else torch.zeros(0)
    colliding = vols[vols > eps]
    return CollisionMetrics(
        mean_intersection_volume=sum(totals) / len(totals) if totals else 0.0,
        mean_colliding_pair_volume=float(colliding.mean()) if colliding.numel() else 0.0,
        num_colliding_pairs=int(colliding.numel()), num_pairs=int(vols.numel()), num_images=len(per_image))
