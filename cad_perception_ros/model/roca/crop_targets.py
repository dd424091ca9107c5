"""Training crops: per-object patches cached once, then jittered square crops with their targets.

An object's patch is the square of side 2 x max(w, h) of its tight ground-truth box, resampled to
P x P from the full-resolution view (image bilinear; instance mask, depth and NOCs nearest), with
the patch's intrinsics K_patch = crop_intrinsics(K, patch box, (P, P)). A training crop is a
jittered square box inside the patch (crop_sampling.jitter_square_boxes) resampled to S x S (the
image) and R x R = S/2 x S/2 (the targets). Every geometric target is independent of the zoom:
the projected-centre offset in crop sides and the depth ratio log(t_z side / (fx |s|)).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from cad_perception_ros.geometry.camera import crop_intrinsics
from cad_perception_ros.model.roca.alignment_ops import SYMMETRY_FOLDS
from cad_perception_ros.model.roca.crop_decode import box_rays, output_rays, site_targets
from cad_perception_ros.model.roca.crop_heading import heading_targets
from cad_perception_ros.model.roca.crop_sampling import (
    crop_grid,
    crop_maps,
    crop_rays,
    jitter_square_boxes,
    square_boxes,
)

PATCH_ENLARGE = 2.0


class ObjectPatches(NamedTuple):
    """N cached objects. image (N, 3, P, P) uint8; mask (N, P, P) bool (the object's visible pixels
    with depth); depth (N, P, P) float32 metres; noc (N, 3, P, P) float16; K (N, 3, 3) float32 of
    the patch; box (N, 4) float32 tight box in patch pixels; rotation (N, 3, 3), translation (N, 3),
    scale (N, 3) float32 camera frame; classes (N,) int64; folds (N,) int64 (symmetry about +y)."""

    image: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    noc: torch.Tensor
    K: torch.Tensor
    box: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    scale: torch.Tensor
    classes: torch.Tensor
    folds: torch.Tensor

    def __len__(self) -> int:
        return int(self.classes.shape[0])


def view_patches(sample, patch_size: int, min_visible_pixels: int = 64) -> list[dict[str, torch.Tensor]]:
    """One SceneSample -> a dict of patch tensors per usable object (see ObjectPatches)."""
    objects = [(k, o) for k, o in enumerate(sample.objects)
               if o.visible_pixels >= min_visible_pixels and np.all(np.asarray(o.box_xyxy)[2:] - np.asarray(o.box_xyxy)[:2] >= 2)]
    if not objects:
        return []
    tight = torch.tensor(np.stack([np.asarray(o.box_xyxy, np.float32) for _, o in objects]))  # (n, 4)
    boxes = square_boxes(tight, PATCH_ENLARGE)  # (n, 4)
    image = torch.from_numpy(np.array(sample.image)).permute(2, 0, 1).float()  # (3, H, W), a writable copy
    labels = torch.cat([torch.from_numpy(sample.instance_map.astype(np.float32))[None],
                        torch.from_numpy(sample.depth.astype(np.float32))[None],
                        torch.from_numpy(sample.noc.astype(np.float32)).permute(2, 0, 1)], 0)  # (5, H, W)
    img = crop_maps(image, boxes, patch_size).round().clamp(0, 255).to(torch.uint8)  # (n, 3, P, P)
    lab = crop_maps(labels + torch.tensor([2.0, 0, 0, 0, 0]).view(5, 1, 1), boxes, patch_size, mode="nearest")
    K = crop_intrinsics(torch.as_tensor(sample.K, dtype=torch.float32), boxes, (patch_size, patch_size))
    side = (boxes[:, 2] - boxes[:, 0])[:, None]
    box_patch = (tight - boxes[:, :2].repeat(1, 2)) * patch_size / side  # (n, 4)
    out = []
    for i, (k, obj) in enumerate(objects):
        a = obj.alignment
        out.append({"image": img[i], "mask": (lab[i, 0] - 2 == k) & (lab[i, 1] > 0), "depth": lab[i, 1],
                    "noc": lab[i, 2:].to(torch.float16), "K": K[i], "box": box_patch[i],
                    "rotation": torch.as_tensor(a.rotation, dtype=torch.float32),
                    "translation": torch.as_tensor(a.translation, dtype=torch.float32),
                    "scale": torch.as_tensor(a.scale, dtype=torch.float32),
                    "classes": torch.tensor(obj.class_id), "folds": torch.tensor(SYMMETRY_FOLDS.get(obj.symmetry, 1))})
    return out


def build_patches(dataset: Sequence, patch_size: int = 128, min_visible_pixels: int = 64,
                  max_views: int = 0, progress: bool = True) -> ObjectPatches:
    """Patches of every usable object of the first max_views views (0: all) of a SceneSample sequence."""
    n = len(dataset) if max_views <= 0 else min(max_views, len(dataset))
    rows: list[dict[str, torch.Tensor]] = []
    for i in tqdm(range(n), desc="object patches", disable=not progress):
        rows += view_patches(dataset[i], patch_size, min_visible_pixels)
    if not rows:
        raise ValueError("build_patches: no usable object in the data set")
    return ObjectPatches(**{name: torch.stack([r[name] for r in rows]) for name in ObjectPatches._fields})


def crop_batch(maps: torch.Tensor, boxes: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """One crop per map: maps (N, C, P, P), boxes (N, 4) in patch pixels -> (N, C, S, S)."""
    grid = crop_grid(boxes.to(maps.dtype), size, maps.shape[-2:])  # (N, S, S, 2)
    return F.grid_sample(maps, grid, mode=mode, padding_mode="zeros", align_corners=False)


def jitter_colours(crops: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and colour balance per crop: (N, 3, S, S) in [0, 1] -> the same."""
    n = crops.shape[0]
    u = torch.rand(n, 3, 1, 1, generator=generator) * 2 - 1  # brightness, contrast, colour
    mean = crops.mean((1, 2, 3), keepdim=True)
    crops = ((crops - mean) * (1 + amount * u[:, 1:2]) + mean * (1 + amount * u[:, :1]))
    return (crops * (1 + 0.5 * amount * torch.rand(n, 3, 1, 1, generator=generator).sub(0.5))).clamp(0, 1)


