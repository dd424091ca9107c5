"""Scan2CAD alignment accuracy (ROCA / Vid2CAD variant), retrieval-aware accuracy and AP50.

A predicted alignment is correct for a ground-truth object when the classes agree and
  translation error |t_pred - t_gt|_2 <= 0.2 m,
  rotation error (Scan2CAD symmetry-aware, degrees) <= 20,
  scale ratio error |mean(s_pred / s_gt) - 1| <= 0.2
(cangumeli/ROCA roca/utils/alignment_errors.py and roca/evaluation/vid2cad_evaluation.py).
The retrieval-aware variant also needs the right CAD model: by default ROCA's exact match (same
CAD model); with retrieval_match = "surface-iou" a SURFACE-voxel IoU >= 0.5 of the two models'
32^3 grids instead (ROCA's optional grid test). "__SYM_ROTATE_UP_INF" is scored as ROCA scores
it: the minimum over 36 sampled rotations about up (10-degree steps), not the exact minimum,
which is up to 5 degrees lower and would flip some objects across 20 degrees. Per evaluated unit (an image
here, a scene in `scene.py`): predictions with score >= score_threshold, sorted by score, are
capped per class at the number of ground-truth objects of that class, then each is matched to
the first uncovered ground truth of its class it aligns with; a ground truth counts once.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from cad_perception_ros.data.sample import ObjectAnnotation
from cad_perception_ros.evaluation.bootstrap import bootstrap_alignment
from cad_perception_ros.evaluation.detection import DetectionAccumulator
from cad_perception_ros.geometry.rotations import symmetric_rotation_error
from cad_perception_ros.types import (
    BENCHMARK_CLASSES,
    SCAN2CAD_CLASSES,
    SCORE_THRESHOLD,
    Alignment9D,
    CadPrediction,
    passes_score,
)


@dataclass(frozen=True)
class EvaluationConfig:
    """Thresholds of the Scan2CAD criteria and of ROCA's evaluation protocol."""

    translation_m: float = 0.2          # TRANS_THRESH
    rotation_deg: float = 20.0          # ROT_THRESH
    scale_ratio: float = 0.2            # SCALE_THRESH
    score_threshold: float = SCORE_THRESHOLD  # scores >= 0.5 count for the alignment metrics
    box_iou: float = 0.5                # AP50
    retrieval_voxel_iou: float = 0.5    # VOXEL_IOU_THRESH, with retrieval_match "surface-iou" only
    retrieval_match: str = "exact"      # "exact" (ROCA's default) or "surface-iou"
    inf_symmetry_steps: int = 36        # ROCA samples 36 rotations for __SYM_ROTATE_UP_INF
    nms_translation_m: float = 0.4      # per-scene duplicate removal (NMS_TRANS)
    nms_rotation_deg: float = 60.0      # NMS_ROT
    nms_scale_ratio: float = 0.6        # NMS_SCALE


def translation_error(t_pred: np.ndarray, t_gt: np.ndarray) -> float:
    """Euclidean distance (metres) between translations (3,)."""
    return float(np.linalg.norm(np.asarray(t_pred, np.float64) - np.asarray(t_gt, np.float64)))


def scale_ratio_error(s_pred: np.ndarray, s_gt: np.ndarray) -> float:
    """Scan2CAD / ROCA scale error |mean(s_pred / s_gt) - 1| for scales (3,)."""
    return float(abs(np.mean(np.asarray(s_pred, np.float64) / np.asarray(s_gt, np.float64)) - 1.0))


def rotation_error_deg(r_pred: np.ndarray, r_gt: np.ndarray, symmetry: str = "none",
                       inf_steps: int | None = EvaluationConfig.inf_symmetry_steps) -> float:
    """Symmetry-aware rotation error in degrees between rotations (3, 3) (see geometry.rotations);
    "inf" as ROCA evaluates it: the minimum over inf_steps (36) sampled rotations about up."""
    err = symmetric_rotation_error(torch.as_tensor(np.asarray(r_pred, np.float64)),
                                   torch.as_tensor(np.asarray(r_gt, np.float64)), symmetry, inf_steps)
    return float(err)


def is_aligned(pred: Alignment9D, gt: Alignment9D, symmetry: str, config: EvaluationConfig) -> bool:
    """All three Scan2CAD alignment criteria hold (thresholds inclusive, as in ROCA)."""
    return (translation_error(pred.translation, gt.translation) <= config.translation_m
            and rotation_error_deg(pred.rotation, gt.rotation, symmetry,
                                   config.inf_symmetry_steps) <= config.rotation_deg
            and scale_ratio_error(pred.scale, gt.scale) <= config.scale_ratio)


