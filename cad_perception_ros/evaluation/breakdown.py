"""Where alignments fail: each Scan2CAD criterion on its own, for the objects a model detects.

For every ground-truth object, the same-class prediction (score > threshold) whose 2D box
overlaps it most (IoU >= 0.5) is its detection. Over detected objects: the median translation
(m), symmetry-aware rotation (deg) and scale-ratio errors, the share passing each criterion
alone and all three, and the share whose retrieved CAD model is right (the retrieval-aware
criterion alone: same CAD id, or voxel IoU >= 0.5 with cad_iou). A diagnostic beside the
protocol metrics, not part of them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from cad_perception_ros.evaluation.detection import box_iou
from cad_perception_ros.evaluation.metrics import (
    EvaluationConfig, evaluation_symmetry, is_right_cad, rotation_error_deg, scale_ratio_error, translation_error)
from cad_perception_ros.data.sample import ObjectAnnotation
from cad_perception_ros.types import CadPrediction


class ErrorBreakdown(NamedTuple):
    num_gt: int
    num_detected: int
    median_translation_m: float
    median_rotation_deg: float
    median_scale_ratio: float
    translation_ok: float   # percent of detected objects
    rotation_ok: float
    scale_ok: float
    all_ok: float
    retrieval_ok: float = float("nan")  # percent of detected objects; NaN without a CAD database


def error_breakdown(frames: Iterable[tuple[Sequence[CadPrediction], Sequence[ObjectAnnotation]]], *,
                    config: EvaluationConfig | None = None,
                    symmetry_of: Mapping[str, str] | None = None,
                    cad_iou: Callable[[str, str], float] | None = None) -> ErrorBreakdown:
    """frames: (predictions, ground-truth objects) per image -> ErrorBreakdown.
    cad_iou(pred_cad_id, gt_cad_id): voxel IoU of two CAD models; without it retrieval_ok is NaN."""
    config = config or EvaluationConfig()
    errors, retrieved, num_gt = [], [], 0
    for predictions, objects in frames:
        num_gt += len(objects)
        kept = [p for p in predictions if p.score > config.score_threshold]
        for gt in objects:
            same = [p for p in kept if p.class_id == gt.class_id]
            if not same:
                continue
            iou = box_iou(np.asarray([gt.box_xyxy], np.float64), np.asarray([p.box_xyxy for p in same], np.float64))[0]
            if iou.max() < config.box_iou:
                continue
            pred = same[int(iou.argmax())]
            errors.append((translation_error(pred.alignment.translation, gt.alignment.translation),
                           rotation_error_deg(pred.alignment.rotation, gt.alignment.rotation,
                                              evaluation_symmetry(pred, gt, symmetry_of)),
                           scale_ratio_error(pred.alignment.scale, gt.alignment.scale)))
            if cad_iou is not None:
                retrieved.append(is_right_cad(pred.cad_id, gt.cad_id, cad_iou, config))
    e = np.asarray(errors, np.float64).reshape(-1, 3)
    limits = np.array([config.translation_m, config.rotation_deg, config.scale_ratio])
    ok = e <= limits  # (N, 3)

    def pct(mask: np.ndarray) -> float:
        return 100.0 * float(mask.mean()) if mask.size else float("nan")

    median = np.median(e, 0) if len(e) else np.full(3, np.nan)
    return ErrorBreakdown(num_gt, len(e), *map(float, median), pct(ok[:, 0]), pct(ok[:, 1]), pct(ok[:, 2]),
                          pct(ok.all(1)), pct(np.asarray(retrieved, bool)) if cad_iou is not None else float("nan"))


def format_breakdown(b: ErrorBreakdown) -> str:
    """Markdown table of an ErrorBreakdown."""
    return ("| objects | detected (IoU >= 0.5) | median t err | median R err | median scale err "
            "| t <= 20 cm | R <= 20 deg | scale <= 20 % | all three | right CAD |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
            f"| {b.num_gt} | {b.num_detected} | {b.median_translation_m:.3f} m | {b.median_rotation_deg:.1f} deg "
            f"| {100 * b.median_scale_ratio:.1f} % | {b.translation_ok:.1f} % | {b.rotation_ok:.1f} % "
            f"| {b.scale_ok:.1f} % | {b.all_ok:.1f} % | {b.retrieval_ok:.1f} % |")
