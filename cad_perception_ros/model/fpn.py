"""Pieces every backbone shares: the ImageNet normalisation constants and the FPN top-down pathway."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_MEAN = (0.485, 0.456, 0.406)



IMAGE_STD = (0.229, 0.224, 0.225)



def fpn_top_down(feats: list[torch.Tensor], lateral: nn.ModuleList, smooth: nn.ModuleList) -> list[torch.Tensor]:
    """FPN merge: bottom-up maps [C2 .. C5] (B, c_i, H/s_i, W/s_i), coarsest last -> [P2 .. P5]
    (B, C, H/s_i, W/s_i): lateral 1x1, nearest 2x upsampling of the coarser sum, 3x3 smoothing."""
    top = lateral[-1](feats[-1])
    outs = [smooth[-1](top)]
    for i in range(len(feats) - 2, -1, -1):
        lat = lateral[i](feats[i])  # (B, C, h_i, w_i)
        top = lat + F.interpolate(top, size=lat.shape[-2:], mode="nearest")
        outs.insert(0, smooth[i](top))
    return outs