def is_right_cad(pred_cad: str, gt_cad: str, cad_iou: Callable[[str, str], float] | None,
                 config: EvaluationConfig) -> bool:
    """ROCA's retrieval criterion: the exact CAD model (retrieval_match "exact", the default), or
    with "surface-iou" a voxel IoU >= retrieval_voxel_iou by cad_iou (surface-voxel IoU of two ids)."""
    if pred_cad == gt_cad:
        return True
    if config.retrieval_match == "exact":
        return False
    if config.retrieval_match != "surface-iou":
        raise ValueError(f"retrieval_match must be 'exact' or 'surface-iou', got {config.retrieval_match!r}")
    return cad_iou is not None and cad_iou(pred_cad, gt_cad) >= config.retrieval_voxel_iou


def evaluation_symmetry(pred: CadPrediction, gt: ObjectAnnotation,
                        symmetry_of: Mapping[str, str] | None) -> str:
    """ROCA's rule: the symmetry of the predicted CAD if it equals the ground truth's, else none.

    Without a `symmetry_of` table (cad_id -> symmetry) the ground-truth symmetry is used.
    """
    if symmetry_of is None:
        return gt.symmetry
    return gt.symmetry if symmetry_of.get(pred.cad_id, "none") == gt.symmetry else "none"


def cap_predictions(predictions: Sequence[CadPrediction], gt_counts: Mapping[int, int],
                    score_threshold: float) -> list[CadPrediction]:
    """Score-filter, sort by descending score and keep at most gt_counts[class] per class."""
    kept, used = [], {}
    ranked = sorted((p for p in predictions if passes_score(p.score, score_threshold)), key=lambda p: -p.score)
    for pred in ranked:
        if used.get(pred.class_id, 0) < gt_counts.get(pred.class_id, 0):
            used[pred.class_id] = used.get(pred.class_id, 0) + 1
            kept.append(pred)
    return kept


def count_correct(predictions: Sequence[CadPrediction], objects: Sequence[ObjectAnnotation],
                  config: EvaluationConfig, symmetry_of: Mapping[str, str] | None = None,
                  retrieval_match: Callable[[str, str], bool] | None = None) -> dict[int, int]:
    """Greedy ROCA matching of already capped, score-sorted predictions -> correct count per class.

    retrieval_match(pred_cad_id, gt_cad_id) adds the retrieval criterion when given.
    """
    covered = [False] * len(objects)
    correct: dict[int, int] = {}
    for pred in predictions:
        for j, gt in enumerate(objects):
            if covered[j] or gt.class_id != pred.class_id:
                continue
            if retrieval_match is not None and not retrieval_match(pred.cad_id, gt.cad_id):
                continue
            if is_aligned(pred.alignment, gt.alignment, evaluation_symmetry(pred, gt, symmetry_of), config):
                covered[j] = True
                correct[pred.class_id] = correct.get(pred.class_id, 0) + 1
                break
    return correct


@dataclass(frozen=True)
class ClassMetrics:
    """One class: ground-truth count, correct alignments (plain and retrieval-aware), AP50 (%)."""

    name: str
    num_gt: int
    aligned: int
    retrieval_aligned: int
    ap50: float  # percent, NaN without ground truth

    @property
    def alignment_accuracy(self) -> float:
        return 100.0 * self.aligned / self.num_gt if self.num_gt else float("nan")

    @property
    def retrieval_accuracy(self) -> float:
        return 100.0 * self.retrieval_aligned / self.num_gt if self.num_gt else float("nan")


