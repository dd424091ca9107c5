"""CropClassifier: the class of a zoom-in crop, background included (ROCA v2's detection rescoring).

The detector sees the image at 160x120. On data v2 it puts a box on most objects (78 % at some
peak), but splits each one's score over several class maps, so only a third reach a peak of 0.5.
This network classifies each candidate again from a crop of the full-resolution image, and the
candidate's score becomes a logistic fusion of its peak and the crop's probability of its class
(``fused_scores``); candidates of any class that overlap a better one are then dropped (``rescore``).

  inputs   crops (N, 3, S, S) RGB in [0, 1]: square_boxes(box, enlarge) resampled from the
           full-resolution image (crop_sampling.crop_maps); log_side (N,) = log(box side px / 100)
  outputs  logits (N, C + 1): the classes of class_names, then background

Encoder: MobileNetV2 features.0-13 (the crop network's, stride 16), then a 1x1 conv, average and
max pooled, and a two-layer head.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cad_perception_ros.geometry.boxes import box_iou
from cad_perception_ros.model.backbone import IMAGE_MEAN, IMAGE_STD
from cad_perception_ros.model.mobilenet import MobileNetV2
from cad_perception_ros.model.roca.crop_network import ENCODER_LAYERS, TAPS
from cad_perception_ros.types import SCAN2CAD_CLASSES


@dataclass(frozen=True)
class ClassifierConfig:
    """candidate_score: detections down to this peak are classified (at most max_candidates, the
    highest peaks). fusion (a, b, c, d): score = sigmoid(a logit(peak) + b log p(class) + c log
    p(background) + d), fitted on held-out views after training. nms_iou: after rescoring, a box
    whose IoU with a better-scored box of any class reaches it is dropped (0 or 1: none dropped)."""

    class_names: tuple[str, ...] = SCAN2CAD_CLASSES
    crop_size: int = 64
    enlarge: float = 1.4
    hidden_dim: int = 128
    max_crops: int = 16   # static batch of the exported graph (padded)
    candidate_score: float = 0.1
    max_candidates: int = 32
    nms_iou: float = 0.7
    fusion: tuple[float, float, float, float] = (1.0, 1.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.crop_size % 16 or self.crop_size < 32:
            raise ValueError(f"crop_size must be a multiple of 16 and >= 32, got {self.crop_size}")
        if not 0.0 < self.candidate_score < 1.0:
            raise ValueError(f"candidate_score must be in (0, 1), got {self.candidate_score}")
        if len(self.fusion) != 4:
            raise ValueError(f"fusion must have 4 numbers (a, b, c, d), got {self.fusion}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class CropClassifier(nn.Module):
    def __init__(self, *, config: ClassifierConfig, load_pretrained: bool = False):
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)
        body = MobileNetV2()
        if load_pretrained:
            body.load_imagenet()
        self.encoder = nn.Sequential(*list(body.features.children())[:ENCODER_LAYERS])
        h = config.hidden_dim
        self.reduce = nn.Sequential(nn.Conv2d(TAPS[13], h, 1, bias=False), nn.GroupNorm(8, h), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Linear(2 * h + 1, h), nn.ReLU(inplace=True), nn.Dropout(0.2),
                                  nn.Linear(h, config.num_classes + 1))

    def forward(self, crops: torch.Tensor, log_side: torch.Tensor) -> torch.Tensor:
        """crops (N, 3, S, S), log_side (N,) -> logits (N, C + 1) (module docstring)."""
        x = self.reduce(self.encoder((crops - self.mean) / self.std))  # (N, h, S/16, S/16)
        pooled = torch.cat([x.mean((2, 3)), x.amax((2, 3)), log_side.view(-1, 1).to(x.dtype)], 1)  # (N, 2h + 1)
        return self.head(pooled)


def box_log_side(boxes: np.ndarray | torch.Tensor) -> torch.Tensor:
    """boxes (N, 4) xyxy pixels -> (N,) float32 log(max(w, h) / 100)."""
    b = torch.as_tensor(np.asarray(boxes, dtype=np.float32))
    return torch.log((b[:, 2:] - b[:, :2]).amax(1).clamp_min(1.0) / 100.0)


def logit(p: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    return np.log(p / (1 - p))


def fusion_features(peaks: np.ndarray, classes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(n,) peaks, (n,) claimed classes, (n, C + 1) crop probabilities -> (n, 3):
    logit(peak), log p(claimed class), log p(background)."""
    n = len(peaks)
    p = np.clip(np.asarray(probs, np.float64), 1e-4, 1.0)
    return np.stack([logit(peaks), np.log(p[np.arange(n), np.asarray(classes, int)]), np.log(p[:, -1])], 1)


def fused_scores(peaks: np.ndarray, classes: np.ndarray, probs: np.ndarray, fusion) -> np.ndarray:
    """The rescored candidates (n,) in (0, 1): sigmoid(features . (a, b, c) + d)."""
    a, b, c, d = fusion
    z = fusion_features(peaks, classes, probs) @ np.array([a, b, c], np.float64) + d
    return 1.0 / (1.0 + np.exp(-z))


def fit_fusion(peaks: np.ndarray, classes: np.ndarray, probs: np.ndarray, right: np.ndarray,
               l2: float = 1.0, steps: int = 100) -> tuple[float, float, float, float]:
    """Logistic regression of right (n,) 0/1 on fusion_features (damped Newton steps, each at most
    1 long, an L2 penalty so that separable data stays finite) -> (a, b, c, d)."""
    x = np.concatenate([fusion_features(peaks, classes, probs), np.ones((len(peaks), 1))], 1)  # (n, 4)
    y = np.asarray(right, np.float64)
    w = np.array([1.0, 1.0, 0.0, 0.0])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(4)
        step = np.linalg.solve(hess, grad)
        step /= max(1.0, float(np.linalg.norm(step)))
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return tuple(float(v) for v in w)


def suppress_overlaps(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept, best score first: greedy non-maximum suppression over every class."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    if not 0.0 < iou < 1.0 or len(order) < 2:
        return order
    overlaps = box_iou(boxes, boxes)
    kept: list[int] = []
    for i in order:
        if all(overlaps[i, j] < iou for j in kept):
            kept.append(int(i))
    return np.array(kept, dtype=int)


def softmax(logits: torch.Tensor) -> np.ndarray:
    return F.softmax(logits.double(), dim=1).numpy()


def export_classifier_onnx(model: CropClassifier, path: str | Path) -> Path:
    """Write the static-shape graph (crops (M, 3, S, S), log_side (M,) -> logits (M, C + 1),
    M = max_crops; Conv, GroupNorm, ReduceMean / ReduceMax, Gemm: all in TensorRT's parser)."""
    c = model.config
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = (torch.rand(c.max_crops, 3, c.crop_size, c.crop_size), torch.zeros(c.max_crops))
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(model.eval(), args, str(tmp), input_names=["crops", "log_side"], output_names=["logits"],
                      opset_version=17, dynamo=False)
    tmp.replace(path)
    return path
