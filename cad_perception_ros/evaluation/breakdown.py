"""Where alignments fail: each Scan2CAD criterion on its own, for the objects a model detects.

For every ground-truth object, the same-class prediction (score >= threshold) whose 2D box
overlaps it most (IoU >= 0.5) is its detection. Over detected objects: the median translation
(m), symmetry-aware rotation (deg) and scale-ratio errors, the share passing each criterion
alone and all three, and the share whose retrieved CAD model is right (the retrieval-aware
criterion alone: same CAD id, or voxel IoU >= 0.5 with cad_iou), and the share whose rotation
passes once a half turn about the object's up axis is forgiven (front/back confusions of objects
that are nearly 2-fold symmetric, such as a plain cabinet), and the median tilt: the angle
between the predicted and true up axes (canonical +y), blind to symmetries about that axis, so
a small tilt beside a large rotation error means the heading is what is wrong; and, for the
translation, the median relative depth error |z_pred / z_gt - 1| and the share within 20 cm
once the predicted centre is slid along its viewing ray to the true depth (what is left when
depth is right: direction errors). A diagnostic beside the protocol metrics, not part of them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cad_perception_ros.data.sample import ObjectAnnotation
from cad_perception_ros.evaluation.detection import box_iou
from cad_perception_ros.evaluation.metrics import (
    EvaluationConfig,
    evaluation_symmetry,
    is_right_cad,
    rotation_error_deg,
    scale_ratio_error,
    translation_error,
)
from cad_perception_ros.types import CadPrediction, passes_score


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
    rotation_ok_up_to_flip: float = float("nan")  # percent; a half turn about +y forgiven
    median_depth_error: float = float("nan")  # |z_pred / z_gt - 1|, camera frame
    translation_ok_at_true_depth: float = float("nan")  # percent; centre slid along its ray to z_gt
    median_tilt_deg: float = float("nan")  # angle between predicted and true up axes (canonical +y)


class MatchedErrors(NamedTuple):
    """Per detected object (N of them): errors (N, 3) translation m / rotation deg / scale ratio
    (Scan2CAD's symmetry rule); rotation_up_to_flip (N,) deg, a half turn about +y forgiven;
    symmetry (N,) the ground truth's label; right_cad (N,) bool, None without cad_iou;
    depth_ratio (N,) z_pred / z_gt of the centres; translation_at_true_depth (N,) m, the error of
    the predicted centre scaled along its ray to the true depth; tilt_deg (N,) the angle between
    the predicted and true up axes (canonical +y), camera frame."""
    num_gt: int
    errors: np.ndarray
    rotation_up_to_flip: np.ndarray
    symmetry: tuple[str, ...]
    right_cad: np.ndarray | None
    depth_ratio: np.ndarray | None = None
    translation_at_true_depth: np.ndarray | None = None
    tilt_deg: np.ndarray | None = None


def match_errors(frames: Iterable[tuple[Sequence[CadPrediction], Sequence[ObjectAnnotation]]], *,
                 config: EvaluationConfig | None = None,
                 symmetry_of: Mapping[str, str] | None = None,
                 cad_iou: Callable[[str, str], float] | None = None) -> MatchedErrors:
    """frames: (predictions, ground-truth objects) per image -> the errors of each detected object.
    cad_iou(pred_cad_id, gt_cad_id): voxel IoU of two CAD models; without it right_cad is None."""
    config = config or EvaluationConfig()
    errors, flip, labels, retrieved, ratio, on_ray, tilt, num_gt = [], [], [], [], [], [], [], 0
    for predictions, objects in frames:
        num_gt += len(objects)
        kept = [p for p in predictions if passes_score(p.score, config.score_threshold)]
        for gt in objects:
            same = [p for p in kept if p.class_id == gt.class_id]
            if not same:
                continue
            iou = box_iou(np.asarray([gt.box_xyxy], np.float64), np.asarray([p.box_xyxy for p in same], np.float64))[0]
            if iou.max() < config.box_iou:
                continue
            pred = same[int(iou.argmax())]
            symmetry = evaluation_symmetry(pred, gt, symmetry_of)
            r_pred, r_gt = pred.alignment.rotation, gt.alignment.rotation
            errors.append((translation_error(pred.alignment.translation, gt.alignment.translation),
                           rotation_error_deg(r_pred, r_gt, symmetry),
                           scale_ratio_error(pred.alignment.scale, gt.alignment.scale)))
            flip.append(rotation_error_deg(r_pred, r_gt, "2fold") if symmetry == "none" else errors[-1][1])
            labels.append(gt.symmetry)
            tilt.append(up_axis_angle_deg(r_pred, r_gt))
            t_pred, t_gt = np.asarray(pred.alignment.translation, float), np.asarray(gt.alignment.translation, float)
            z_pred = max(float(t_pred[2]), 1e-6)  # a centre behind the camera counts as at the lens
            ratio.append(z_pred / float(t_gt[2]))
            on_ray.append(translation_error(t_pred * (float(t_gt[2]) / z_pred), t_gt))
            if cad_iou is not None:
                retrieved.append(is_right_cad(pred.cad_id, gt.cad_id, cad_iou, config))
    return MatchedErrors(num_gt, np.asarray(errors, np.float64).reshape(-1, 3), np.asarray(flip, np.float64),
                         tuple(labels), np.asarray(retrieved, bool) if cad_iou is not None else None,
                         np.asarray(ratio, np.float64), np.asarray(on_ray, np.float64), np.asarray(tilt, np.float64))


def up_axis_angle_deg(r_pred: np.ndarray, r_gt: np.ndarray) -> float:
    """Angle (deg) between the canonical up axes (+y, second column) of two (3, 3) rotations."""
    a, b = np.asarray(r_pred, np.float64)[:, 1], np.asarray(r_gt, np.float64)[:, 1]
    cos = float(a @ b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def summarise(matched: MatchedErrors, config: EvaluationConfig | None = None) -> ErrorBreakdown:
    """Medians and pass rates of MatchedErrors."""
    config = config or EvaluationConfig()
    e = matched.errors
    limits = np.array([config.translation_m, config.rotation_deg, config.scale_ratio])
    ok = e <= limits  # (N, 3)

    def pct(mask: np.ndarray) -> float:
        return 100.0 * float(mask.mean()) if mask.size else float("nan")

    median = np.median(e, 0) if len(e) else np.full(3, np.nan)
    right_cad = pct(matched.right_cad) if matched.right_cad is not None else float("nan")
    ratio, on_ray = matched.depth_ratio, matched.translation_at_true_depth
    depth_err = float(np.median(np.abs(ratio - 1))) if ratio is not None and ratio.size else float("nan")
    on_ray_ok = pct(on_ray <= config.translation_m) if on_ray is not None else float("nan")
    tilt = matched.tilt_deg
    median_tilt = float(np.median(tilt)) if tilt is not None and tilt.size else float("nan")
    return ErrorBreakdown(matched.num_gt, len(e), *map(float, median), pct(ok[:, 0]), pct(ok[:, 1]), pct(ok[:, 2]),
                          pct(ok.all(1)), right_cad, pct(matched.rotation_up_to_flip <= config.rotation_deg),
                          depth_err, on_ray_ok, median_tilt)


def error_breakdown(frames: Iterable[tuple[Sequence[CadPrediction], Sequence[ObjectAnnotation]]], *,
                    config: EvaluationConfig | None = None,
                    symmetry_of: Mapping[str, str] | None = None,
                    cad_iou: Callable[[str, str], float] | None = None) -> ErrorBreakdown:
    """frames: (predictions, ground-truth objects) per image -> ErrorBreakdown (match_errors + summarise)."""
    return summarise(match_errors(frames, config=config, symmetry_of=symmetry_of, cad_iou=cad_iou), config)


def plot_rotation_errors(matched: MatchedErrors, path: str | Path, title: str = "") -> Path:
    """PNG histogram of the rotation errors of detected objects: the Scan2CAD error of objects
    labelled asymmetric ("none") and of symmetric ones, and the asymmetric ones' error once a
    half turn is forgiven. Two peaks, near 0 and near 180 deg, mean front/back confusions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    none = np.asarray([s == "none" for s in matched.symmetry], bool)
    rot = matched.errors[:, 1]
    bins = np.arange(0, 181, 10)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.hist([rot[none], rot[~none]], bins=bins, stacked=True, label=[
        f"labelled asymmetric (n={int(none.sum())})", f"labelled symmetric (n={int((~none).sum())})"],
        color=["#d62728", "#1f77b4"], alpha=0.8)
    ax.hist(matched.rotation_up_to_flip[none], bins=bins, histtype="step", color="black", linewidth=1.5,
            label="asymmetric, half turn forgiven")
    ax.axvline(20, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("rotation error (deg)")
    ax.set_ylabel("detected objects")
    ax.set_xticks(range(0, 181, 20))
    ax.set_title(title or "Rotation error of detected objects")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_breakdown(b: ErrorBreakdown) -> str:
    """Markdown table of an ErrorBreakdown."""
    return ("| objects | detected (IoU >= 0.5) | median t err | median R err | median scale err "
            "| t <= 20 cm | R <= 20 deg | scale <= 20 % | all three | right CAD | R <= 20 deg up to a half turn "
            "| median tilt (up axis) | median depth err | t <= 20 cm at true depth |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
            f"| {b.num_gt} | {b.num_detected} | {b.median_translation_m:.3f} m | {b.median_rotation_deg:.1f} deg "
            f"| {100 * b.median_scale_ratio:.1f} % | {b.translation_ok:.1f} % | {b.rotation_ok:.1f} % "
            f"| {b.scale_ok:.1f} % | {b.all_ok:.1f} % | {b.retrieval_ok:.1f} % | {b.rotation_ok_up_to_flip:.1f} % "
            f"| {b.median_tilt_deg:.1f} deg | {100 * b.median_depth_error:.1f} % "
            f"| {b.translation_ok_at_true_depth:.1f} % |")