@dataclass(frozen=True)
class EvaluationResults:
    """Per-class metrics plus averages; accuracies and AP in percent.

    Class averages are means over classes with ground truth; instance averages pool all objects
    (for AP50: all classes' ranked detections pooled, ROCA's "gAP").
    """

    protocol: str  # "image" or "scene"
    classes: tuple[ClassMetrics, ...]
    ap50_instance: float
    num_units: int  # images or scenes evaluated
    config: EvaluationConfig = field(default_factory=EvaluationConfig)
    ground_truth: str = "the evaluated frames' annotations"  # which ground truth the figures used
    # (U, 2, C) per unit and class: [ground-truth objects, correct alignments]; for the interval
    unit_counts: np.ndarray | None = field(default=None, repr=False, compare=False)

    def _present(self) -> list[ClassMetrics]:
        return [c for c in self.classes if c.num_gt > 0]

    def class_average(self, metric: str) -> float:
        """Mean over classes with ground truth of 'alignment_accuracy', 'retrieval_accuracy' or 'ap50'."""
        values = [getattr(c, metric) for c in self._present()]
        return float(np.mean(values)) if values else float("nan")

    def benchmark_average(self, metric: str) -> float:
        """ROCA's "benchmark" class average: as class_average over BENCHMARK_CLASSES (no bed)."""
        values = [getattr(c, metric) for c in self._present() if c.name in BENCHMARK_CLASSES]
        return float(np.mean(values)) if values else float("nan")

    def instance_benchmark_average(self, metric: str) -> float:
        """ROCA's "instance (benchmark)": pooled over the objects of BENCHMARK_CLASSES (no bed)."""
        if metric == "ap50":
            return float("nan")
        attr = {"alignment_accuracy": "aligned", "retrieval_accuracy": "retrieval_aligned"}[metric]
        kept = [c for c in self.classes if c.name in BENCHMARK_CLASSES]
        total = sum(c.num_gt for c in kept)
        return 100.0 * sum(getattr(c, attr) for c in kept) / total if total else float("nan")

    def instance_average(self, metric: str) -> float:
        """Pooled over all objects: 'alignment_accuracy', 'retrieval_accuracy' or 'ap50'."""
        if metric == "ap50":
            return self.ap50_instance
        total = sum(c.num_gt for c in self.classes)
        attr = {"alignment_accuracy": "aligned", "retrieval_accuracy": "retrieval_aligned"}[metric]
        return 100.0 * sum(getattr(c, attr) for c in self.classes) / total if total else float("nan")

    @functools.cached_property
    def alignment_interval(self) -> dict[str, tuple[float, float]] | None:
        """95 % bootstrap interval of the class and instance alignment accuracy over the units
        (evaluation/bootstrap.py); None without per-unit counts. Computed once: the table, the
        JSON report and ablate all read it."""
        if self.unit_counts is None or len(self.unit_counts) == 0:
            return None
        return bootstrap_alignment(self.unit_counts)

    def to_dict(self) -> dict:
        """Plain JSON-ready mapping (NaN becomes None)."""
        def num(x: float) -> float | None:
            return None if x is None or math.isnan(x) else round(float(x), 4)
        metrics = ("alignment_accuracy", "retrieval_accuracy", "ap50")
        return {
            "protocol": self.protocol, "num_units": self.num_units, "ground_truth": self.ground_truth,
            "config": {k: getattr(self.config, k) for k in self.config.__dataclass_fields__},
            "classes": [{"name": c.name, "num_gt": c.num_gt, "aligned": c.aligned,
                         "retrieval_aligned": c.retrieval_aligned,
                         **{m: num(getattr(c, m)) for m in metrics}} for c in self.classes],
            "class_average": {m: num(self.class_average(m)) for m in metrics},
            "instance_average": {m: num(self.instance_average(m)) for m in metrics},
            "benchmark_average_8_classes": {m: num(self.benchmark_average(m)) for m in metrics},
            "instance_benchmark_average_8_classes": {m: num(self.instance_benchmark_average(m)) for m in metrics[:2]},
            **({"alignment_accuracy_95_interval": {k: [num(v) for v in pair] for k, pair in interval.items()}}
               if (interval := self.alignment_interval) is not None else {}),
        }


