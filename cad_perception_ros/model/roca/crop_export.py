"""ONNX export of the crop network: a static batch of max_crops crops (padded), no SVD in the graph.

Graph inputs: crops (M, 3, S, S) float32, rays (M, 2, S, S) float32, classes (M,) int64.
Outputs: mask_logits (M, R, R), nocs (M, 3, R, R) (decoded bins: arg-max window mean),
weight_logits (M, R, R), depth (M, R, R), log_scale (M, 3), offset (M, 2), depth_ratio (M,),
up (M, 3), heading_logits (M, Y).
The 3x3 Procrustes solve runs after it (crop_decode.crop_poses with ``nocs``). Operators: Conv,
GroupNorm (InstanceNormalization + Mul/Add), Resize, Softmax, ArgMax, Gather, MatMul (Gemm):
all in TensorRT's ONNX parser.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cad_perception_ros.model.roca.crop_decode import decode_nocs

ONNX_INPUTS = ("crops", "rays", "classes")
ONNX_OUTPUTS = ("mask_logits", "nocs", "weight_logits", "depth", "log_scale", "offset", "depth_ratio", "up",
                "heading_logits")
GLOBAL_OUTPUTS = ONNX_OUTPUTS[4:]  # the graph without the decoder (dense=False)


class CropExportWrapper(nn.Module):
    """CropNet -> the ONNX outputs above (NOC bins decoded inside the graph)."""

    def __init__(self, model, dense: bool = True):
        super().__init__()
        self.model = model
        self.dense = dense

    def forward(self, crops: torch.Tensor, rays: torch.Tensor, classes: torch.Tensor):
        out = self.model(crops, rays, classes, dense=self.dense)
        if not self.dense:
            return tuple(out[name] for name in GLOBAL_OUTPUTS)
        nocs = decode_nocs(out["noc_logits"], self.model.config.noc_window)
        return (out["mask_logits"], nocs, out["weight_logits"], out["depth"], out["log_scale"], out["offset"],
                out["depth_ratio"], out["up"], out["heading_logits"])


def export_crop_onnx(model, path: str | Path, dense: bool = True) -> Path:
    """Write the static-shape graph of `model` (CropNet) to path; returns it. dense False: the
    graph of the global outputs alone (GLOBAL_OUTPUTS), without the decoder."""
    c = model.config
    m, s = c.max_crops, c.crop_size
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = (torch.rand(m, 3, s, s), torch.zeros(m, 2, s, s), torch.zeros(m, dtype=torch.long))
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(CropExportWrapper(model, dense).eval(), args, str(tmp), input_names=list(ONNX_INPUTS),
                      output_names=list(ONNX_OUTPUTS if dense else GLOBAL_OUTPUTS), opset_version=17, dynamo=False)
    tmp.replace(path)
    return path


def run_session(session, crops: torch.Tensor, rays: torch.Tensor, classes: torch.Tensor,
                max_crops: int) -> dict[str, torch.Tensor]:
    """Run the static graph on n crops in chunks of max_crops (the last one padded) -> outputs for n crops."""
    n = crops.shape[0]
    names = [o.name for o in session.get_outputs()]  # ONNX_OUTPUTS, or GLOBAL_OUTPUTS
    parts = []
    for start in range(0, n, max_crops):
        k = min(max_crops, n - start)
        feeds = {"crops": np.zeros((max_crops, *crops.shape[1:]), np.float32),
                 "rays": np.zeros((max_crops, *rays.shape[1:]), np.float32),
                 "classes": np.zeros(max_crops, np.int64)}
        feeds["crops"][:k] = crops[start:start + k].numpy()
        feeds["rays"][:k] = rays[start:start + k].numpy()
        feeds["classes"][:k] = classes[start:start + k].numpy()
        outs = session.run(names, feeds)
        parts.append([o[:k] for o in outs])
    return {name: torch.from_numpy(np.concatenate([p[i] for p in parts])) for i, name in enumerate(names)}
