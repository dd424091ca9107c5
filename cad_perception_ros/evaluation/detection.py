"""2D detection AP at a box IoU threshold, COCO-style 101-point interpolation.

Boxes are (x_min, y_min, x_max, y_max) in pixels of the evaluated image. Matching follows COCO:
predictions of one class in one image, by descending score, take the unmatched ground-truth box
of the same class with the highest IoU if that IoU >= the threshold.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cad_perception_ros.geometry.boxes import box_iou  # noqa: F401  (re-exported: evaluation's callers import it here)


def average_precision(scores: Sequence[float], labels: Sequence[bool], num_positives: int) -> float:
    """AP in [0, 1] from ranked detections (score, is true positive) and the number of GT objects.

    101-point interpolated precision (COCO): mean over recall r in {0, 0.01, ..., 1} of the best
    precision at recall >= r (0 when that recall is never reached). NaN when num_positives == 0.
    """
    if num_positives <= 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    tp = np.asarray(labels, dtype=np.float64)[order]
    tp_cum, fp_cum = np.cumsum(tp), np.cumsum(1.0 - tp)
    recall = tp_cum / num_positives
    precision = tp_cum / np.maximum(tp_cum + fp_cum, 1e-12)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    thresholds = np.linspace(0.0, 1.0, 101)
    idx = np.searchsorted(recall, thresholds, side="left")
    sampled = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(sampled.mean())


@dataclass
class DetectionAccumulator:
    """Collects per-class ranked detections over images; `ap()` gives per-class and pooled AP."""

    iou_threshold: float = 0.5
    scores: dict[int, list[float]] = field(default_factory=dict)
    labels: dict[int, list[bool]] = field(default_factory=dict)
    num_positives: dict[int, int] = field(default_factory=dict)

    def add_image(self, pred_classes: Sequence[int], pred_scores: Sequence[float],
                  pred_boxes: np.ndarray, gt_classes: Sequence[int], gt_boxes: np.ndarray) -> None:
        """Match one image's predictions (P,), (P,), (P, 4) to its ground truth (G,), (G, 4)."""
        pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
        gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        if len(pred_classes) != len(pred_boxes) or len(pred_scores) != len(pred_boxes):
            raise ValueError("pred_classes, pred_scores and pred_boxes must have the same length")
        if len(gt_classes) != len(gt_boxes):
            raise ValueError("gt_classes and gt_boxes must have the same length")
        for c in gt_classes:
            self.num_positives[int(c)] = self.num_positives.get(int(c), 0) + 1
        ious = box_iou(pred_boxes, gt_boxes)  # (P, G)
        gt_classes_arr = np.asarray(gt_classes, dtype=np.int64)
        covered = np.zeros(len(gt_boxes), dtype=bool)
        for i in np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable"):
            cls = int(pred_classes[i])
            candidates = np.where((gt_classes_arr == cls) & ~covered & (ious[i] >= self.iou_threshold))[0]
            matched = len(candidates) > 0
            if matched:
                covered[candidates[np.argmax(ious[i, candidates])]] = True
            self.scores.setdefault(cls, []).append(float(pred_scores[i]))
            self.labels.setdefault(cls, []).append(matched)

    def ap(self) -> tuple[dict[int, float], float]:
        """(per-class AP for classes with ground truth, AP of all classes pooled), in [0, 1]."""
        per_class = {c: average_precision(self.scores.get(c, []), self.labels.get(c, []), n)
                     for c, n in self.num_positives.items() if n > 0}
        pooled_scores = [s for c in self.scores for s in self.scores[c]]
        pooled_labels = [lab for c in self.labels for lab in self.labels[c]]
        pooled = average_precision(pooled_scores, pooled_labels, sum(self.num_positives.values()))
        return per_class, pooled