class AlignmentAccumulator:
    """Adds evaluation units (an image or a scene) and builds EvaluationResults."""

    def __init__(self, *, config: EvaluationConfig | None = None,
                 class_names: Sequence[str] = SCAN2CAD_CLASSES,
                 symmetry_of: Mapping[str, str] | None = None,
                 cad_iou: Callable[[str, str], float] | None = None) -> None:
        self.config = config or EvaluationConfig()
        self.class_names = tuple(class_names)
        self.symmetry_of = symmetry_of
        self.cad_iou = cad_iou
        self.num_gt: dict[int, int] = {}
        self.aligned: dict[int, int] = {}
        self.retrieval_aligned: dict[int, int] = {}
        self.detections = DetectionAccumulator(iou_threshold=self.config.box_iou)
        self.num_units = 0
        self.unit_counts: list[np.ndarray] = []  # (2, C) per unit: ground truth, correct alignments

    def retrieval_match(self, pred_cad: str, gt_cad: str) -> bool:
        return is_right_cad(pred_cad, gt_cad, self.cad_iou, self.config)

    def add_alignments(self, predictions: Sequence[CadPrediction], objects: Sequence[ObjectAnnotation]) -> None:
        """Score-filter, cap, match and count one unit (frames of predictions and GT must agree)."""
        for obj in objects:
            if not 0 <= obj.class_id < len(self.class_names):
                raise ValueError(f"ground-truth class_id {obj.class_id} outside 0..{len(self.class_names) - 1}")
        counts: dict[int, int] = {}
        for obj in objects:
            counts[obj.class_id] = counts.get(obj.class_id, 0) + 1
        kept = cap_predictions(predictions, counts, self.config.score_threshold)
        unit = np.zeros((2, len(self.class_names)), dtype=np.int64)
        for target, matcher in ((self.aligned, None), (self.retrieval_aligned, self.retrieval_match)):
            for cls, n in count_correct(kept, objects, self.config, self.symmetry_of, matcher).items():
                target[cls] = target.get(cls, 0) + n
                if matcher is None:
                    unit[1, cls] = n
        for cls, n in counts.items():
            self.num_gt[cls] = self.num_gt.get(cls, 0) + n
            unit[0, cls] = n
        self.unit_counts.append(unit)
        self.num_units += 1

    def add_detections(self, predictions: Sequence[CadPrediction], objects: Sequence[ObjectAnnotation]) -> None:
        """Add one image's 2D boxes (all scores) to the AP computation."""
        self.detections.add_image([p.class_id for p in predictions], [p.score for p in predictions],
                                  np.array([p.box_xyxy for p in predictions], np.float64).reshape(-1, 4),
                                  [o.class_id for o in objects],
                                  np.array([o.box_xyxy for o in objects], np.float64).reshape(-1, 4))

    def results(self, protocol: str) -> EvaluationResults:
        per_class_ap, pooled_ap = self.detections.ap()
        classes = tuple(ClassMetrics(name=name, num_gt=self.num_gt.get(i, 0), aligned=self.aligned.get(i, 0),
                                     retrieval_aligned=self.retrieval_aligned.get(i, 0),
                                     ap50=100.0 * per_class_ap.get(i, float("nan")))
                        for i, name in enumerate(self.class_names))
        units = np.stack(self.unit_counts) if self.unit_counts else np.zeros((0, 2, len(self.class_names)), np.int64)
        return EvaluationResults(protocol=protocol, classes=classes, ap50_instance=100.0 * pooled_ap,
                                 num_units=self.num_units, config=self.config, unit_counts=units)


def evaluate_images(frames: Iterable[tuple[Sequence[CadPrediction], Sequence[ObjectAnnotation]]], *,
                    config: EvaluationConfig | None = None, class_names: Sequence[str] = SCAN2CAD_CLASSES,
                    symmetry_of: Mapping[str, str] | None = None,
                    cad_iou: Callable[[str, str], float] | None = None) -> EvaluationResults:
    """Per-image protocol: each (predictions, ground truth) pair, both in that camera's frame."""
    acc = AlignmentAccumulator(config=config, class_names=class_names, symmetry_of=symmetry_of, cad_iou=cad_iou)
    for predictions, objects in frames:
        acc.add_alignments(predictions, objects)
        acc.add_detections(predictions, objects)
    return acc.results("image")


def format_markdown(results: EvaluationResults) -> str:
    """Markdown table: rows = classes, class average, instance average; values in percent."""
    def cell(x: float) -> str:
        return "-" if x is None or math.isnan(x) else f"{x:.1f}"
    unit = "scenes" if results.protocol == "scene" else "images"
    lines = [f"Protocol: per-{results.protocol} ({results.num_units} {unit}); alignment: t <= "
             f"{results.config.translation_m * 100:g} cm, R <= {results.config.rotation_deg:g} deg, "
             f"scale <= {results.config.scale_ratio * 100:g} %; retrieval: {results.config.retrieval_match}; "
             f"ground truth: {results.ground_truth}", "",
             "| class | GT | alignment acc. (%) | retrieval-aware acc. (%) | AP50 (%) |",
             "|---|---:|---:|---:|---:|"]
    for c in results.classes:
        lines.append(f"| {c.name} | {c.num_gt} | {cell(c.alignment_accuracy)} | "
                     f"{cell(c.retrieval_accuracy)} | {cell(c.ap50)} |")
    total = sum(c.num_gt for c in results.classes)
    bench = sum(c.num_gt for c in results.classes if c.name in BENCHMARK_CLASSES)
    for label, fn, n in (("class avg", results.class_average, total), ("instance avg", results.instance_average, total),
                         ("benchmark avg (8, no bed)", results.benchmark_average, bench),
                         ("instance benchmark avg (8, no bed)", results.instance_benchmark_average, bench)):
        lines.append(f"| **{label}** | {n} | {cell(fn('alignment_accuracy'))} | "
                     f"{cell(fn('retrieval_accuracy'))} | {cell(fn('ap50'))} |")
    interval = results.alignment_interval
    if interval is not None:
        low, high = interval["class_average"]
        i_low, i_high = interval["instance_average"]
        lines += ["", f"Alignment accuracy, 95 % bootstrap interval over the {results.num_units} {unit}: "
                      f"class avg {low:.1f}-{high:.1f} %, instance avg {i_low:.1f}-{i_high:.1f} %"]
    return "\n".join(lines) + "\n"
