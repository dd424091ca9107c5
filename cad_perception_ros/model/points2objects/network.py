"""P2ONet: Points2Objects (Engelmann et al., CVPR 2021) on the shared backbone and CenterNet detector.

Objects are class-heatmap peaks of the shared ``CenterNetHead`` (focal loss alpha 2, beta 4,
Gaussian targets, 3x3 max-pool peaks, fixed top-K). A class-agnostic branch reads the P2 feature
at each centre (ground-truth centres while training, detected peaks at run time) and predicts:

  rotation_raw (9)   a 3x3 matrix, projected to SO(3) by SVD with the determinant fix (Eq. 6)
  centre_offset (2)  the projected 3D box centre relative to the heatmap cell, in stride units
  log_depth (1)      depth z of the 3D centre; t = z K^-1 (u, v, 1) (back-projected with K)
  log_scale (3)      anisotropic scale s (metres per canonical unit)
  shape_logits (E)   one score per shape exemplar (all classes; the class restricts at decode)

``forward_train(batch, step=...)`` -> weighted losses: focal heatmap + box size / offset (shared
detector), lambda_Rt L_Rt (Eq. 7), lambda_s L1 scale, lambda_z shape selection (soft Eq. 4-5 or
hard Eq. 2-3 labels, model.ablation.shape_labels), lambda_coll L_coll (Eq. 8-9, 0 during the warm-up).
``forward_export(image, K)`` -> static-shape tensors; it stops before the SVD, which runs in
``model/points2objects/decode.py`` together with the exemplar -> CAD selection.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from cad_perception_ros.model.backbone import build_backbone
from cad_perception_ros.model.config import ModelConfig
from cad_perception_ros.model.detector import STRIDE, CenterNetHead, clip_boxes, detection_losses
from cad_perception_ros.model.network_base import TrainOrExport, focal_scale
from cad_perception_ros.model.points2objects.box_losses import point_cloud_loss, rotation_from_9d, scale_loss
from cad_perception_ros.model.points2objects.collision import collision_loss, collision_weight
from cad_perception_ros.model.points2objects.config import P2OConfig
from cad_perception_ros.model.points2objects.shape_selection import ShapeTargets, select_exemplars, shape_loss

EXPORT_OUTPUTS = ("scores", "classes", "boxes", "rotations_raw", "translations", "scales", "shape_logits")
FOLD_SYMMETRY = {1: "none", 2: "2fold", 4: "4fold", 12: "inf"}  # targets' folds -> symmetry labels
DEPTH_PRIOR = 3.0   # metres: initial depth (bias of log_depth)
SCALE_PRIOR = 0.7   # metres per canonical unit: initial scale (bias of log_scale)
ROTATION_PRIOR = (1.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.8)  # distinct singular values: finite SVD gradients
LOG_SCALE_RANGE = (math.log(0.01), math.log(20.0))


def backproject_centres(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixels uv (B, N, 2) at depths (B, N) -> camera-frame points (B, N, 3) through K (B, 3, 3)
    (upper triangular, skew allowed): y_n = (v - c_y) / f_y, x_n = (u - c_x - skew y_n) / f_x."""
    if uv.ndim != 3 or uv.shape[-1] != 2 or depth.shape != uv.shape[:2] or K.shape != (uv.shape[0], 3, 3):
        raise ValueError(f"backproject_centres: uv (B, N, 2), depth (B, N), K (B, 3, 3) expected, got "
                         f"{tuple(uv.shape)}, {tuple(depth.shape)}, {tuple(K.shape)}")
    fx, skew, cx = K[:, 0, 0, None], K[:, 0, 1, None], K[:, 0, 2, None]  # (B, 1)
    fy, cy = K[:, 1, 1, None], K[:, 1, 2, None]
    yn = (uv[..., 1] - cy) / fy  # (B, N)
    xn = (uv[..., 0] - cx - skew * yn) / fx
    return torch.stack([xn * depth, yn * depth, depth], -1)  # (B, N, 3)


