"""Export a model directory's network to ONNX (static shapes) and check its operators against
ONNX-TensorRT: writes FILE.onnx and the FILE.json sidecar (see runtime/onnx_export.py). A ROCA v2
directory's crop network (crop_model.safetensors) goes to FILE_crop.onnx beside it: a static batch
of crop.max_crops crops, checked the same way (the NOC-bin decode inside, the 3x3 SVD outside);
and to FILE_crop_global.onnx, the same network without its decoder, which is all the heading +
SITE decode needs on RGB alone (CropConfig.needs_dense).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cad_perception_ros.jsonio import refuses_overwrite
from cad_perception_ros.model.roca.crop_export import export_crop_onnx
from cad_perception_ros.model.roca.crop_training import load_crop_model
from cad_perception_ros.runtime.crop_stage import has_crop_network
from cad_perception_ros.runtime.network import load_network
from cad_perception_ros.runtime.trt_ops import check_trt_ops
from cad_perception_ros.runtime.onnx_export import (
    DEFAULT_OPSET,
    default_onnx_path,
    export_onnx,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="model directory (model.safetensors, config.yaml, meta.json)")
    parser.add_argument("--out", default=None, help="output .onnx file (default: MODEL_DIR/model.onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def crop_onnx_path(onnx_path: Path, dense: bool = True) -> Path:
    return onnx_path.with_name(f"{onnx_path.stem}_crop{'' if dense else '_global'}.onnx")


def run(args: argparse.Namespace) -> int:
    loaded = load_network(args.model_dir)
    out = Path(args.out) if args.out else default_onnx_path(args.model_dir)
    crop = has_crop_network(args.model_dir)
    if crop and any(refuses_overwrite(crop_onnx_path(out, dense), args.overwrite, "export") for dense in (True, False)):
        return 2  # before any file is written
    result = export_onnx(loaded.model, out, input_size=loaded.input_size, opset=args.opset,
                         metadata=loaded.sidecar_metadata(), overwrite=args.overwrite)
    print(f"wrote {result.onnx_path} (sha256 {result.sha256[:16]}...) and {result.sidecar_path}")
    print("outputs: " + ", ".join(result.output_names))
    if crop:
        model = load_crop_model(args.model_dir)
        for dense in (True, False):
            path = export_crop_onnx(model, crop_onnx_path(out, dense), dense=dense)
            ops = check_trt_ops(path)
            what = "crop network" if dense else "crop network without its decoder"
            print(f"wrote {path} ({what}, opset {ops.opset}, {sum(ops.counts.values())} nodes, all parseable by ONNX-TensorRT)")
    return 0
