"""Export a model directory's network to ONNX (static shapes) and check its operators against
ONNX-TensorRT: writes FILE.onnx and the FILE.json sidecar (see runtime/onnx_export.py).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cad_perception_ros.runtime.network import load_network
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


def run(args: argparse.Namespace) -> int:
    loaded = load_network(args.model_dir)
    out = Path(args.out) if args.out else default_onnx_path(args.model_dir)
    result = export_onnx(loaded.model, out, input_size=loaded.input_size, opset=args.opset,
                         metadata=loaded.sidecar_metadata(), overwrite=args.overwrite)
    print(f"wrote {result.onnx_path} (sha256 {result.sha256[:16]}...) and {result.sidecar_path}")
    print("outputs: " + ", ".join(result.output_names))
    return 0
