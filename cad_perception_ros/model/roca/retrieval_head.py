"""Geometry-aware retrieval (ROCA Sec. 3.4): joint embedding of predicted NOCs and CAD grids.

  z  = MLP(e) + 3DCNN_noc(Voxelize(q))       Eq. 13 (trilinear splatting into 32^3, clamped to [0, 1])
  z~ = 3DCNN_cad(G)                          Eq. 14 (separate weights)
  triplet loss, margin 0.5                   Eq. 15
  BCE(3DUpCNN(z), G+)                        Eq. 16 (completion proxy; ``completion=False`` drops it)
Both embeddings are L2-normalised and the 3D CNNs use leaky ReLUs: with plain ReLUs and
unnormalised outputs the CAD encoder collapsed to one constant embedding for every CAD after
about 1.5k steps (dead units, triplet loss stuck at exactly the margin), which left retrieval
to ties. On the unit sphere squared distances lie in [0, 4], so the 0.5 margin keeps its scale.
"Chamfer" retrieval (ablation) needs no network: ``chamfer_distances`` in model/roca/decode.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cad_perception_ros.geometry.voxelize import trilinear_voxelize

LEAK = 0.1  # negative slope of the 3D encoders' activations


def _act() -> nn.Module:
    return nn.LeakyReLU(LEAK, inplace=True)


class ResBlock3d(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv3d(channels, channels, 3, padding=1), _act(),
                                  nn.Conv3d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.body(x), LEAK)


class VoxelEncoder(nn.Module):
    """(N, G, G, G) grid in [0, 1] -> (N, D). Three stride-2 convs (G -> G/8), a 3D ResNet basic
    block at G/4 and a linear (ROCA supp. Fig. 9, narrower, one ResBlock for CPU speed)."""

    def __init__(self, *, channels: tuple[int, int, int], embedding_dim: int, grid: int):
        super().__init__()
        c1, c2, c3 = channels
        self.net = nn.Sequential(
            nn.Conv3d(1, c1, 4, 2, 1), _act(),
            nn.Conv3d(c1, c2, 4, 2, 1), _act(), ResBlock3d(c2),
            nn.Conv3d(c2, c3, 4, 2, 1), _act())
        self.fc = nn.Linear(c3 * (grid // 8) ** 3, embedding_dim)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.fc(self.net(grid.unsqueeze(1)).flatten(1))


class VoxelDecoder(nn.Module):
    """(N, D) -> occupancy logits (N, G, G, G) (the 3DUpCNN of Eq. 16)."""

    def __init__(self, *, channels: tuple[int, int, int], embedding_dim: int, grid: int):
        super().__init__()
        c1, c2, c3 = channels
        self.g0, self.c3 = grid // 8, c3
        self.fc = nn.Linear(embedding_dim, c3 * self.g0 ** 3)
        self.net = nn.Sequential(
            nn.ConvTranspose3d(c3, c2, 4, 2, 1), nn.ReLU(inplace=True),
            nn.ConvTranspose3d(c2, c1, 4, 2, 1), nn.ReLU(inplace=True),
            nn.ConvTranspose3d(c1, 1, 4, 2, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc(z)).view(-1, self.c3, self.g0, self.g0, self.g0)
        return self.net(x).squeeze(1)


class RetrievalHead(nn.Module):
    def __init__(self, *, shape_code_dim: int, embedding_dim: int, channels: tuple[int, int, int],
                 grid: int, completion: bool):
        super().__init__()
        self.grid = grid
        self.code_mlp = nn.Sequential(nn.Linear(shape_code_dim, 4 * embedding_dim), nn.ReLU(inplace=True),
                                      nn.Linear(4 * embedding_dim, embedding_dim), nn.ReLU(inplace=True))
        self.noc_encoder = VoxelEncoder(channels=channels, embedding_dim=embedding_dim, grid=grid)
        self.cad_encoder = VoxelEncoder(channels=channels, embedding_dim=embedding_dim, grid=grid)
        self.decoder = VoxelDecoder(channels=channels, embedding_dim=embedding_dim, grid=grid) if completion else None

    def voxelize(self, noc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """noc (N, P, 3), mask (N, P) -> occupancy (N, G, G, G) in [0, 1]."""
        grid = trilinear_voxelize(noc.clamp(-0.5, 0.5), mask, grid=self.grid)
        return grid.clamp(0.0, 1.0)

    def embed_image(self, shape_code: torch.Tensor, noc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Eq. 13: (N, E), (N, P, 3), (N, P) -> unit-norm z (N, D)."""
        return F.normalize(self.code_mlp(shape_code) + self.noc_encoder(self.voxelize(noc, mask)), dim=1)

    def embed_cad(self, grids: torch.Tensor) -> torch.Tensor:
        """Eq. 14: CAD occupancy (N, G, G, G) -> unit-norm (N, D)."""
        return F.normalize(self.cad_encoder(grids.to(torch.float32)), dim=1)

    def complete(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 16 decoder: (N, D) -> logits (N, G, G, G)."""
        if self.decoder is None:
            raise ValueError("completion decoder disabled (completion: false)")
        return self.decoder(z)
