"""Depth head: multi-scale feature fusion (MFF) of the FPN levels + pixel-shuffle up-sampling.

ROCA Sec. 3.2 and supp. B.1: each FPN level is reduced to ``depth_channels`` by an
up-projection block and resized to a quarter of the image resolution; the concatenation is fused into the depth
feature map F^d (used by the alignment head); a pixel-shuffle layer (x4) produces the
full-resolution depth map D. Losses: masked berHu on D and the per-object ROI depth loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class UpProjection(nn.Module):
    """Up-projection of one FPN level: conv 3x3 + ReLU + conv 3x3 with a 1x1 shortcut at the
    level's own resolution (cheap), then bilinear resize to a quarter of the image."""

    def __init__(self, *, cin: int, cout: int):
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(cout, cout, 3, padding=1))
        self.short = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.branch(x) + self.short(x))
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x


class DepthHead(nn.Module):
    """FPN levels [P2..P5] -> (depth (B, 1, H, W) metres, features F^d (B, Cd, H/4, W/4)).

    scale (B, 1, 1, 1), optional: fx / canonical focal (``model/network_base.focal_scale``); the head's output
    is then the depth in the canonical camera and is multiplied by it."""

    def __init__(self, *, fpn_channels: int, depth_channels: int, feature_channels: int,
                 max_depth: float, levels: int = 4):
        super().__init__()
        self.max_depth = max_depth
        self.up = nn.ModuleList(UpProjection(cin=fpn_channels, cout=depth_channels) for _ in range(levels))
        self.fuse = nn.Sequential(
            nn.Conv2d(depth_channels * levels, feature_channels, 1), nn.ReLU(inplace=True),
            nn.Conv2d(feature_channels, feature_channels, 3, padding=1), nn.ReLU(inplace=True))
        self.to_depth = nn.Conv2d(feature_channels, 16, 3, padding=1)  # 16 = 4 x 4 pixel shuffle
        self.shuffle = nn.PixelShuffle(4)
        nn.init.constant_(self.to_depth.bias, 0.0)

    def forward(self, fpn: list[torch.Tensor],
                scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        size = fpn[0].shape[-2:]
        feats = torch.cat([up(p, size) for up, p in zip(self.up, fpn)], 1)  # (B, 4 Cdepth, H/4, W/4)
        fd = self.fuse(feats)  # (B, Cd, H/4, W/4)
        raw = self.shuffle(self.to_depth(fd))  # (B, 1, H, W)
        depth = self.max_depth * torch.sigmoid(raw - 1.5)  # (0, max_depth), starts near 1.8 m
        if scale is not None:
            depth = depth * scale
        return depth, fd
