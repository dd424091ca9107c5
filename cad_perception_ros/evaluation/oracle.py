"""Where ROCA's alignment errors come from: its NOCs, its depth, or both.

On ground-truth boxes and masks (no detection errors), each object's rotation and translation are
solved four ways, by the model's weighted Procrustes (Eqs. 8-11) from
  - predicted NOCs (with the model's scale, weights and initial translation) or ground-truth NOCs
    (with the ground-truth scale, uniform weights, the mask's mean point as t_init), against
  - the back-projected predicted depth or the ground-truth depth.
Ground-truth NOCs on ground-truth depth must recover the pose (the check of the wiring); the
other rows say how much each input costs. Beside them, the predicted depth inside each object:
the error of its mean (|mean z_pred / mean z_gt - 1|) and how well its shape follows the truth
(the correlation of the two depth maps about their means, and the slope of pred on truth).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cad_perception_ros.data.transforms import resize_sample
from cad_perception_ros.evaluation.metrics import rotation_error_deg, translation_error
from cad_perception_ros.model.network_base import focal_scale
from cad_perception_ros.model.roca import alignment_ops as ops
from cad_perception_ros.model.roca.alignment_head import solve_alignment

NOC_SOURCES = ("predicted", "ground truth")
DEPTH_SOURCES = ("predicted", "ground truth")
MIN_SHAPE_PIXELS = 10  # depth-shape statistics need this many object pixels in the ROI


@dataclass(frozen=True)
class OracleRow:
    nocs: str
    depth: str
    count: int
    rotation_ok: float      # % within rotation_deg (symmetry-aware)
    translation_ok: float   # % within translation_m
    median_rotation_deg: float
    median_translation_m: float


@dataclass(frozen=True)
class OracleReport:
    rows: list[OracleRow]
    objects: int
    median_depth_error: float     # |mean z_pred / mean z_gt - 1| over each object's pixels
    median_shape_correlation: float
    median_shape_slope: float


class OracleAccumulator:
    """Feed ``add(net, sample)`` per view (a SceneSample at any size), then ``report()``."""

    def __init__(self, *, rotation_deg: float = 20.0, translation_m: float = 0.2) -> None:
        self.rotation_deg, self.translation_m = rotation_deg, translation_m
        self.errors: dict[tuple[str, str], list[tuple[float, float]]] = {
            (n, d): [] for n in NOC_SOURCES for d in DEPTH_SOURCES}
        self.depth_stats: list[tuple[float, float, float]] = []

    @torch.no_grad()
    def add(self, net, sample) -> None:
        """net: a RocaNet in eval mode; sample: SceneSample with depth, instance map and NOCs whose
        class ids are the model's (see evaluate.objects_in_model_classes)."""
        rois = _object_rois(net, sample)
        if rois is None:
            return
        for (n, d), (rot, trans) in _solves(net, rois).items():
            for k, obj in enumerate(rois["objects"]):
                if rois["usable"][k]:
                    self.errors[(n, d)].append(
                        (rotation_error_deg(rot[k].numpy(), obj.alignment.rotation, obj.symmetry),
                         translation_error(trans[k].numpy(), obj.alignment.translation)))
        self.depth_stats += _depth_shape(rois["pred_z"], rois["gt_z"], rois["mask"])

    def report(self) -> OracleReport:
        rows = []
        for (n, d), errs in self.errors.items():
            e = np.asarray(errs, np.float64).reshape(-1, 2)  # (objects, [R deg, t m])
            rows.append(OracleRow(n, d, len(e), _percent(e[:, 0] <= self.rotation_deg),
                                  _percent(e[:, 1] <= self.translation_m), _median(e[:, 0]), _median(e[:, 1])))
        s = np.asarray(self.depth_stats, np.float64).reshape(-1, 3)  # (objects, [error, corr, slope])
        return OracleReport(rows, len(s), _median(s[:, 0]), _median(s[:, 1]), _median(s[:, 2]))


def _percent(ok: np.ndarray) -> float:
    return float(100 * ok.mean()) if ok.size else 0.0


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else float("nan")


