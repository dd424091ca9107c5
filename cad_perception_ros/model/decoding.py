"""What the two methods' decoders share (``model/roca/decode.py``, ``model/points2objects/decode.py``):
raw outputs to CPU tensors, score filtering, the two timed stages (an alignment solve and a CAD
choice), boxes mapped back from the network input to the original image, and the CadPredictions.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from cad_perception_ros.geometry.camera import resize_factors
from cad_perception_ros.types import Alignment9D, CadPrediction, passes_score

Selection = dict[str, torch.Tensor]  # per-detection outputs of the kept detections, first axis n


def to_torch(raw: Mapping[str, Any], required: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Raw outputs (numpy or torch) -> CPU tensors without the batch axis; ValueError naming missing keys."""
    missing = [k for k in required if k not in raw]
    if missing:
        raise ValueError(f"decode: network outputs lack {missing}; got {sorted(raw)}")
    out = {}
    for k, v in raw.items():
        t = torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v.detach().cpu()
        out[k] = t[0] if t.dim() > 0 and t.shape[0] == 1 else t  # drop the batch axis
    return out


def boxes_to_image(boxes: torch.Tensor, input_size: tuple[int, int],
                   image_size: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int]]:
    """Boxes (n, 4) in network-input pixels -> (boxes (n, 4) float64 in the original image,
    its (H, W)); image_size None means the input size."""
    img_h, img_w = image_size if image_size is not None else input_size
    sx, sy = resize_factors(input_size, (img_h, img_w))
    return boxes.double().numpy() * np.array([sx, sy, sx, sy]), (int(img_h), int(img_w))


def calibrated_scores(peaks: torch.Tensor, calibration: tuple[float, float]) -> torch.Tensor:
    """Heatmap peaks (K,) in [0, 1] -> sigmoid(a logit(peak) + b); (1, 0) returns them unchanged."""
    a, b = calibration
    if (a, b) == (1.0, 0.0):
        return peaks
    p = peaks.double().clamp(1e-6, 1 - 1e-6)
    return torch.sigmoid(a * torch.log(p / (1 - p)) + b).to(peaks.dtype)


def decode_detections(out: dict[str, torch.Tensor], config: Any, keys: Sequence[str], *,
                      align: Callable[[Selection], tuple[np.ndarray, np.ndarray]],
                      choose: Callable[[Selection], tuple[np.ndarray, np.ndarray]], cad_ids: Sequence[str],
                      mask: Callable[[Selection, int, np.ndarray, tuple[int, int]], np.ndarray] | None = None,
                      prepare: Callable[[Selection, np.ndarray, tuple[int, int]], None] | None = None,
                      image_size: tuple[int, int] | None = None, score_threshold: float | None = None,
                      timings: dict[str, float] | None = None) -> list[CadPrediction]:
    """Detections of `out` (to_torch's) at or above the score threshold -> CadPredictions.

    keys: the per-detection outputs kept (those present). align(sel) -> rotations (n, 3, 3),
    translations (n, 3) float64 in the camera frame (timed as "procrustes"); choose(sel) -> rows
    (n,) into cad_ids (-1: none) and distances (n,) (timed as "retrieval", milliseconds into
    timings); mask(sel, i, box, (H, W)) -> (H, W) bool, else no mask; prepare(sel, boxes (n, 4) in
    the original image, (H, W)) may replace entries of sel before the solve (timed with it). config: the model section
    (score_threshold, input_size, class_names); scales come from sel["scales"].
    """
    thr = config.score_threshold if score_threshold is None else float(score_threshold)
    scores = calibrated_scores(out["scores"], config.score_calibration)
    keep = torch.nonzero(passes_score(scores, thr)).flatten()
    if keep.numel() == 0:
        return []
    sel = {k: out[k][keep] for k in keys if k in out}
    sel["scores"] = scores[keep]
    boxes, image_hw = boxes_to_image(sel["boxes"], config.input_size, image_size)
    t0 = time.perf_counter()
    if prepare is not None:
        prepare(sel, boxes, image_hw)
    rotation, translation = align(sel)
    t1 = time.perf_counter()
    rows, distances = choose(sel)
    t2 = time.perf_counter()
    if timings is not None:
        timings["procrustes"] = (t1 - t0) * 1e3
        timings["retrieval"] = (t2 - t1) * 1e3
    preds = []
    for i in range(len(keep)):
        cls, row = int(sel["classes"][i]), int(rows[i])
        preds.append(CadPrediction(
            class_id=cls, class_name=config.class_names[cls], score=float(sel["scores"][i]), box_xyxy=boxes[i],
            alignment=Alignment9D(rotation[i], translation[i], sel["scales"][i].double().numpy()),
            cad_id=cad_ids[row] if row >= 0 else "",
            retrieval_distance=float(distances[i]) if row >= 0 else float("nan"),
            mask=mask(sel, i, boxes[i], image_hw) if mask is not None else None))
    return preds