class BoxShapeHead(nn.Module):
    """Centre features (B, N, C) -> dict of rotation_raw (B,N,9), centre_offset (B,N,2),
    depth (B,N) metres, scale (B,N,3), shape_logits (B,N,E). Class-agnostic (paper Sec. 3.3)."""

    def __init__(self, *, in_channels: int, hidden: int, num_exemplars: int, max_depth: float):
        super().__init__()
        self.box = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 15))
        self.shape = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(inplace=True),
                                   nn.Linear(hidden, num_exemplars))
        self.log_depth_range = (math.log(0.1), math.log(max_depth))
        last = self.box[-1]
        nn.init.normal_(last.weight, std=0.01)
        bias = [*ROTATION_PRIOR, 0.0, 0.0, math.log(DEPTH_PRIOR), *([math.log(SCALE_PRIOR)] * 3)]
        with torch.no_grad():
            last.bias.copy_(torch.tensor(bias))

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        box = self.box(feats)  # (B, N, 15)
        return {"rotation_raw": box[..., :9], "centre_offset": box[..., 9:11],
                "depth": box[..., 11].clamp(*self.log_depth_range).exp(),
                "scale": box[..., 12:15].clamp(*LOG_SCALE_RANGE).exp(),
                "shape_logits": self.shape(feats)}


