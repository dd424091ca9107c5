"""Single-stage CenterNet-style detector with ROI instance masks.

Why this replaces ROCA's Mask R-CNN (Sec. 3.2): Mask R-CNN needs a region proposal network,
per-image NMS and ROIAlign over a data-dependent number of boxes. Those give dynamic shapes
(NonZero, NMS, RoiAlign) that export poorly to ONNX and are partly unsupported by TensorRT, and
the two-stage design is slow on a CPU. Here objects are class heatmap peaks at stride 4
(focal loss alpha 2, beta 4, Gaussian targets sized by the box), a 3x3 max-pool replaces NMS,
a FIXED top-K keeps every shape static, and ROI features are cropped with ``grid_sample``
(bilinear ROIAlign) on an m x m grid. The instance mask head runs on those ROI features.
Training uses ground-truth boxes (jittered) as ROIs for the mask and 3D heads.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cad_perception_ros.model import losses as L

STRIDE = 4  # input pixels per cell of the detector's heatmap (the FPN's finest level)


class Detections(NamedTuple):
    """Top-K detections per image: scores (B, K), classes (B, K) int64, boxes (B, K, 4) pixels,
    cells (B, K) int64 flat index y * w + x of each peak in the stride-4 heatmap."""

    scores: torch.Tensor
    classes: torch.Tensor
    boxes: torch.Tensor
    cells: torch.Tensor | None = None


class CenterNetHead(nn.Module):
    """P2 features (B, C, h, w) -> heatmap logits (B, num_classes, h, w), size (B, 2, h, w)
    (box width, height in input pixels / stride), offset (B, 2, h, w) (sub-cell centre).
    One shared 3x3 conv trunk, then a 1x1 conv per output (CPU budget)."""

    def __init__(self, *, in_channels: int, head_channels: int, num_classes: int, stride: int = 4):
        super().__init__()
        self.stride = stride
        self.trunk = nn.Sequential(nn.Conv2d(in_channels, head_channels, 3, padding=1), nn.ReLU(inplace=True))
        self.heatmap = nn.Conv2d(head_channels, num_classes, 1)
        self.size = nn.Conv2d(head_channels, 2, 1)
        self.offset = nn.Conv2d(head_channels, 2, 1)
        nn.init.constant_(self.heatmap.bias, -math.log((1 - 0.1) / 0.1))

    def forward(self, p2: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.trunk(p2)
        return {"heatmap": self.heatmap(x), "size": self.size(x), "offset": self.offset(x)}

    def decode(self, out: dict[str, torch.Tensor], top_k: int, score: str = "class") -> Detections:
        """Peaks by 3x3 max-pool, then a fixed top-K over all classes and cells.

        score "class": each class's heatmap on its own (CenterNet); "any": one objectness map,
        1 - prod_c (1 - p_c) (the chance some class is there), its peaks scored by it and
        labelled with the arg-max class, so an object whose evidence is split between two
        classes is not lost to both."""
        heat = torch.sigmoid(out["heatmap"])  # (B, C, h, w)
        b, c, h, w = heat.shape
        if score == "any":
            objectness = 1 - torch.exp(torch.log1p(-heat.clamp_max(1 - 1e-6)).sum(1, keepdim=True))  # (B, 1, h, w)
            peaks = objectness * (F.max_pool2d(objectness, 3, stride=1, padding=1) == objectness).to(heat.dtype)
            scores, cell = peaks.flatten(1).topk(top_k, dim=1)  # (B, K)
            classes = heat.flatten(2).argmax(1).gather(1, cell)  # (B, K)
        else:
            peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat).to(heat.dtype)
            scores, index = peaks.flatten(1).topk(top_k, dim=1)  # (B, K)
            classes = torch.div(index, h * w, rounding_mode="floor")
            cell = index - classes * (h * w)  # (B, K)
        ys = torch.div(cell, w, rounding_mode="floor")
        xs = cell - ys * w
        size = out["size"].flatten(2).gather(2, cell[:, None].expand(b, 2, top_k))  # (B, 2, K)
        off = out["offset"].flatten(2).gather(2, cell[:, None].expand(b, 2, top_k))  # (B, 2, K)
        cx = (xs.to(heat.dtype) + off[:, 0]) * self.stride
        cy = (ys.to(heat.dtype) + off[:, 1]) * self.stride
        half_w = size[:, 0].clamp_min(0.25) * self.stride / 2
        half_h = size[:, 1].clamp_min(0.25) * self.stride / 2
        boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], -1)  # (B, K, 4)
        return Detections(scores, classes, boxes, cell)


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """boxes (..., 4) xyxy pixels clipped to a (height, width) image, on the boxes' device (ONNX:
    two constant tensors and Min / Max)."""
    lo = boxes.new_zeros(4)
    hi = boxes.new_tensor([width, height, width, height])
    return torch.maximum(torch.minimum(boxes, hi), lo)


def detection_losses(det: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                     class_weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """CenterNet losses: focal heatmap loss (alpha 2, beta 4) and L1 box size / sub-cell offset at
    the ground-truth centres. det: CenterNetHead outputs; batch: ``targets.collate`` tensors
    (heatmap (B, C, h, w), centre (B, M), size / offset (B, M, 2), valid / classes (B, M));
    class_weights (C,). Returns unweighted scalars "heatmap", "box_size", "box_offset"."""
    valid = batch["valid"]  # (B, M)
    inst_w = class_weights[batch["classes"]] * valid  # (B, M)
    b, m = valid.shape
    idx = batch["centre"][:, None].expand(b, 2, m)
    size = det["size"].flatten(2).gather(2, idx).transpose(1, 2)  # (B, M, 2)
    off = det["offset"].flatten(2).gather(2, idx).transpose(1, 2)
    return {
        "heatmap": L.focal_heatmap_loss(det["heatmap"], batch["heatmap"], class_weights),
        "box_size": L.weighted_mean((size - batch["size"]).abs().sum(-1).flatten(), inst_w.flatten()),
        "box_offset": L.weighted_mean((off - batch["offset"]).abs().sum(-1).flatten(), inst_w.flatten()),
    }


class MaskHead(nn.Module):
    """ROI features (N, C, m, m) -> class-agnostic mask logits (N, m, m)."""

    def __init__(self, *, in_channels: int, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, 1, 1))  # 2 convs (Mask R-CNN uses 4) at m x m

    def forward(self, roi_features: torch.Tensor) -> torch.Tensor:
        return self.net(roi_features).squeeze(1)
