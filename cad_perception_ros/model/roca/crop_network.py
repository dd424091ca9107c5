"""CropNet: the zoom-in crop network (second stage of ROCA v2).

Per crop (N crops, S = crop_size, R = S / 2, B = noc_bins, C = classes):

  inputs   crops (N, 3, S, S) RGB in [0, 1] cut from the full-resolution image
           (crop_sampling.crop_maps), rays (N, 2, S, S) = (x/z, y/z) of each crop pixel through
           the crop's K (crop_sampling.crop_rays), classes (N,) int64 of the detections.
  outputs  mask_logits (N, R, R); noc_logits (N, 3, B, R, R) (bins over [-0.5, 0.5] per axis);
           weight_logits (N, R, R) (Procrustes weights, ROCA Eq. 7); depth (N, R, R) = depth
           relative to the object centre in object sizes, (z - t_z) / |s|; log_scale (N, 3);
           offset (N, 2) = (projected centre - crop centre) / crop side; depth_ratio (N,) =
           log(t_z side / (fx |s|)) (scale-invariant depth from the zoom ratio, GDR-Net's SITE);
           up (N, 3) allocentric up vector (unnormalised), heading_logits (N, Y) allocentric
           heading bins (crop_heading), both from the flattened bottleneck, so the layout of
           the parts (where the doors and the screen are) reaches them.

Encoder: MobileNetV2 features.0-13 (strides 2, 4, 8, 16), decoder: U-Net style up-sampling to
stride 2 with skips; the class and the rays enter at the bottleneck and at the output resolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cad_perception_ros.model.backbone import IMAGE_MEAN, IMAGE_STD
from cad_perception_ros.model.mobilenet import MobileNetV2
from cad_perception_ros.model.roca.crop_config import CropConfig

ENCODER_LAYERS = 14             # features.0 .. features.13
TAPS = {1: 16, 3: 24, 6: 32, 13: 96}   # features index -> channels (strides 2, 4, 8, 16)
CROP_OUTPUTS = ("mask_logits", "noc_logits", "weight_logits", "depth", "log_scale", "offset", "depth_ratio", "up",
                "heading_logits")


def conv_block(cin: int, cout: int, convs: int = 1) -> nn.Sequential:
    """(3x3 conv -> GroupNorm -> ReLU) x convs. (N, cin, h, w) -> (N, cout, h, w)."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False), nn.GroupNorm(8, cout),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class CropNet(nn.Module):
    def __init__(self, *, config: CropConfig, load_pretrained: bool = False):
        super().__init__()
        c = config
        self.config = c
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)
        body = MobileNetV2()
        if load_pretrained and c.pretrained:
            body.load_imagenet()
        self.encoder = nn.Sequential(*list(body.features.children())[:ENCODER_LAYERS])
        d, k = c.decoder_channels, c.num_classes
        self.class_embed = nn.Embedding(k, TAPS[13])
        self.bottleneck = conv_block(TAPS[13] + 4, 2 * d, convs=2)  # + ray of the crop centre, log size
        self.up8 = conv_block(2 * d + TAPS[6], 2 * d)
        self.up4 = conv_block(2 * d + TAPS[3], d)
        self.up2 = conv_block(d + TAPS[1] + 2, d // 2)  # + rays at the output resolution
        self.dense = nn.Conv2d(d // 2, 3 + 3 * c.noc_bins, 1)  # mask, weight, depth, NOC bins
        self.glob = nn.Sequential(nn.Linear(2 * d + TAPS[13] + 4, c.hidden_dim), nn.ReLU(inplace=True),
                                  nn.Linear(c.hidden_dim, c.hidden_dim), nn.ReLU(inplace=True))
        self.to_scale = nn.Linear(c.hidden_dim, 3 * k)
        self.to_offset = nn.Linear(c.hidden_dim, 2)
        self.to_depth_ratio = nn.Linear(c.hidden_dim, k)
        cells = (c.crop_size // 16) ** 2
        self.pose = nn.Sequential(nn.Linear(2 * d * cells + c.hidden_dim, c.hidden_dim), nn.ReLU(inplace=True))
        self.to_up = nn.Linear(c.hidden_dim, 3)
        self.to_heading = nn.Linear(c.hidden_dim, c.heading_bins)
        nn.init.zeros_(self.to_up.weight)
        with torch.no_grad():
            self.to_up.bias.copy_(torch.tensor([0.0, -1.0, 0.0]))  # camera y points down
        nn.init.zeros_(self.to_offset.weight)
        nn.init.zeros_(self.to_offset.bias)
        nn.init.zeros_(self.to_depth_ratio.weight)
        nn.init.constant_(self.to_depth_ratio.bias, 0.3)  # log(1.4): an object fills ~1 / enlarge of its crop

    @classmethod
    def from_config(cls, config: CropConfig, *, load_pretrained: bool = False) -> "CropNet":
        return cls(config=config, load_pretrained=load_pretrained)

    def forward(self, crops: torch.Tensor, rays: torch.Tensor, classes: torch.Tensor,
                dense: bool = True) -> dict[str, torch.Tensor]:
        """crops (N, 3, S, S), rays (N, 2, S, S), classes (N,) -> dict of CROP_OUTPUTS (module docstring);
        dense False: only the global outputs (log_scale, offset, depth_ratio, up, heading_logits),
        the decoder is skipped (CropConfig.needs_dense)."""
        c = self.config
        n, r, nb = crops.shape[0], c.output_size, c.noc_bins
        x = (crops - self.mean) / self.std  # (N, 3, S, S)
        skips = {}
        for i, layer in enumerate(self.encoder):
            x = layer(x)
            if i in TAPS:
                skips[i] = x
        centre_ray = rays.mean((2, 3))  # (N, 2) direction of the crop centre
        log_size = torch.log((rays[:, :, 0, -1] - rays[:, :, 0, 0]).abs().sum(1, keepdim=True).clamp_min(1e-6))  # (N, 1)
        extra = torch.cat([centre_ray, log_size, torch.ones_like(log_size)], 1)  # (N, 4)
        e = skips[13] + self.class_embed(classes)[:, :, None, None]  # (N, 96, S/16, S/16)
        h = self.bottleneck(torch.cat([e, extra[:, :, None, None].expand(-1, -1, *e.shape[-2:])], 1))  # (N, 2d, S/16)
        glob = self.glob(torch.cat([h.mean((2, 3)), e.mean((2, 3)), extra], 1))  # (N, hidden)
        pose = self.pose(torch.cat([h.flatten(1), glob], 1))  # (N, hidden)
        idx = classes.long()
        scale = self.to_scale(glob).view(n, -1, 3).gather(1, idx.view(n, 1, 1).expand(n, 1, 3)).squeeze(1)  # (N, 3)
        ratio = self.to_depth_ratio(glob).gather(1, idx.view(n, 1)).squeeze(1)  # (N,)
        out = {"log_scale": scale, "offset": self.to_offset(glob), "depth_ratio": ratio, "up": self.to_up(pose),
               "heading_logits": self.to_heading(pose)}
        if not dense:
            return out
        h = self.up8(torch.cat([F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False), skips[6]], 1))
        h = self.up4(torch.cat([F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False), skips[3]], 1))
        rays_r = F.avg_pool2d(rays, 2)  # (N, 2, R, R)
        h = self.up2(torch.cat([F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False), skips[1],
                                rays_r], 1))  # (N, d, R, R)
        maps = self.dense(h)  # (N, 3 + 3B, R, R)
        return {"mask_logits": maps[:, 0], "weight_logits": maps[:, 1], "depth": maps[:, 2],
                "noc_logits": maps[:, 3:].reshape(n, 3, nb, r, r), **out}