class P2ONet(TrainOrExport):
    """Points2Objects on the shared backbone (build_backbone) + CenterNetHead. num_exemplars: E, the size of the exemplar set;
    exemplar tensors (for the collision loss and the class-restricted selection while training)
    are non-persistent buffers set by ``set_exemplars`` (the model directory stores the set)."""

    def __init__(self, *, config: ModelConfig, p2o: P2OConfig, num_exemplars: int, load_pretrained: bool = False):
        super().__init__()
        if num_exemplars < 1:
            raise ValueError(f"P2ONet needs at least one shape exemplar, got {num_exemplars}")
        c = config
        self.config, self.p2o, self.num_exemplars = c, p2o, int(num_exemplars)
        self.backbone = build_backbone(c, load_pretrained=load_pretrained)
        self.detector = CenterNetHead(in_channels=c.fpn_channels, head_channels=c.head_channels,
                                      num_classes=c.num_classes)
        self.trunk = nn.Sequential(nn.Conv2d(c.fpn_channels, c.head_channels, 3, padding=1), nn.ReLU(inplace=True),
                                   nn.Conv2d(c.head_channels, c.head_channels, 3, padding=1), nn.ReLU(inplace=True))
        self.head = BoxShapeHead(in_channels=c.head_channels, hidden=c.hidden_dim, num_exemplars=num_exemplars,
                                 max_depth=c.max_depth)
        self.register_buffer("exemplar_class_ids", torch.zeros(num_exemplars, dtype=torch.int64), persistent=False)
        self.register_buffer("exemplar_points", torch.zeros(num_exemplars, 1, 3), persistent=False)
        self.register_buffer("exemplar_penetration", torch.zeros(num_exemplars, 1, 1, 1), persistent=False)

    uses_step = True  # train_loop passes the optimiser step (collision warm-up)

    @classmethod
    def from_config(cls, config: ModelConfig, p2o: P2OConfig, exemplars=None, *,
                    load_pretrained: bool = False) -> "P2ONet":
        """Build for an ExemplarSet `exemplars` (its size fixes E; its arrays become buffers).
        load_pretrained: load ImageNet backbone weights when config.pretrained (see build_backbone)."""
        if config.kind != "points2objects":
            raise ValueError(f"P2ONet.from_config: model.kind is {config.kind!r}, expected 'points2objects'")
        if exemplars is None:
            raise ValueError("P2ONet.from_config needs the exemplar set (ExemplarSet)")
        model = cls(config=config, p2o=p2o, num_exemplars=len(exemplars), load_pretrained=load_pretrained)
        model.set_exemplars(exemplars)
        return model

    def set_exemplars(self, exemplars) -> None:
        """Copy class ids (E,), surface points (E, P, 3) (first points_per_object) and penetration
        grids (E, G, G, G) of an ExemplarSet into the buffers; the set itself stays as .exemplars."""
        if len(exemplars) != self.num_exemplars:
            raise ValueError(f"exemplar set has {len(exemplars)} exemplars, the network {self.num_exemplars}")
        self.exemplars = exemplars
        self.exemplar_class_ids = torch.as_tensor(exemplars.class_ids, dtype=torch.int64)
        self.exemplar_points = torch.as_tensor(exemplars.points[:, :self.p2o.points_per_object], dtype=torch.float32)
        self.exemplar_penetration = torch.as_tensor(exemplars.penetration_grids(), dtype=torch.float32)

    # ------------------------------------------------------------------ shared
    def _centre_outputs(self, p2: torch.Tensor, cells: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
        """P2 (B, C, h, w), heatmap cells (B, N) -> head outputs plus translation (B, N, 3)."""
        feats = self.trunk(p2)  # (B, C, h, w)
        b, ch, _, w = feats.shape
        n = cells.shape[1]
        centre = feats.flatten(2).gather(2, cells[:, None].expand(b, ch, n)).transpose(1, 2)  # (B, N, C)
        out = self.head(centre)
        scale = focal_scale(K, self.config)  # None unless the head's depth is a canonical camera's
        if scale is not None:
            out["depth"] = out["depth"] * scale.reshape(-1, 1)
        ys = torch.div(cells, w, rounding_mode="floor")
        xs = cells - ys * w
        cell_xy = torch.stack([xs, ys], -1).to(p2.dtype)  # (B, N, 2)
        uv = (cell_xy + out["centre_offset"]) * STRIDE  # (B, N, 2) input pixels
        out["translation"] = backproject_centres(uv, out["depth"], K)  # (B, N, 3)
        return out

    # ------------------------------------------------------------------ export
    def forward_export(self, image: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
        """image (1, 3, H, W) in [0, 1] at config.input_size, K (1, 3, 3) of that image.

        Returns (K = top_k, E = exemplars): scores (1,K), classes (1,K) int64, boxes (1,K,4) pixels,
        rotations_raw (1,K,3,3) (before the SVD), translations (1,K,3) camera frame metres,
        scales (1,K,3), shape_logits (1,K,E).
        """
        c = self.config
        p2 = self.backbone(image)[0]
        dets = self.detector.decode(self.detector(p2), c.top_k, c.detection_score)
        boxes = clip_boxes(dets.boxes, *c.input_size)  # (1, K, 4)
        out = self._centre_outputs(p2, dets.cells, K)
        return {"scores": dets.scores, "classes": dets.classes, "boxes": boxes,
                "rotations_raw": out["rotation_raw"].reshape(1, c.top_k, 3, 3),
                "translations": out["translation"], "scales": out["scale"], "shape_logits": out["shape_logits"]}

    # ------------------------------------------------------------------ training
    def forward_train(self, batch: dict[str, torch.Tensor], step: int = 0,
                      class_weighting: bool = True) -> dict[str, torch.Tensor]:
        """batch from ``targets.collate`` + ``points2objects.training.extend_batch`` (cad_points
        (B, M, P, 3), shape_soft (B, M, E), shape_hard (B, M)) -> weighted loss terms and "total"."""
        cw = batch["class_weights"] if class_weighting else torch.ones_like(batch["class_weights"])
        p2 = self.backbone(batch["image"])[0]
        raw = detection_losses(self.detector(p2), batch, cw)
        keep = batch["valid"].flatten() > 0  # (B*M,)
        out = {k: v.flatten(0, 1)[keep] for k, v in self._centre_outputs(p2, batch["centre"], batch["K"]).items()}
        raw.update(self._object_losses(out, batch, keep, step))
        p, lw = self.p2o, self.config.loss_weights
        weights = {"heatmap": p.weight_keypoint, "box_size": lw.box_size, "box_offset": lw.box_offset,
                   "rt": p.weight_rt, "scale": p.weight_scale, "shape": p.weight_shape,
                   "collision": collision_weight(step, p)}
        weighted = {k: v * weights[k] for k, v in raw.items()}
        weighted["total"] = sum(weighted.values())
        return weighted

    def _object_losses(self, out, batch, keep, step) -> dict[str, torch.Tensor]:
        """Per-object losses over the N kept objects: L_Rt, L_s, L_z, L_coll (unweighted)."""
        sel = {k: batch[k].flatten(0, 1)[keep] for k in
               ("classes", "rotation", "translation", "scale", "folds", "cad_points", "shape_soft", "shape_hard")}
        rotation = rotation_from_9d(out["rotation_raw"])  # (N, 3, 3)
        symmetries = [FOLD_SYMMETRY.get(int(f), "none") for f in sel["folds"]]
        losses = {
            "rt": point_cloud_loss(rotation, out["translation"], sel["rotation"], sel["translation"],
                                   sel["scale"], sel["cad_points"], symmetries),
            "scale": scale_loss(out["scale"], sel["scale"]),
            "shape": shape_loss(out["shape_logits"], ShapeTargets(sel["shape_hard"], sel["shape_soft"]),
                                self.config.ablation.shape_labels),
        }
        zero = out["scale"].sum() * 0.0
        if collision_weight(step, self.p2o) > 0 and rotation.shape[0] > 1:
            image_ids = torch.arange(batch["valid"].shape[0], device=keep.device).repeat_interleave(
                batch["valid"].shape[1])[keep]  # (N,)
            chosen = select_exemplars(out["shape_logits"].detach(), self.exemplar_class_ids, sel["classes"])
            losses["collision"] = collision_loss(self.exemplar_points[chosen], rotation, out["translation"],
                                                 out["scale"], self.exemplar_penetration[chosen], image_ids)
        else:
            losses["collision"] = zero
        return losses

