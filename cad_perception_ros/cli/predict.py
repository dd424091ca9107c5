"""Run the CAD aligner on your own photos: a PNG overlay and a JSON of predictions per image.

Intrinsics: --intrinsics fx,fy,cx,cy (pixels of the image as stored), or --intrinsics-file
FILE.yaml|json holding either fx/fy/cx/cy keys, a "K" 3x3 (or 9 numbers), or a ROS
camera_info YAML ("camera_matrix": {"data": [9 numbers]}). Images are decoded with Pillow and
converted to 8-bit RGB (grey, palette, RGBA and 16-bit inputs are normalised).

Depth (--depth, one file per image, registered to it: same size, same K): a 16-bit PNG in
units of --depth-scale (0.001: millimetres) or a float32 .npy in metres; 0, NaN and inf are holes.
OpenEXR files are not read (no EXR library is installed): save them as .npy.

Floor (--camera-height METRES [--camera-pitch DEG] [--camera-roll DEG]): the camera's height above
a flat floor and its optical axis' angle below the horizon. Objects are then corrected to stand on
that floor (geometry/floor.py): about +5 points of alignment accuracy on synthetic-val-v2.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cad_perception_ros.config import load_yaml
from cad_perception_ros.geometry.floor import floor_from_height_pitch
from cad_perception_ros.geometry.sensor_depth import DEFAULT_DEPTH_SCALE, depth_to_metres
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


def load_depth(path: str | Path, depth_scale: float = DEFAULT_DEPTH_SCALE) -> np.ndarray:
    """(H, W) float32 metres from a 16-bit PNG (x depth_scale) or a float32 .npy (metres); ValueError otherwise."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        with Image.open(path) as img:
            if img.mode not in ("I;16", "I;16B", "I;16L", "I"):
                raise ValueError(f"{path}: depth PNG must be 16-bit single channel, got mode {img.mode}")
            array = np.asarray(img)
        if array.dtype != np.uint16:
            if array.min() < 0 or array.max() > 65535:
                raise ValueError(f"{path}: depth PNG values outside 0..65535")
            array = array.astype(np.uint16)
        return depth_to_metres(array, "16UC1", depth_scale)
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{path}: depth .npy must hold float metres, got {array.dtype}")
        return depth_to_metres(array.astype(np.float32), "32FC1")
    if suffix == ".exr":
        raise ValueError(f"{path}: OpenEXR depth needs an EXR library, and none is installed; "
                         "save the depth as a float32 .npy in metres")
    raise ValueError(f"{path}: depth must be a 16-bit .png (x depth scale) or a float32 .npy (metres)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--intrinsics", help="fx,fy,cx,cy in pixels of the image")
    group.add_argument("--intrinsics-file", help="YAML or JSON with fx/fy/cx/cy, K, or camera_matrix.data")
    parser.add_argument("--model-dir", default=None, help="model directory (default: the bundled model)")
    parser.add_argument("--backend", default="torch", choices=BACKENDS)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--score-threshold", type=float, default=None, help="default: the model config's")
    parser.add_argument("--depth", nargs="+", default=None, metavar="FILE",
                        help="registered depth per image, in the images' order: 16-bit PNG or float32 .npy")
    parser.add_argument("--depth-scale", type=float, default=DEFAULT_DEPTH_SCALE,
                        help="metres per unit of a 16-bit depth PNG (default 0.001: millimetres)")
    parser.add_argument("--camera-height", type=float, default=None, metavar="METRES",
                        help="camera height above a flat floor: objects are corrected to stand on it")
    parser.add_argument("--camera-pitch", type=float, default=0.0, metavar="DEG",
                        help="with --camera-height: optical axis angle below the horizon (negative: above)")
    parser.add_argument("--camera-roll", type=float, default=0.0, metavar="DEG",
                        help="with --camera-height: roll about the optical axis, clockwise in the image")
    parser.add_argument("--out", default="predictions", help="output folder (default ./predictions)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args: argparse.Namespace) -> int:

    K = intrinsics_from_string(args.intrinsics) if args.intrinsics else intrinsics_from_file(args.intrinsics_file)
    depths = args.depth or [None] * len(args.images)
    if len(depths) != len(args.images):
        raise SystemExit(f"predict: {len(depths)} depth file(s) for {len(args.images)} image(s): give one per image")
    try:
        floor = None if args.camera_height is None else floor_from_height_pitch(args.camera_height, args.camera_pitch,
                                                                                 args.camera_roll)
    except ValueError as exc:
        raise SystemExit(f"predict: --camera-height: {exc}") from None
    out = Path(args.out)
    targets = [(Path(p), out / f"{Path(p).stem}.png", out / f"{Path(p).stem}.json") for p in args.images]
    clashes = [str(f) for _, png, js in targets for f in (png, js) if f.exists()]
    if clashes and not args.overwrite:
        raise SystemExit(f"refusing to overwrite {clashes[:3]}...; pass --overwrite")
    aligner = CadAligner.from_model_dir(args.model_dir or default_model_dir(), backend=args.backend,
                                        device=args.device, score_threshold=args.score_threshold)
    out.mkdir(parents=True, exist_ok=True)
    for (src, png, js), depth_path in tqdm(list(zip(targets, depths)), desc="predict", unit="image"):
        image = load_rgb(src)
        try:
            depth = None if depth_path is None else load_depth(depth_path, args.depth_scale)
            predictions = aligner(image, K, depth, floor=floor)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"predict: {src}: {exc}") from None
        wires = wireframes_for(aligner.cad_database, [p.cad_id for p in predictions])
        Image.fromarray(draw_overlay(image, predictions, K, wireframes=wires)).save(png)
        js.write_text(json.dumps({
            "image": str(src), "size_hw": list(image.shape[:2]), "K": K.tolist(), "model": aligner.model_name,
            "backend": args.backend, "depth": None if depth_path is None else str(depth_path),
            "floor": None if floor is None else {"normal": floor.normal.tolist(), "height_m": floor.height},
            "timings_ms": aligner.last_timings,
            "predictions": [prediction_to_dict(p) for p in predictions]}, indent=2), encoding="utf-8")
        tqdm.write(f"{src.name}: {len(predictions)} object(s) -> {png}")
    return 0
