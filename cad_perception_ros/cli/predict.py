"""Run the CAD aligner on your own photos: a PNG overlay and a JSON of predictions per image.

Intrinsics: --intrinsics fx,fy,cx,cy (pixels of the image as stored), or --intrinsics-file
FILE.yaml|json holding either fx/fy/cx/cy keys, a "K" 3x3 (or 9 numbers), or a ROS
camera_info YAML ("camera_matrix": {"data": [9 numbers]}). Images are decoded with Pillow and
converted to 8-bit RGB (grey, palette, RGBA and 16-bit inputs are normalised).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cad_perception_ros.config import load_yaml
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.runtime.contract import BACKENDS
from cad_perception_ros.runtime.network import default_model_dir
from cad_perception_ros.runtime.overlay import (
    draw_overlay,
    prediction_to_dict,
    wireframes_for,
)


def intrinsics_from_string(text: str) -> np.ndarray:
    """"fx,fy,cx,cy" -> (3, 3) K."""
    try:
        fx, fy, cx, cy = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--intrinsics must be fx,fy,cx,cy (4 numbers), got {text!r}") from None
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def intrinsics_from_file(path: str | Path) -> np.ndarray:
    """K (3, 3) from a YAML/JSON file (see the module docstring for the accepted layouts)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read JSON intrinsics: {exc}") from None
    else:
        data = load_yaml(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: intrinsics must be a mapping")
    if all(k in data for k in ("fx", "fy", "cx", "cy")):
        return intrinsics_from_string(",".join(str(data[k]) for k in ("fx", "fy", "cx", "cy")))
    values = data.get("K", data.get("k"))
    if values is None and isinstance(data.get("camera_matrix"), dict):
        values = data["camera_matrix"].get("data")
    if values is None:
        raise ValueError(f"{path}: no intrinsics found (keys fx/fy/cx/cy, K, or camera_matrix.data)")
    K = np.asarray(values, dtype=np.float64)
    if K.size != 9:
        raise ValueError(f"{path}: K must have 9 numbers, got {K.size}")
    return K.reshape(3, 3)


def load_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any Pillow-readable image."""
    with Image.open(path) as img:
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(img, dtype=np.float64)
            img = Image.fromarray((array / max(array.max(), 1) * 255).astype(np.uint8))
        return np.asarray(img.convert("RGB"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--intrinsics", help="fx,fy,cx,cy in pixels of the image")
    group.add_argument("--intrinsics-file", help="YAML or JSON with fx/fy/cx/cy, K, or camera_matrix.data")
    parser.add_argument("--model-dir", default=None, help="model directory (default: the bundled model)")
    parser.add_argument("--backend", default="torch", choices=BACKENDS)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--score-threshold", type=float, default=None, help="default: the model config's")
    parser.add_argument("--out", default="predictions", help="output folder (default ./predictions)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args: argparse.Namespace) -> int:

    K = intrinsics_from_string(args.intrinsics) if args.intrinsics else intrinsics_from_file(args.intrinsics_file)
    out = Path(args.out)
    targets = [(Path(p), out / f"{Path(p).stem}.png", out / f"{Path(p).stem}.json") for p in args.images]
    clashes = [str(f) for _, png, js in targets for f in (png, js) if f.exists()]
    if clashes and not args.overwrite:
        raise SystemExit(f"refusing to overwrite {clashes[:3]}...; pass --overwrite")
    aligner = CadAligner.from_model_dir(args.model_dir or default_model_dir(), backend=args.backend,
                                        device=args.device, score_threshold=args.score_threshold)
    out.mkdir(parents=True, exist_ok=True)
    for src, png, js in tqdm(targets, desc="predict", unit="image"):
        image = load_rgb(src)
        predictions = aligner(image, K)
        wires = wireframes_for(aligner.cad_database, [p.cad_id for p in predictions])
        Image.fromarray(draw_overlay(image, predictions, K, wireframes=wires)).save(png)
        js.write_text(json.dumps({
            "image": str(src), "size_hw": list(image.shape[:2]), "K": K.tolist(), "model": aligner.model_name,
            "backend": args.backend, "timings_ms": aligner.last_timings,
            "predictions": [prediction_to_dict(p) for p in predictions]}, indent=2), encoding="utf-8")
        tqdm.write(f"{src.name}: {len(predictions)} object(s) -> {png}")
    return 0
