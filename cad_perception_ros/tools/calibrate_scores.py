"""Fit a model's detection-score calibration on views its detector was not trained on.

  cad-perception calibrate-scores --model-dir DIR --data ROOT [--split val] [--limit 200] [--write]

A CenterNet heatmap peak is not a probability: on data v2 the bundled ROCA detector finds 79 % of
the objects at IoU >= 0.5 with some peak, but only 38 % with a peak >= 0.5, the threshold of the
ROCA protocol and the node. This command runs the model on the views (every detection with a
calibrated score >= --min-score), marks each detection right when it is the highest-scored one
of its class on a not yet covered ground-truth object with IoU >= 0.5 (the AP50 rule of
evaluation/detection.py's DetectionAccumulator), and fits
P(right | peak) = sigmoid(a logit(peak) + b) by logistic regression (Newton steps). It prints
(a, b), the peak that now scores 0.5, a reliability table (predicted against observed share
right per score bin), and the recall of the ground-truth objects by box size (a same-class box
with IoU >= 0.5: at any score, at a peak >= 0.5, at a calibrated score >= 0.5). --write stores (a, b) as model.score_calibration in DIR/config.yaml and its
sha256 in meta.json; without it nothing is written. The order of the scores is kept (a > 0), so
AP is unchanged; what changes is which detections pass a score threshold.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.evaluation.detection import DetectionAccumulator, box_iou
from cad_perception_ros.model.checkpoint import record_sha256
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.runtime.network import load_network


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, required=True, help="model directory (ROCA or Points2Objects)")
    parser.add_argument("--data", type=Path, required=True, help="data root in the Scan2CAD image format (not the training views)")
    parser.add_argument("--split", default="val", help="split (default: val)")
    parser.add_argument("--limit", type=int, default=200, help="first N views (default 200)")
    parser.add_argument("--min-score", type=float, default=0.02, help="detections down to this peak enter the fit (0.02)")
    parser.add_argument("--write", action="store_true", help="store the fit in MODEL_DIR/config.yaml (and its sha256 in meta.json)")


def pooled_peaks(detections: DetectionAccumulator) -> tuple[np.ndarray, np.ndarray]:
    """(peaks (n,), right (n,) 0/1) of every detection the accumulator matched by the AP50 rule
    (in score order, the best uncovered same-class object with IoU >= its threshold), all classes."""
    classes = sorted(detections.scores)
    peaks = np.array([s for c in classes for s in detections.scores[c]], np.float64)
    right = np.array([float(r) for c in classes for r in detections.labels[c]], np.float64)
    return peaks, right


def object_recall(predictions, objects, raw_peaks: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """(m, 3) per ground-truth object: box side (px), whether truncated by the image border (0/1)
    and the highest raw peak among same-class predictions with IoU >= iou (0 if none)."""
    rows = np.zeros((len(objects), 3))
    for j, o in enumerate(objects):
        box = np.asarray(o.box_xyxy, float)
        rows[j, 0] = max(box[2] - box[0], box[3] - box[1])
    if predictions and objects:
        ious = box_iou(np.stack([p.box_xyxy for p in predictions]), np.stack([o.box_xyxy for o in objects]))
        for j, o in enumerate(objects):
            hits = [raw_peaks[i] for i, p in enumerate(predictions)
                    if p.class_id == o.class_id and ious[i, j] >= iou]
            rows[j, 2] = max(hits, default=0.0)
    return rows


def recall_table(rows: np.ndarray, truncated: np.ndarray, half_peak: float) -> str:
    lines = ["| objects | n | any score | peak >= 0.5 | calibrated >= 0.5 |", "|---|---:|---:|---:|---:|"]
    groups = [(f"box side {lo}-{hi} px", (rows[:, 0] >= lo) & (rows[:, 0] < hi))
              for lo, hi in ((0, 40), (40, 80), (80, 160), (160, 320), (320, 100000))]
    groups += [("truncated by the border", truncated), ("not truncated", ~truncated), ("all", np.ones(len(rows), bool))]
    for name, m in groups:
        if m.any():
            best = rows[m, 2]
            lines.append(f"| {name} | {int(m.sum())} | {(best > 0).mean() * 100:.1f} % | {(best >= 0.5).mean() * 100:.1f} % | "
                         f"{(best >= half_peak).mean() * 100:.1f} % |")
    return "\n".join(lines)


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """(a, b) of P(y = 1) = sigmoid(a x + b), maximum likelihood (Newton, a small ridge for stability)."""
    if len(x) == 0 or y.min() == y.max():
        raise ValueError(f"need both right and wrong detections to fit, got {int(y.sum())} right of {len(y)}")
    X = np.stack([x, np.ones_like(x)], 1)
    w = np.array([1.0, 0.0])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(X @ w)))
        grad = X.T @ (p - y) + 1e-6 * w
        hess = (X * (p * (1 - p))[:, None]).T @ X + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def reliability(scores: np.ndarray, right: np.ndarray, edges=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)) -> str:
    lines = ["| score | detections | mean score | share right |", "|---|---:|---:|---:|"]
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (scores >= lo) & (scores < hi) if hi < 1 else (scores >= lo)
        if m.any():
            lines.append(f"| {lo:.1f}-{hi:.1f} | {int(m.sum())} | {scores[m].mean():.2f} | {right[m].mean():.2f} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        net = load_network(args.model_dir)
        aligner = CadAligner.from_model_dir(net, score_threshold=args.min_score)
        dataset = SyntheticDataset(args.data, args.split)
    except (OSError, ValueError) as exc:
        print(f"calibrate-scores: {exc}", file=sys.stderr)
        return 2
    a0, b0 = net.config.score_calibration
    detections, recall, truncated = DetectionAccumulator(iou_threshold=0.5), [], []
    for i in tqdm(range(min(args.limit, len(dataset))), unit="view", desc="calibrate-scores"):
        sample = dataset[i]
        predictions = aligner(sample.image, sample.K)
        # back to the raw peak: the model may already carry a calibration
        peaks = 1 / (1 + np.exp(-(logit(np.array([p.score for p in predictions])) - b0) / a0))
        detections.add_image([p.class_id for p in predictions], peaks,
                             np.array([p.box_xyxy for p in predictions], np.float64).reshape(-1, 4),
                             [o.class_id for o in sample.objects],
                             np.array([o.box_xyxy for o in sample.objects], np.float64).reshape(-1, 4))
        recall.append(object_recall(predictions, sample.objects, peaks))
        h, w = sample.image.shape[:2]
        truncated += [bool(o.box_xyxy[0] <= 1 or o.box_xyxy[1] <= 1 or o.box_xyxy[2] >= w - 2 or o.box_xyxy[3] >= h - 2)
                      for o in sample.objects]
    raw, y = pooled_peaks(detections)
    x = logit(raw)
    try:
        a, b = fit_logistic(x, y)
    except ValueError as exc:
        print(f"calibrate-scores: {exc}", file=sys.stderr)
        return 2
    calibrated = 1 / (1 + np.exp(-(a * x + b)))
    half = 1 / (1 + np.exp(b / a))
    print(f"\n{len(x)} detections (peak >= {args.min_score}) on {min(args.limit, len(dataset))} views, {int(y.sum())} right\n")
    print(f"score_calibration: [{a:.4f}, {b:.4f}]   a calibrated score of 0.5 is a peak of {half:.3f}\n")
    print("before (the heatmap peak):\n")
    print(reliability(raw, y))
    print("\nafter:\n")
    print(reliability(calibrated, y))
    print(f"\ndetections at score >= 0.5: {int((raw >= 0.5).sum())} before ({int(y[raw >= 0.5].sum())} right), "
          f"{int((calibrated >= 0.5).sum())} after ({int(y[calibrated >= 0.5].sum())} right)")
    print("\nrecall of the ground-truth objects (a same-class box with IoU >= 0.5):\n")
    print(recall_table(np.concatenate(recall) if recall else np.zeros((0, 3)), np.array(truncated, bool), half))
    if args.write:
        path = args.model_dir / "config.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["model"]["score_calibration"] = [round(a, 4), round(b, 4)]
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        record_sha256(args.model_dir, ["config.yaml"])
        print(f"wrote model.score_calibration to {path}")
    return 0
