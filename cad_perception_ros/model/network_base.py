"""What RocaNet and P2ONet share besides the backbone (model/backbone.py) and the detector
(model/detector.py): one ``forward`` for training batches and exported images, and the depth scale
of the model's canonical camera (ModelConfig.depth_focal_normalised)."""
from __future__ import annotations

import torch
from torch import nn

from cad_perception_ros.geometry.camera import canonical_depth_scale
from cad_perception_ros.model.config import ModelConfig


class TrainOrExport(nn.Module):
    """A network with ``forward_train(batch, **options)`` and ``forward_export(image, K)``."""

    def forward(self, inputs, K: torch.Tensor | None = None, **train_options) -> dict[str, torch.Tensor]:
        """A batch dict -> forward_train (what DistributedDataParallel calls); (image, K) -> forward_export."""
        if isinstance(inputs, dict):
            return self.forward_train(inputs, **train_options)
        return self.forward_export(inputs, K)


def focal_scale(K: torch.Tensor, config: ModelConfig) -> torch.Tensor | None:
    """K (B, 3, 3) of the network input -> (B, 1, 1, 1) fx / (depth_canonical_focal x input width),
    or None when config.depth_focal_normalised is off (depth read as metric directly).

    An object of metric size S at depth Z spans f S / Z pixels, so the image fixes Z / f; the
    depth a canonical camera would see is Z f_c / f, and the metric depth is that times f / f_c."""
    if not config.depth_focal_normalised:
        return None
    return canonical_depth_scale(K, config.depth_canonical_focal, config.input_size[1])
