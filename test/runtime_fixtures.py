"""Test-only placeholder network with the export contract of model/roca/network.py (not shipped)."""
from __future__ import annotations

import torch
from torch import nn


class TinyExportNet(nn.Module):
    """forward_export(image (1, 3, H, W), K (1, 3, 3)) -> dict of static-shape tensors."""

    def __init__(self, top_k: int = 4, embedding_dim: int = 8):
        super().__init__()
        self.top_k = top_k
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.heatmap = nn.Conv2d(8, 3, 1)
        self.head = nn.Linear(8 + 4, top_k * (4 + 3 + embedding_dim))
        self.embedding_dim = embedding_dim

    def forward_export(self, image: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.features(image)  # (1, 8, H/4, W/4)
        heat = torch.sigmoid(self.heatmap(feats))  # (1, 3, H/4, W/4)
        pooled = feats.mean(dim=(2, 3))  # (1, 8)
        intr = torch.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], 1) / 1000.0  # (1, 4)
        out = self.head(torch.cat([pooled, intr], 1)).view(1, self.top_k, -1)  # (1, k, 4+3+D)
        return {"heatmap": heat, "boxes": torch.sigmoid(out[..., :4]), "translation": out[..., 4:7],
                "embedding": out[..., 7:]}
