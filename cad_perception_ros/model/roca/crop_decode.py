"""Crop network outputs -> 9-DoF poses: NOC bins to coordinates, SITE translation, weighted Procrustes.

Frames: camera frame (x right, y down, z forward, metres), canonical frame with NOCs in
[-0.5, 0.5]^3, boxes square (x_min, y_min, x_max, y_max) in pixels of the image whose K is given.
The exported graph ends with ``decode_nocs`` and the dense maps; ``crop_poses`` (3x3 SVD) runs
outside it, in float64. With a registered sensor depth resampled onto the output grid
(``sensor_z``), the sensor z replaces t_z + depth |s| where it is valid, and the initial t_z is the
median of sensor z - depth |s| over the valid mask pixels (the holes then agree with the sensor).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from cad_perception_ros.geometry.camera import crop_intrinsics, pixel_rays
from cad_perception_ros.geometry.procrustes import refined_translation, roca_procrustes
from cad_perception_ros.model.roca.crop_heading import decode_heading, heading_rotation
from cad_perception_ros.model.roca.crop_sampling import crop_rays


class CropPoses(NamedTuple):
    """rotation (N, 3, 3) canonical -> camera, translation (N, 3) metres, scale (N, 3) metres/unit."""

    rotation: torch.Tensor
    translation: torch.Tensor
    scale: torch.Tensor


def bin_centres(bins: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """(B,) centres of `bins` equal bins over [-0.5, 0.5]."""
    return (torch.arange(bins, dtype=dtype, device=device) + 0.5) / bins - 0.5


def noc_to_bins(noc: torch.Tensor, bins: int) -> torch.Tensor:
    """NOCs (...) in [-0.5, 0.5] -> bin index (...) int64 in [0, bins)."""
    return ((noc + 0.5) * bins).floor().clamp(0, bins - 1).long()


def decode_nocs(noc_logits: torch.Tensor, window: int) -> torch.Tensor:
    """noc_logits (N, 3, B, R, R) -> NOCs (N, 3, R, R): the probability-weighted mean of the bins
    within `window` of the arg-max bin (one mode, never the average of front and back)."""
    bins = noc_logits.shape[2]
    prob = torch.softmax(noc_logits, 2)  # (N, 3, B, R, R)
    centres = bin_centres(bins, noc_logits.dtype, noc_logits.device).view(1, 1, bins, 1, 1)
    peak = prob.argmax(2, keepdim=True).to(noc_logits.dtype)  # (N, 3, 1, R, R)
    index = torch.arange(bins, dtype=noc_logits.dtype, device=noc_logits.device).view(1, 1, bins, 1, 1)
    near = ((index - peak).abs() <= window).to(prob.dtype)  # (N, 3, B, R, R)
    p = prob * near
    return (p * centres).sum(2) / p.sum(2).clamp_min(1e-9)  # (N, 3, R, R)


def output_rays(boxes: torch.Tensor, K: torch.Tensor, size: int) -> torch.Tensor:
    """Rays (N, 2, R, R) = (x/z, y/z) of the output-grid pixel centres of crops boxes (N, 4), K (3, 3) or (N, 3, 3)."""
    return crop_rays(crop_intrinsics(K.to(boxes.dtype), boxes, (size, size)), size)


def box_rays(boxes: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Unit rays (N, 3) through the centres of boxes (N, 4) in the image of K (3, 3) or (N, 3, 3)."""
    return F.normalize(pixel_rays((boxes[:, :2] + boxes[:, 2:]) / 2, K), dim=1)


