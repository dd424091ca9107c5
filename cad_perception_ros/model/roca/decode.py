"""Decode the network's static-shape outputs into CadPredictions (shared by every backend).

The exported graph (``RocaNet.forward_export``) stops before the 3x3 SVD and before the
nearest-neighbour search; ``decode`` finishes the job on the CPU: score filtering, weighted
Procrustes + refined translation (ROCA Eqs. 7-11, the same torch code as training), CAD
retrieval (``EmbeddingIndex`` or, for the ablation, Chamfer distance from predicted NOCs to CAD
point samples), and boxes / masks mapped back from the network input to the original image.
With a registered sensor depth map, each object's points take the sensor z where it is valid
(the predicted depth fills the holes) for the initial translation, the Procrustes solve and the
refined translation; the NOCs stay the network's.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cad_perception_ros.cad.retrieval import (
    ChamferIndex,
    EmbeddingIndex,
    RetrievalResult,
)
from cad_perception_ros.geometry.sensor_depth import fuse_depth
from cad_perception_ros.model.config import RocaConfig
from cad_perception_ros.model.decoding import decode_detections, to_torch
from cad_perception_ros.model.roca import alignment_ops as ops
from cad_perception_ros.model.roca.alignment_head import solve_alignment
from cad_perception_ros.types import CadPrediction

REQUIRED = ("scores", "classes", "boxes", "masks", "points", "nocs", "weights", "scales",
            "translations_init", "embeddings")


def decode(raw: Mapping[str, Any], config: RocaConfig, *, index: EmbeddingIndex | ChamferIndex | None = None,
           image_size: tuple[int, int] | None = None, score_threshold: float | None = None,
           timings: dict[str, float] | None = None, class_constrained: bool = True,
           depth: np.ndarray | None = None) -> list[CadPrediction]:
    """Raw outputs of one image (numpy or torch, batch axis 1) -> predictions in the original image.

    image_size: (H, W) of the original image (default: the network input size); camera-frame
    points do not depend on the resize. score_threshold defaults to config.score_threshold. timings
    gets "procrustes" and "retrieval" in milliseconds. Retrieval searches each detection's class unless
    class_constrained is False. depth: (H, W) float metres registered to the original image,
    0 = hole (``geometry.sensor_depth.clean_depth``); None = the predicted depth alone.
    """
    def choose(sel):
        retrieved = _retrieve(sel, config, index, class_constrained)
        if retrieved is None:
            return np.full(len(sel["scores"]), -1), np.full(len(sel["scores"]), np.nan)
        return retrieved.indices, retrieved.distances

    def mask(sel, i, box, image_hw):
        return paste_mask(sel["masks"][i].numpy() > config.retrieval_mask_threshold, box, image_hw)

    def with_sensor_depth(sel, boxes, image_hw):
        if tuple(depth.shape) != image_hw:
            raise ValueError(f"decode: depth is {depth.shape[1]}x{depth.shape[0]}, the image {image_hw[1]}x{image_hw[0]}")
        sel["points"], sel["translations_init"] = sensor_points(sel, config, depth, boxes)

    return decode_detections(to_torch(raw, REQUIRED), config, (*REQUIRED, "rotations_raw"),
                             align=lambda sel: _alignment(sel, config), choose=choose, mask=mask,
                             prepare=with_sensor_depth if depth is not None else None,
                             cad_ids=index.cad_ids if index is not None else [], image_size=image_size,
                             score_threshold=score_threshold, timings=timings)


def sensor_points(sel: dict[str, torch.Tensor], config: RocaConfig, depth: np.ndarray,
                  boxes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept detections' ROI points with the sensor's z -> (points (n, P, 3), t_init (n, 3)) float64.

    depth (H, W) metres of the original image, 0 = hole, sampled (nearest) at the ROI cell
    centres of boxes (n, 4) in original-image pixels. A sensor point lies on the predicted
    point's ray (same pixel, same K): p * z_sensor / z_pred. t_init moves by the change of the
    masked mean (Eq. 3); the network's learned offset is kept."""
    m = config.roi_size
    depth_t = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float64))[None, None]  # (1, 1, H, W)
    sensor = ops.roi_crop(depth_t, torch.from_numpy(boxes)[None], m, depth.shape, mode="nearest")[0, :, 0]
    points = sel["points"].double()  # (n, P, 3)
    fg = (sel["masks"].flatten(1) > config.alignment_mask_threshold).double()  # (n, P), the network's mask
    z_pred = points[..., 2].clamp_min(1e-6)  # (n, P)
    z = fuse_depth(z_pred, sensor.flatten(1), fg)  # (n, P)
    fused = points * (z / z_pred)[..., None]
    t_init = sel["translations_init"].double() + ops.masked_mean(fused, fg) - ops.masked_mean(points, fg)
    return fused, t_init


def _alignment(sel: dict[str, torch.Tensor], config: RocaConfig) -> tuple[np.ndarray, np.ndarray]:
    """Weighted Procrustes on the kept detections -> rotations (n, 3, 3), translations (n, 3) float64."""
    weights = sel["weights"].double()  # (n, P), zero off the mask
    few = (weights > 0).sum(1) < 3
    weights = torch.where(few[:, None], sel["masks"].flatten(1).double() + 1e-3, weights)
    raw_rot = sel["rotations_raw"].double() if config.ablation.rotation_mode == "direct" else None
    rot, trans = solve_alignment(sel["nocs"].double(), sel["points"].double(), weights,
                                 sel["scales"].double(), sel["translations_init"].double(), raw_rot)
    return rot.numpy(), trans.numpy()


def _retrieve(sel, config: RocaConfig, index, class_constrained: bool) -> RetrievalResult | None:
    if index is None or len(index.cad_ids) == 0:
        return None
    classes = sel["classes"].numpy() if class_constrained else None
    if isinstance(index, ChamferIndex):
        fg = sel["masks"].flatten(1) > config.retrieval_mask_threshold  # (n, P)
        nocs = [sel["nocs"][i][fg[i]].numpy() for i in range(len(fg))]
        return index.query_points(nocs, classes)
    return index.query(sel["embeddings"].numpy(), classes)


def paste_mask(roi_mask: np.ndarray, box: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """roi_mask (m, m) bool over box (4,) -> (H, W) bool image mask (nearest ROI cell per pixel)."""
    height, width = image_size
    m = roi_mask.shape[0]
    out = np.zeros((height, width), dtype=bool)
    x0, y0, x1, y1 = box
    c0, c1 = int(np.clip(np.floor(x0), 0, width)), int(np.clip(np.ceil(x1), 0, width))
    r0, r1 = int(np.clip(np.floor(y0), 0, height)), int(np.clip(np.ceil(y1), 0, height))
    if c1 <= c0 or r1 <= r0:
        return out
    cols = np.floor((np.arange(c0, c1) + 0.5 - x0) / max(x1 - x0, 1e-6) * m).astype(int)
    rows = np.floor((np.arange(r0, r1) + 0.5 - y0) / max(y1 - y0, 1e-6) * m).astype(int)
    inside_c, inside_r = (cols >= 0) & (cols < m), (rows >= 0) & (rows < m)
    patch = roi_mask[np.clip(rows, 0, m - 1)][:, np.clip(cols, 0, m - 1)]
    out[r0:r1, c0:c1] = patch & inside_r[:, None] & inside_c[None, :]
    return out
