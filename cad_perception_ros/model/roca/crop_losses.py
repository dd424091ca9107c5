"""Losses of the crop network (pure functions of CropNet outputs and ``crop_targets.sample_crops``).

Shapes: N crops, R x R output grid, B NOC bins. NOCs are classified per axis (NOCS, Wang et al.
2019); for objects symmetric about +y the NOC loss takes the symmetric equivalent with the
smallest error. The rotation loss runs the weighted Procrustes solve (ROCA Eqs. 7-9) on the
decoded NOCs and the predicted relative depth, so it trains the Procrustes weights.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cad_perception_ros.geometry.procrustes import roca_procrustes
from cad_perception_ros.geometry.rotations import rotation_about_y
from cad_perception_ros.model.roca.alignment_ops import closest_symmetric_rotation
from cad_perception_ros.model.roca.crop_config import CropConfig
from cad_perception_ros.model.roca.crop_heading import heading_loss, up_loss
from cad_perception_ros.model.roca.crop_decode import (
    crop_points,
    decode_nocs,
    noc_to_bins,
)


def symmetric_nocs(noc: torch.Tensor, folds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """noc (N, R, R, 3), folds (N,) -> candidates (N, F, R, R, 3) = S_k^T q for S_k a turn of 2 pi k / folds
    about +y, and valid (N, F) bool (k < folds)."""
    max_folds = max(int(folds.max()) if folds.numel() else 1, 1)
    k = torch.arange(max_folds, dtype=noc.dtype)
    angles = 2 * math.pi * k[None] / folds.to(noc.dtype)[:, None]  # (N, F)
    sym = rotation_about_y(angles, dtype=noc.dtype)  # (N, F, 3, 3)
    cands = torch.einsum("nfji,nabj->nfabi", sym, noc)  # S^T q, (N, F, R, R, 3)
    return cands, k[None] < folds[:, None]


def noc_loss(noc_logits: torch.Tensor, noc: torch.Tensor, mask: torch.Tensor, folds: torch.Tensor) -> torch.Tensor:
    """Cross entropy of the NOC bins on mask pixels, min over symmetric equivalents -> (N,)."""
    n, _, bins = noc_logits.shape[:3]
    logp = F.log_softmax(noc_logits, 2)  # (N, 3, B, R, R)
    cands, valid = symmetric_nocs(noc, folds)  # (N, F, R, R, 3), (N, F)
    target = noc_to_bins(cands, bins).permute(0, 1, 4, 2, 3)  # (N, F, 3, R, R)
    ce = -torch.stack([logp.gather(2, target[:, f, :, None]).squeeze(2) for f in range(target.shape[1])], 1)  # (N, F, 3, R, R)
    per = (ce.sum(2) * mask[:, None]).sum((2, 3)) / mask.sum((1, 2)).clamp_min(1)[:, None]  # (N, F)
    return per.masked_fill(~valid, float("inf")).amin(1)


def depth_losses(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative depth (N, R, R) in object sizes: (L1 on the mask, L1 of x / y gradients where both pixels are on it)."""
    area = mask.sum((1, 2)).clamp_min(1)
    l1 = ((pred - target).abs() * mask).sum((1, 2)) / area
    grads = []
    for dim in (1, 2):
        a, b = (slice(1, None), slice(None, -1))
        sl_a = (slice(None), a, slice(None)) if dim == 1 else (slice(None), slice(None), a)
        sl_b = (slice(None), b, slice(None)) if dim == 1 else (slice(None), slice(None), b)
        both = mask[sl_a] * mask[sl_b]
        diff = (pred[sl_a] - pred[sl_b]) - (target[sl_a] - target[sl_b])
        grads.append((diff.abs() * both).sum((1, 2)) / both.sum((1, 2)).clamp_min(1))
    return l1, (grads[0] + grads[1]) * pred.shape[-1] / 4  # gradients per quarter crop, comparable to l1


def normal_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, rays: torch.Tensor,
                translation: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Normal consistency of relative depth maps (N, R, R): both lifted to camera points on the
    output rays (N, 2, R, R) with the true centre t (N, 3) and scale (N, 3); per pixel the normal
    is the cross product of its x and y differences; -> (N,) mean 1 - cos over pixels whose two
    neighbours are on the mask too."""
    n, r = pred.shape[0], pred.shape[-1]
    normals = []
    for depth in (pred, target):
        p = crop_points(depth, rays, translation, scale).reshape(n, r, r, 3)
        dx, dy = p[:, :-1, 1:] - p[:, :-1, :-1], p[:, 1:, :-1] - p[:, :-1, :-1]  # (N, R-1, R-1, 3)
        normals.append(F.normalize(torch.cross(dx, dy, dim=-1), dim=-1, eps=1e-9))
    valid = mask[:, :-1, :-1] * mask[:, :-1, 1:] * mask[:, 1:, :-1]
    cos = (normals[0] * normals[1]).sum(-1)
    return ((1 - cos) * valid).sum((1, 2)) / valid.sum((1, 2)).clamp_min(1)


def rotation_loss(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], window: int) -> torch.Tensor:
    """Chordal error |R - R_gt|_F^2 of the weighted Procrustes solve (decoded NOCs, predicted relative
    depth, true centre and scale, ground-truth mask) against the closest symmetric truth -> (N,)."""
    noc = decode_nocs(out["noc_logits"], window).double().flatten(2).transpose(1, 2)  # (N, P, 3)
    scale, t = batch["scale"].double(), batch["translation"].double()
    points = crop_points(out["depth"].double(), batch["out_rays"].double(), t, scale)  # (N, P, 3)
    mask = batch["mask"].flatten(1).double()
    weights = torch.sigmoid(out["weight_logits"].double()).flatten(1) * mask + 1e-6
    fit = roca_procrustes(noc, scale, points, t, weights, zero_center=True)
    r_gt, _ = closest_symmetric_rotation(fit.rotation, batch["rotation"].double(), batch["folds"])
    enough = (mask.sum(1) >= 8).double()
    return (((fit.rotation - r_gt) ** 2).sum((1, 2)) * enough).float()


def crop_losses(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], config: CropConfig,
                with_rotation: bool = True) -> dict[str, torch.Tensor]:
    """All weighted loss terms (means over the batch) and "total"."""
    mask = batch["mask"]
    terms = {"mask": F.binary_cross_entropy_with_logits(out["mask_logits"], mask),
             "noc": noc_loss(out["noc_logits"], batch["noc"], mask, batch["folds"]).mean() / 3}
    l1, grad = depth_losses(out["depth"], batch["depth"], mask)
    terms["depth"], terms["depth_gradient"] = l1.mean(), grad.mean()
    terms["scale"] = (out["log_scale"] - batch["log_scale"]).abs().sum(1).mean()
    terms["offset"] = (out["offset"] - batch["offset"]).abs().sum(1).mean()
    terms["depth_ratio"] = (out["depth_ratio"] - batch["depth_ratio"]).abs().mean()
    terms["heading"] = heading_loss(out["heading_logits"], batch["heading"], batch["folds"]).mean()
    terms["up"] = up_loss(out["up"], batch["up"]).mean()
    if with_rotation:
        terms["rotation"] = rotation_loss(out, batch, config.noc_window).mean()
    w = config.loss_weights
    if w.depth_normal > 0:
        terms["depth_normal"] = normal_loss(out["depth"], batch["depth"], mask, batch["out_rays"],
                                            batch["translation"], batch["scale"]).mean()
    weighted = {k: v * getattr(w, k) for k, v in terms.items()}
    weighted["total"] = sum(weighted.values())
    return weighted