def _object_rois(net, sample) -> dict | None:
    """The sample at the model's input size -> ROI tensors of its visible objects (None if none)."""
    c = net.config
    if sample.size != tuple(c.input_size):
        sample = resize_sample(sample, tuple(c.input_size))
    chosen = [(k, o) for k, o in enumerate(sample.objects)
              if o.visible_pixels > 0 and 0 <= o.class_id < c.num_classes]
    if not chosen:
        return None
    image = torch.from_numpy(np.array(sample.image)).permute(2, 0, 1)[None].float() / 255
    K = torch.from_numpy(sample.K.astype(np.float32))[None]
    boxes = torch.tensor(np.stack([o.box_xyxy for _, o in chosen]), dtype=torch.float32)[None]  # (1, M, 4)
    fpn = net.backbone(image)
    depth, fd = net.depth(fpn, focal_scale(K, c))
    roi_p2, roi_fd, roi_depth = net._rois(fpn, fd, depth, boxes)
    m, size = c.roi_size, c.input_size

    def crop(array):  # (H, W) or (H, W, C) -> (M, C, m, m), nearest pixel
        t = torch.from_numpy(np.array(array, dtype=np.float32))
        t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
        return ops.roi_crop(t, boxes, m, size, mode="nearest")[0]

    gt_depth = crop(sample.depth)[:, 0]  # (M, m, m)
    instance = crop(sample.instance_map.astype(np.float32) + 2)[:, 0] - 2
    ids = torch.tensor([k for k, _ in chosen], dtype=torch.float32)[:, None, None]
    mask = ((instance == ids) & (gt_depth > 0)).flatten(1).float()  # (M, P)
    pred_z = roi_depth[0].flatten(1)
    return {"objects": [o for _, o in chosen], "mask": mask, "usable": (mask.sum(1) >= 3).tolist(),
            "fd": roi_fd[0], "prob": torch.sigmoid(net.mask_head(roi_p2[0])).flatten(1),
            "classes": torch.tensor([o.class_id for _, o in chosen]),
            "points": {"predicted": ops.roi_backproject(roi_depth, boxes, K)[0],
                       "ground truth": ops.roi_backproject(gt_depth[None], boxes, K)[0]},
            "noc": crop(sample.noc).flatten(2).transpose(1, 2),  # (M, P, 3)
            "scale": torch.tensor(np.stack([o.alignment.scale for _, o in chosen]), dtype=torch.float32),
            "pred_z": pred_z, "gt_z": gt_depth.flatten(1)}


def _solves(net, rois) -> dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]]:
    """(nocs source, depth source) -> (rotations (M, 3, 3), translations (M, 3))."""
    mask = rois["mask"]
    out = {}
    for d, points in rois["points"].items():
        a = net.alignment(rois["fd"], points, mask, rois["prob"], rois["classes"])
        out[("predicted", d)] = solve_alignment(a["noc"], points, a["weights"] + 1e-6, a["scale"],
                                                a["translation_init"])
        out[("ground truth", d)] = solve_alignment(rois["noc"], points, mask + 1e-6, rois["scale"],
                                                   ops.masked_mean(points, mask))
    return out


def _depth_shape(pred_z: torch.Tensor, gt_z: torch.Tensor, mask: torch.Tensor) -> list[tuple[float, float, float]]:
    """Per object with >= MIN_SHAPE_PIXELS pixels: (|mean ratio - 1|, correlation, slope) of the
    predicted depth against the truth inside the mask. pred_z, gt_z, mask: (M, P)."""
    stats = []
    for p, g, w in zip(pred_z.double(), gt_z.double(), mask.bool()):
        if int(w.sum()) < MIN_SHAPE_PIXELS:
            continue
        p, g = p[w], g[w]
        dp, dg = p - p.mean(), g - g.mean()
        denom = float(dp.norm() * dg.norm())
        stats.append((abs(float(p.mean() / g.mean()) - 1.0),
                      float((dp * dg).sum()) / denom if denom > 0 else 0.0,
                      float((dp * dg).sum() / (dg * dg).sum()) if float((dg * dg).sum()) > 0 else 0.0))
    return stats


def format_oracle(report: OracleReport) -> str:
    """Markdown table of the four solves and a line on the predicted depth's shape."""
    lines = ["| NOCs | depth | objects | R ok (%) | t ok (%) | median R (deg) | median t (m) |",
             "|---|---|---|---|---|---|---|"]
    for r in report.rows:
        lines.append(f"| {r.nocs} | {r.depth} | {r.count} | {r.rotation_ok:.1f} | {r.translation_ok:.1f} | "
                     f"{r.median_rotation_deg:.1f} | {r.median_translation_m:.3f} |")
    lines.append("")
    lines.append(f"predicted depth inside {report.objects} objects: median mean-depth error "
                 f"{100 * report.median_depth_error:.1f} %, shape correlation {report.median_shape_correlation:.2f}, "
                 f"slope {report.median_shape_slope:.2f} (1 and 1 = the true shape)")
    return "\n".join(lines)