def site_translation(offset: torch.Tensor, depth_ratio: torch.Tensor, scale: torch.Tensor,
                     boxes: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Scale-invariant translation (GDR-Net's SITE) -> t (N, 3), camera frame.

    offset (N, 2): projected centre minus crop centre in crop sides; depth_ratio (N,):
    log(t_z side / (fx |s|)); scale (N, 3) metres; boxes (N, 4) square crops; K (3, 3) or (N, 3, 3)."""
    K = K.to(boxes.dtype).expand(boxes.shape[0], 3, 3) if K.dim() == 2 else K.to(boxes.dtype)
    side = boxes[:, 2] - boxes[:, 0]  # (N,)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + offset * side[:, None]  # (N, 2) image pixels
    z = K[:, 0, 0] * scale.norm(dim=1) / side * torch.exp(depth_ratio)  # (N,)
    return pixel_rays(centre, K) * z[:, None]


def site_targets(translation: torch.Tensor, scale: torch.Tensor, boxes: torch.Tensor,
                 K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of ``site_translation``: t (N, 3), s (N, 3), boxes (N, 4), K -> (offset (N, 2), depth_ratio (N,))."""
    K = K.to(boxes.dtype).expand(boxes.shape[0], 3, 3) if K.dim() == 2 else K.to(boxes.dtype)
    uvw = (K @ translation.to(boxes.dtype)[:, :, None])[:, :, 0]  # (N, 3)
    uv = uvw[:, :2] / uvw[:, 2:].clamp_min(1e-6)
    side = boxes[:, 2] - boxes[:, 0]
    offset = (uv - (boxes[:, :2] + boxes[:, 2:]) / 2) / side[:, None]
    ratio = torch.log(translation[:, 2].clamp_min(1e-3) * side / (K[:, 0, 0] * scale.norm(dim=1)))
    return offset, ratio


def crop_points(depth: torch.Tensor, rays: torch.Tensor, translation: torch.Tensor,
                scale: torch.Tensor, sensor_z: torch.Tensor | None = None) -> torch.Tensor:
    """Relative depth (N, R, R) in object sizes + rays (N, 2, R, R) + centre t (N, 3) + scale (N, 3)
    -> camera points (N, R*R, 3), z = t_z + depth |s| (or sensor_z (N, R, R) metres where > 0)."""
    z = translation[:, 2, None, None] + depth * scale.norm(dim=1)[:, None, None]  # (N, R, R)
    if sensor_z is not None:
        z = torch.where(sensor_z > 0, sensor_z.to(z.dtype), z)
    pts = torch.stack([rays[:, 0] * z, rays[:, 1] * z, z], -1)  # (N, R, R, 3)
    return pts.flatten(1, 2)


def sensor_translation(t_site: torch.Tensor, relief: torch.Tensor, sensor_z: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
    """t_site (N, 3) moved along its ray to t_z = median of sensor_z - relief over the valid (> 0)
    pixels of mask (N, P) bool; relief (N, P) = depth |s| metres, sensor_z (N, P). Objects without a
    valid mask pixel keep t_site."""
    on = (sensor_z > 0) & mask
    tz = torch.where(on, sensor_z - relief, torch.full_like(relief, float("nan"))).nanmedian(1).values  # (N,)
    tz = torch.where(torch.isnan(tz), t_site[:, 2], tz)
    return t_site * (tz / t_site[:, 2].clamp_min(1e-6))[:, None]


def heading_pose(out: dict[str, torch.Tensor], boxes: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """The rotation (N, 3, 3) of the up and heading outputs of crops boxes (N, 4) in the image of K (float64)."""
    psi = decode_heading(out["heading_logits"])
    return heading_rotation(out["up"].double(), psi, box_rays(boxes.double(), K.double()))


def gate_rotation(procrustes: torch.Tensor, heading: torch.Tensor, gate_deg: float) -> torch.Tensor:
    """Per object (N, 3, 3): the Procrustes rotation where it lies within gate_deg of the heading one, else the heading one."""
    cos = (((procrustes * heading).sum((1, 2)) - 1) / 2).clamp(-1, 1)
    near = torch.rad2deg(torch.acos(cos)) <= gate_deg
    return torch.where(near[:, None, None], procrustes, heading)


def crop_poses(out: dict[str, torch.Tensor], boxes: torch.Tensor, K: torch.Tensor, *, window: int,
               mask_threshold: float, refine_translation: bool = True, nocs: torch.Tensor | None = None,
               rotation: str = "procrustes", gate_deg: float = 30.0,
               sensor_z: torch.Tensor | None = None, learned_weights: bool = True) -> CropPoses:
    """Crop network outputs (CropNet.forward, or the exported graph's with ``nocs`` given) of crops
    boxes (N, 4) in the image of K -> CropPoses. Runs in float64; weights are sigmoid(weight_logits)
    on pixels whose mask probability exceeds mask_threshold (all mask pixels if fewer than 3).
    rotation: "procrustes", "heading" or "gated" (CropConfig). Eq. 11 re-centres the points with the
    chosen rotation. sensor_z: (N, R, R) registered sensor depth on the output grid, metres, 0 = hole.
    learned_weights False: every mask pixel weighs the same (the ablation of ROCA's W)."""
    f = {k: v.double() for k, v in out.items()}
    boxes = boxes.double()
    scale = torch.exp(f["log_scale"])  # (N, 3)
    t_site = site_translation(f["offset"], f["depth_ratio"], scale, boxes, K.double())  # (N, 3)
    if rotation == "heading" and not refine_translation and sensor_z is None:  # the global outputs suffice
        return CropPoses(heading_pose(f, boxes, K), t_site, scale)
    size = f["depth"].shape[-1]
    noc = decode_nocs(f["noc_logits"], window) if nocs is None else nocs.double()  # (N, 3, R, R)
    rays = output_rays(boxes, K.double(), size)  # (N, 2, R, R)
    prob = torch.sigmoid(f["mask_logits"]).flatten(1)  # (N, P)
    if sensor_z is not None:
        sensor_z = sensor_z.double()
        relief = (f["depth"] * scale.norm(dim=1)[:, None, None]).flatten(1)  # (N, P)
        t_site = sensor_translation(t_site, relief, sensor_z.flatten(1), prob > mask_threshold)
    points = crop_points(f["depth"], rays, t_site, scale, sensor_z)  # (N, P, 3)
    fg = (prob > mask_threshold).double()
    few = fg.sum(1, keepdim=True) < 3
    fg = torch.where(few, prob + 1e-3, fg)
    weights = (torch.sigmoid(f["weight_logits"]).flatten(1) if learned_weights else 1.0) * fg  # (N, P)
    q = noc.flatten(2).transpose(1, 2)  # (N, P, 3)
    fit = roca_procrustes(q, scale, points, t_site, weights, zero_center=True) if rotation != "heading" else None
    if rotation == "procrustes":
        rot = fit.rotation
    else:  # the heading rotation; gated: the solve where it agrees with it
        rot = heading_pose(f, boxes, K)
        rot = rot if rotation == "heading" else gate_rotation(fit.rotation, rot, gate_deg)
    if not refine_translation:
        return CropPoses(rot, t_site, scale)
    if rotation == "procrustes":
        return CropPoses(rot, fit.translation, scale)
    return CropPoses(rot, refined_translation(q * scale[:, None], points - t_site[:, None], weights, rot, t_site), scale)
