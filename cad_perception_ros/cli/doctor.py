"""Report which optional capabilities this environment has (torch, ROS 2, interfaces, backends)."""
from __future__ import annotations

import argparse
import importlib

CHECKS = (
    ("torch", "PyTorch (training, torch backend)"),
    ("onnxruntime", "ONNX Runtime backend"),
    ("tensorrt", "TensorRT backend (GPU/Jetson only)"),
    ("pytorch3d", "pytorch3d (optional; plain-torch geometry is used otherwise)"),
    ("pybullet", "synthetic scene renderer (optional: the numpy renderer draws the same views)"),
    ("trimesh", "CAD mesh I/O"),
    ("rclpy", "ROS 2 client library"),
    ("cad_perception_ros.msg", "cad_perception_ros messages"),
    ("tf2_msgs.msg", "tf2_msgs interfaces"),
    ("vision_msgs.msg", "vision_msgs interfaces"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if anything but TensorRT/pytorch3d/pybullet is missing")


def available(module: str) -> tuple[bool, str]:
    """(importable, version or error) for one module."""
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # any import failure means "not available"; say why
        return False, f"{type(exc).__name__}: {exc}".splitlines()[0][:100]
    return True, str(getattr(mod, "__version__", "ok"))


def run(args: argparse.Namespace) -> int:
    missing = []
    for module, what in CHECKS:
        ok, detail = available(module)
        print(f"{'OK ' if ok else '-- '} {module:28s} {what}: {detail}")
        if not ok and module not in ("tensorrt", "pytorch3d", "pybullet"):
            missing.append(module)
    return 1 if (args.strict and missing) else 0
