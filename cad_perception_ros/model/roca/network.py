"""RocaNet: backbone + CenterNet detector + depth, alignment and retrieval heads (ROCA).

``forward_train(batch)`` -> dict of losses ("total" included); ROI heads run on the
(jittered) ground-truth boxes. ``forward_export(image, K)`` -> dict of static-shape tensors
per top-K detection; it stops before the 3x3 SVD and the nearest-neighbour search, which run
in ``model/roca/decode.decode`` (shared by training-time evaluation and all backends).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cad_perception_ros.model import losses as L
from cad_perception_ros.model.backbone import build_backbone
from cad_perception_ros.model.config import RocaConfig
from cad_perception_ros.model.detector import CenterNetHead, MaskHead, clip_boxes, detection_losses
from cad_perception_ros.model.network_base import TrainOrExport, focal_scale
from cad_perception_ros.model.roca import alignment_ops as ops
from cad_perception_ros.model.roca.alignment_head import AlignmentHead, solve_alignment
from cad_perception_ros.model.roca.depth_head import DepthHead
from cad_perception_ros.model.roca.retrieval_head import RetrievalHead

EXPORT_OUTPUTS = ("scores", "classes", "boxes", "masks", "points", "nocs", "weights", "scales",
                  "translations_init", "embeddings", "depth")


class RocaNet(TrainOrExport):
    def __init__(self, *, config: RocaConfig, load_pretrained: bool = False):
        """load_pretrained: load ImageNet backbone weights when config.pretrained (see build_backbone)."""
        super().__init__()
        c = config
        self.config = c
        self.backbone = build_backbone(c, load_pretrained=load_pretrained)
        self.detector = CenterNetHead(in_channels=c.fpn_channels, head_channels=c.head_channels,
                                      num_classes=c.num_classes)
        self.mask_head = MaskHead(in_channels=c.fpn_channels, channels=max(c.head_channels // 2, 8))
        self.depth = DepthHead(fpn_channels=c.fpn_channels, depth_channels=c.depth_channels,
                               feature_channels=c.depth_feature_channels, max_depth=c.max_depth)
        self.alignment = AlignmentHead(feature_channels=c.depth_feature_channels, shape_code_dim=c.shape_code_dim,
                                       hidden_dim=c.hidden_dim, num_classes=c.num_classes, dropout=c.dropout,
                                       rotation_mode=c.ablation.rotation_mode,
                                       learned_weights=c.ablation.learned_weights)
        self.retrieval = (RetrievalHead(shape_code_dim=c.shape_code_dim, embedding_dim=c.embedding_dim,
                                        channels=c.voxel_channels, grid=c.voxel_grid, completion=c.ablation.completion)
                          if c.ablation.retrieval_mode == "learned" else None)

    @classmethod
    def from_config(cls, config: RocaConfig, *, load_pretrained: bool = False) -> "RocaNet":
        return cls(config=config, load_pretrained=load_pretrained)

    # ------------------------------------------------------------------ shared
    def _rois(self, fpn, fd, depth, boxes):
        """Crop ROI features and depth: boxes (B, K, 4) -> (p2 (B,K,C,m,m), fd (B,K,Cd,m,m), d (B,K,m,m))."""
        m, size = self.config.roi_size, self.config.input_size
        roi_p2 = ops.roi_crop(fpn[0], boxes, m, size)
        roi_fd = ops.roi_crop(fd, boxes, m, size)
        roi_depth = ops.roi_crop(depth, boxes, m, size, mode="nearest")[:, :, 0]
        return roi_p2, roi_fd, roi_depth

    # ------------------------------------------------------------------ export
    def forward_export(self, image: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
        """image (1, 3, H, W) in [0, 1] at config.input_size, K (1, 3, 3) of that image.

        Returns (K = top_k, m = roi_size, P = m*m, D = embedding_dim): scores (1,K), classes (1,K)
        int64, boxes (1,K,4) pixels, masks (1,K,m,m) probabilities, points (1,K,P,3) camera
        frame, nocs (1,K,P,3), weights (1,K,P), scales (1,K,3), translations_init (1,K,3),
        embeddings (1,K,D) (zeros without a learned retrieval head), depth (1,H,W);
        plus rotations_raw (1,K,3,3) in the "direct" rotation mode.
        """
        c = self.config
        fpn = self.backbone(image)
        dets = self.detector.decode(self.detector(fpn[0]), c.top_k, c.detection_score)
        boxes = clip_boxes(dets.boxes, *c.input_size)  # (1, K, 4)
        depth, fd = self.depth(fpn, focal_scale(K, c))
        roi_p2, roi_fd, roi_depth = self._rois(fpn, fd, depth, boxes)
        masks = torch.sigmoid(self.mask_head(roi_p2.flatten(0, 1)))  # (K, m, m)
        points = ops.roi_backproject(roi_depth, boxes, K)[0]  # (K, P, 3)
        prob = masks.flatten(1)  # (K, P)
        fg = (prob > c.alignment_mask_threshold).to(prob.dtype)
        out = self.alignment(roi_fd.flatten(0, 1), points, fg, prob, dets.classes[0])
        if self.retrieval is not None:
            fg_ret = (prob > c.retrieval_mask_threshold).to(prob.dtype)
            emb = self.retrieval.embed_image(out["shape_code"], out["noc"], fg_ret)
        else:
            emb = image.new_zeros((c.top_k, c.embedding_dim))
        result = {"scores": dets.scores, "classes": dets.classes, "boxes": boxes, "masks": masks[None],
                  "points": points[None], "nocs": out["noc"][None], "weights": out["weights"][None],
                  "scales": out["scale"][None], "translations_init": out["translation_init"][None],
                  "embeddings": emb[None], "depth": depth[:, 0]}
        if "rotation_raw" in out:
            result["rotations_raw"] = out["rotation_raw"][None]
        return result

    @torch.no_grad()
    def embed_cads(self, grids: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """CAD occupancy grids (N, 32, 32, 32) -> embeddings (N, D) for the retrieval index."""
        if self.retrieval is None:
            raise ValueError("embed_cads: model has no learned retrieval head (retrieval_mode: chamfer)")
        parts = [self.retrieval.embed_cad(grids[i:i + batch_size]) for i in range(0, len(grids), batch_size)]
        return torch.cat(parts) if parts else grids.new_zeros((0, self.config.embedding_dim))

    # ------------------------------------------------------------------ training
    def forward_train(self, batch: dict[str, torch.Tensor], box_jitter: float = 0.0,
                      class_weighting: bool = True, gt_depth_points: float = 0.0) -> dict[str, torch.Tensor]:
        """batch from ``targets.collate`` -> dict of weighted loss terms and "total".

        gt_depth_points: probability per ROI of feeding the alignment head ground-truth depth
        points instead of the predicted ones (teacher forcing, RocaTrainConfig.gt_depth_points)."""
        cw = batch["class_weights"] if class_weighting else torch.ones_like(batch["class_weights"])
        fpn = self.backbone(batch["image"])
        losses = self._detection_losses(self.detector(fpn[0]), batch, cw)
        depth, fd = self.depth(fpn, focal_scale(batch["K"], self.config))
        gt_depth = batch["depth"]  # (B, 1, H, W)
        losses["depth"] = L.berhu_loss(depth, gt_depth, (gt_depth > 0).to(depth.dtype))
        keep = batch["valid"].flatten() > 0  # (B*M,)
        if keep.any():
            losses.update(self._roi_losses(fpn, fd, depth, batch, cw, keep, box_jitter, gt_depth_points))
        w = self.config.loss_weights
        weighted = {k: v * getattr(w, k) for k, v in losses.items()}
        weighted["total"] = sum(weighted.values())
        return weighted

    def _detection_losses(self, det, batch, cw):
        return detection_losses(det, batch, cw)

    def _roi_losses(self, fpn, fd, depth, batch, cw, keep, box_jitter, gt_depth_points=0.0):
        c = self.config
        m, size = c.roi_size, c.input_size
        boxes = _jitter_boxes(batch["boxes"], box_jitter, size) if self.training else batch["boxes"]
        roi_p2, roi_fd, roi_depth = self._rois(fpn, fd, depth, boxes)
        gt_depth = ops.roi_crop(batch["depth"], boxes, m, size, mode="nearest")[:, :, 0]  # (B, M, m, m)
        gt_inst = ops.roi_crop(batch["instance_map"] + 2, boxes, m, size, mode="nearest")[:, :, 0] - 2
        gt_mask = (gt_inst == batch["instance"][..., None, None].to(gt_inst.dtype)).to(depth.dtype)
        gt_noc = ops.roi_crop(batch["noc"], boxes, m, size, mode="nearest").flatten(3).transpose(2, 3)
        points = ops.roi_backproject(roi_depth, boxes, batch["K"]).flatten(0, 1)[keep]  # (N, P, 3)
        gt_points = ops.roi_backproject(gt_depth, boxes, batch["K"]).flatten(0, 1)[keep]
        sel = {k: batch[k].flatten(0, 1)[keep] for k in
               ("classes", "rotation", "translation", "scale", "folds", "grid_pos", "grid_neg")}
        inst_w = cw[sel["classes"]]  # (N,)
        mask = (gt_mask.flatten(0, 1)[keep] * (gt_depth.flatten(0, 1)[keep] > 0)).flatten(1)  # (N, P)
        mask_logits = self.mask_head(roi_p2.flatten(0, 1)[keep])  # (N, m, m)
        bce = F.binary_cross_entropy_with_logits(mask_logits, gt_mask.flatten(0, 1)[keep], reduction="none")
        out = {"mask": L.weighted_mean(bce.flatten(1).mean(1), inst_w)}
        d_pred, d_gt = roi_depth.flatten(0, 1)[keep].flatten(1), gt_depth.flatten(0, 1)[keep].flatten(1)
        per = ((d_pred - d_gt).abs() * mask).sum(1) / mask.sum(1).clamp_min(1)
        mean_gap = ((d_pred - d_gt) * mask).sum(1).abs() / mask.sum(1).clamp_min(1)
        out["roi_depth"] = L.weighted_mean(per + mean_gap, inst_w)
        prob = torch.sigmoid(mask_logits).detach().flatten(1)
        if self.training and gt_depth_points > 0:
            forced = (torch.rand(points.shape[0], 1, 1, device=points.device) < gt_depth_points).to(points.dtype)  # (N, 1, 1)
            points = forced * gt_points + (1 - forced) * points
        head_points = points if c.alignment_depth_gradients else points.detach()
        align = self.alignment(roi_fd.flatten(0, 1)[keep], head_points, mask, prob, sel["classes"])
        if head_points is not points:  # Eq. 3 keeps training the depth through the undetached points
            align["extent_max"], align["extent_min"] = ops.masked_extent(points, mask)
        out.update(self._alignment_losses(align, head_points, gt_points, mask, sel, inst_w, gt_noc.flatten(0, 1)[keep]))
        if self.retrieval is not None:
            out.update(self._retrieval_losses(align, mask, sel))
        return out

    def _alignment_losses(self, a, points, gt_points, mask, sel, inst_w, gt_noc):
        gt_hi, gt_lo = ops.masked_extent(gt_points, mask)
        l_p = F.huber_loss(torch.cat([a["extent_max"], a["extent_min"]], 1), torch.cat([gt_hi, gt_lo], 1),
                           reduction="none").sum(1)
        out = {"points": L.weighted_mean(l_p, inst_w),
               "scale": L.weighted_mean((a["scale"] - sel["scale"]).abs().sum(1), inst_w),
               "translation_init": L.weighted_mean((a["translation_init"] - sel["translation"]).norm(dim=1), inst_w)}
        c = self.config
        detach = c.ablation.rotation_mode == "procrustes" and not c.ablation.end_to_end
        g = (lambda x: x.detach()) if detach else (lambda x: x)
        enough = (mask.sum(1) >= 3).to(mask.dtype)  # Procrustes needs >= 3 points
        weights = a["weights"] + (1 - enough)[:, None] * 1e-3  # keep degenerate solves finite
        rot, trans = solve_alignment(g(a["noc"]), g(points), g(weights), g(a["scale"]),
                                     a["translation_init"], a.get("rotation_raw"))
        r_gt, sym = ops.closest_symmetric_rotation(rot, sel["rotation"], sel["folds"])
        noc_target = gt_noc @ sym  # canonical NOCs of the chosen symmetric equivalent, (N, P, 3)
        out["noc"] = L.weighted_mean(L.masked_l1(a["noc"], noc_target, mask), inst_w)
        w_rot = inst_w * enough
        out["rotation"] = L.weighted_mean(L.rotation_error(rot, r_gt, c.ablation.rotation_loss), w_rot)
        out["translation"] = L.weighted_mean((trans - sel["translation"]).norm(dim=1), w_rot)
        return out

    def _retrieval_losses(self, a, mask, sel):
        z = self.retrieval.embed_image(a["shape_code"], a["noc"], mask)  # (N, D)
        z_pos = self.retrieval.embed_cad(sel["grid_pos"])
        z_neg = self.retrieval.embed_cad(sel["grid_neg"])
        out = {"triplet": L.triplet_loss(z, z_pos, z_neg, margin=0.5).mean()}  # not class-weighted
        if self.retrieval.decoder is not None:
            logits = self.retrieval.complete(z)
            out["completion"] = F.binary_cross_entropy_with_logits(logits, sel["grid_pos"])
        return out


def _jitter_boxes(boxes: torch.Tensor, amount: float, size: tuple[int, int]) -> torch.Tensor:
    """boxes (B, M, 4) -> boxes with each side moved by up to amount x box width/height."""
    if amount <= 0:
        return boxes
    wh = (boxes[..., 2:] - boxes[..., :2]).repeat(1, 1, 2)  # (B, M, 4)
    noisy = boxes + (torch.rand_like(boxes) * 2 - 1) * amount * wh
    hi = boxes.new_tensor([size[1], size[0], size[1], size[0]])
    return torch.minimum(torch.maximum(noisy, torch.zeros_like(hi)), hi)
