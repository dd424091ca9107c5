"""Export the network's static-shape graph ``forward_export(image, K)`` to ONNX.

Writes FILE.onnx (batch 1, the model's input size, inputs "image" (1, 3, H, W) and "K" (1, 3, 3),
one output per key of the network's output dict) and FILE.json beside it: format version,
model name, class names, input size, input/output names and shapes, opset, the resolved config
and the sha256 of the ONNX file. The graph ends before the 3x3 SVD and the retrieval (they run
in model/roca/decode.py), and the export fails if any operator is unsupported by ONNX-TensorRT.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch

from cad_perception_ros.jsonio import read_json_object
from cad_perception_ros.runtime.contract import INPUT_NAMES
from cad_perception_ros.runtime.engine_cache import sha256_file
from cad_perception_ros.runtime.trt_ops import check_trt_ops

SIDECAR_VERSION = 1
DEFAULT_OPSET = 17


class ExportResult(NamedTuple):
    onnx_path: Path
    sidecar_path: Path
    sha256: str
    output_names: list[str]


def sidecar_path(onnx_path: str | Path) -> Path:
    return Path(onnx_path).with_suffix(".json")


def export_onnx(model, out_path: str | Path, *, input_size: tuple[int, int], opset: int = DEFAULT_OPSET,
                metadata: dict[str, Any] | None = None, overwrite: bool = False,
                check_ops: bool = True) -> ExportResult:
    """Export `model.forward_export` at input_size (H, W) to `out_path` plus its JSON sidecar.

    metadata: extra sidecar keys (model_name, class_names, config, ...). Raises FileExistsError
    unless `overwrite`, and UnsupportedOpError when the graph has an op TensorRT cannot parse.
    """

    out_path, side = Path(out_path), sidecar_path(out_path)
    for path in (out_path, side):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    height, width = (int(v) for v in input_size)
    model = model.cpu().eval()
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))  # (1, 3, H, W)
    K = torch.tensor([[[0.9 * width, 0.0, width / 2], [0.0, 0.9 * width, height / 2], [0.0, 0.0, 1.0]]])
    with torch.inference_mode():
        sample = model.forward_export(image, K)
    names = list(sample)

    class ExportWrapper(torch.nn.Module):  # dict outputs -> a tuple in `names` order
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, image, K):
            out = self.model.forward_export(image, K)
            return tuple(out[name] for name in names)

    wrapper = ExportWrapper().eval()  # export restores the wrapper's mode: train() would leave model training
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out_path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():  # the TorchScript exporter: the dynamo one needs onnxscript
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants: static export
            torch.onnx.export(wrapper, (image, K), tmp, dynamo=False, opset_version=int(opset),
                              input_names=list(INPUT_NAMES), output_names=names, do_constant_folding=True)
        ops = check_trt_ops(tmp) if check_ops else None
        os.replace(tmp, out_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    digest = sha256_file(out_path)
    sidecar = {
        "format_version": SIDECAR_VERSION, "onnx_file": out_path.name, "sha256": digest, "opset": int(opset),
        "input_size": [height, width], "input_names": list(INPUT_NAMES), "output_names": names,
        "output_shapes": {k: list(v.shape) for k, v in sample.items()},
        "trt_ops": ops.counts if ops else None, **(metadata or {}),
    }
    side.write_text(json.dumps(sidecar, indent=2, default=str), encoding="utf-8")
    return ExportResult(out_path, side, digest, names)


def read_sidecar(onnx_path: str | Path, *, verify_hash: bool = True) -> dict[str, Any]:
    """Load FILE.json beside FILE.onnx; ValueError if missing, malformed or the hash disagrees."""
    side = sidecar_path(onnx_path)
    data = read_json_object(side, what="export sidecar (re-run cad-perception export)")
    for key in ("sha256", "input_size", "output_names"):
        if key not in data:
            raise ValueError(f"{side}: missing key {key!r}")
    if verify_hash and sha256_file(onnx_path) != data["sha256"]:
        raise ValueError(f"{onnx_path}: sha256 differs from {side} (file changed after export)")
    return data


def default_onnx_path(model_dir: str | Path) -> Path:
    return Path(model_dir) / "model.onnx"