def sample_crops(patches: ObjectPatches, index: torch.Tensor, *, crop_size: int, generator: torch.Generator,
                 shift: float = 0.1, enlarge: tuple[float, float] = (1.25, 1.55),
                 color_jitter: float = 0.0) -> dict[str, torch.Tensor]:
    """Jittered crops of the objects `index` (N,) -> network inputs and targets.

    Returns crops (N, 3, S, S) in [0, 1], rays (N, 2, S, S), classes (N,), boxes (N, 4) (patch
    pixels), K (N, 3, 3) of the patch, and at R = S / 2: mask (N, R, R), noc (N, R, R, 3),
    depth (N, R, R) relative to the centre in object sizes, out_rays (N, 2, R, R); offset (N, 2),
    depth_ratio (N,), log_scale (N, 3), rotation (N, 3, 3), translation (N, 3), folds (N,);
    up (N, 3) and heading (N,) in the allocentric frame of the crop centre's ray (crop_heading)."""
    r = crop_size // 2
    sel = {name: getattr(patches, name)[index] for name in ObjectPatches._fields}
    boxes = jitter_square_boxes(sel["box"], generator, shift=shift, enlarge=enlarge)  # (N, 4)
    crops = crop_batch(sel["image"].float() / 255.0, boxes, crop_size)  # (N, 3, S, S)
    if color_jitter > 0:
        crops = jitter_colours(crops, color_jitter, generator)
    labels = torch.cat([sel["mask"][:, None].float(), sel["depth"][:, None], sel["noc"].float()], 1)  # (N, 5, P, P)
    lab = crop_batch(labels, boxes, r, mode="nearest")  # (N, 5, R, R)
    mask = (lab[:, 0] > 0.5) & (lab[:, 1] > 0)
    size = sel["scale"].norm(dim=1)  # (N,)
    depth = torch.where(mask, (lab[:, 1] - sel["translation"][:, 2, None, None]) / size[:, None, None],
                        torch.zeros_like(lab[:, 1]))
    offset, ratio = site_targets(sel["translation"], sel["scale"], boxes, sel["K"])
    ray = box_rays(boxes, sel["K"])
    up, heading = heading_targets(sel["rotation"], ray)
    k_crop = crop_intrinsics(sel["K"], boxes, (crop_size, crop_size))
    return {"crops": crops, "rays": crop_rays(k_crop, crop_size), "classes": sel["classes"], "boxes": boxes,
            "K": sel["K"], "mask": mask.float(), "noc": lab[:, 2:].permute(0, 2, 3, 1), "depth": depth,
            "out_rays": output_rays(boxes, sel["K"], r), "offset": offset, "depth_ratio": ratio,
            "log_scale": torch.log(sel["scale"].clamp_min(1e-4)), "scale": sel["scale"],
            "rotation": sel["rotation"], "translation": sel["translation"], "folds": sel["folds"],
            "up": up, "heading": heading}
