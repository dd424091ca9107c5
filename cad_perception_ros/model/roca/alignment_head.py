"""Alignment head (ROCA Sec. 3.3): shape code, scale, initial translation, NOCs, Procrustes weights.

Per ROI (N = batch x detections, P = m x m pixels):
  e      = MLP(MaskedMaxPool(mask * PixelMLP(f^d)))                       Eq. 1
  s      = per-class MLP(e)                                               Eq. 2
  t_init = masked mean of the back-projected object depths p + MLP([e, max p - min p])
           (the paper uses the mid-range 0.5 (max p + min p); the mean is less sensitive to
           stray depth pixels at the mask border)                         Eqs. 3-4
  q      = PixelMLP([p - t_init, s, e])                                   Eq. 5
  c      = sigmoid(PixelMLP([e, s, m_k, q_k, p~_k]))                      Eq. 7
The weighted Procrustes solve (Eqs. 8-11) is in ``solve_alignment`` (training and postprocess).
"""
from __future__ import annotations

import torch
from torch import nn

from cad_perception_ros.geometry.procrustes import roca_procrustes
from cad_perception_ros.geometry.rotations import svd_orthogonalize
from cad_perception_ros.model.roca import alignment_ops as ops


def pixel_mlp(cin: int, hidden: int, cout: int, layers: int = 2) -> nn.Sequential:
    """Per-pixel MLP on channels-last (N, P, C) tensors (matmuls: faster than 1x1 convs on CPU)."""
    mods: list[nn.Module] = []
    c = cin
    for _ in range(layers - 1):
        mods += [nn.Linear(c, hidden), nn.ReLU(inplace=True)]
        c = hidden
    mods.append(nn.Linear(c, cout))
    return nn.Sequential(*mods)


class AlignmentHead(nn.Module):
    def __init__(self, *, feature_channels: int, shape_code_dim: int, hidden_dim: int,
                 num_classes: int, dropout: float, rotation_mode: str, learned_weights: bool):
        super().__init__()
        self.num_classes = num_classes
        self.rotation_mode = rotation_mode
        self.learned_weights = learned_weights
        e, h = shape_code_dim, hidden_dim
        self.pixel = nn.Sequential(pixel_mlp(feature_channels, h, h), nn.ReLU(inplace=True))
        self.code = nn.Sequential(nn.Linear(h, h), nn.ReLU(inplace=True), nn.Linear(h, e),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.scale = nn.Sequential(nn.Linear(e, h), nn.ReLU(inplace=True), nn.Linear(h, 3 * num_classes))
        self.offset = nn.Sequential(nn.Linear(e + 3, h), nn.ReLU(inplace=True), nn.Linear(h, 3 * num_classes))
        self.noc = pixel_mlp(3 + 3 + e, h, 3, layers=3)
        if learned_weights:
            self.weight = pixel_mlp(e + 3 + 1 + 3 + 3, h, 1, layers=2)
        if rotation_mode == "direct":
            self.rotation = nn.Sequential(nn.Linear(e, h), nn.ReLU(inplace=True), nn.Linear(h, 9 * num_classes))
        nn.init.constant_(self.scale[-1].bias, 0.5)

    def forward(self, features: torch.Tensor, points: torch.Tensor, mask: torch.Tensor,
                mask_prob: torch.Tensor, classes: torch.Tensor) -> dict[str, torch.Tensor]:
        """features (N, Cd, m, m); points (N, P, 3) camera frame; mask (N, P) binary object
        pixels; mask_prob (N, P); classes (N,) -> dict of per-ROI predictions."""
        n, p = features.shape[0], points.shape[1]
        pix = self.pixel(features.flatten(2).transpose(1, 2))  # (N, P, H)
        code = self.code(ops.masked_max_pool(pix.transpose(1, 2), mask))  # (N, E)
        scale = ops.select_per_class(self.scale(code), classes, 3)  # (N, 3)
        hi, lo = ops.masked_extent(points, mask)  # (N, 3) each
        offset = ops.select_per_class(self.offset(torch.cat([code, hi - lo], 1)), classes, 3)
        t_init = ops.masked_mean(points, mask) + offset  # (N, 3)
        centred = points - t_init[:, None]  # p~ = p - t_init, (N, P, 3)
        code_px = code[:, None].expand(n, p, code.shape[1])  # (N, P, E)
        scale_px = scale[:, None].expand(n, p, 3)  # (N, P, 3)
        noc_in = torch.cat([centred, scale_px, code_px], 2)  # (N, P, 6 + E)
        noc = self.noc(noc_in)  # (N, P, 3)
        if self.learned_weights:
            w_in = torch.cat([code_px, scale_px, mask_prob[..., None], noc, centred], 2)  # (N, P, E + 10)
            weights = torch.sigmoid(self.weight(w_in).squeeze(-1)) * mask  # (N, P)
        else:
            weights = mask_prob * mask
        out = {"shape_code": code, "scale": scale, "translation_init": t_init, "noc": noc,
               "weights": weights, "extent_max": hi, "extent_min": lo}
        if self.rotation_mode == "direct":
            out["rotation_raw"] = ops.select_per_class(self.rotation(code), classes, 9).view(n, 3, 3)
        return out


def solve_alignment(noc: torch.Tensor, points: torch.Tensor, weights: torch.Tensor,
                    scale: torch.Tensor, t_init: torch.Tensor,
                    rotation_raw: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation and refined translation (ROCA Eqs. 7-11), differentiable.

    noc (N, P, 3) canonical; points p (N, P, 3) camera frame; weights (N, P) >= 0;
    scale, t_init (N, 3). The rotation fits q * s to p - t_init, both centred on their weighted
    means (insensitive to errors of t_init; ROCA's code fits about the origin); t = t_init +
    mu_c(p~) - R mu_c(q~) (Eq. 11). With rotation_raw (N, 3, 3) (direct baseline) the rotation is
    its SVD orthogonalisation and t = t_init. Returns (N, 3, 3), (N, 3).
    """
    if rotation_raw is not None:
        return svd_orthogonalize(rotation_raw), t_init
    fit = roca_procrustes(noc, scale, points, t_init, weights, zero_center=True)
    return fit.rotation, fit.translation
