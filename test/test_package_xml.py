"""package.xml: every rosdep key is one the rosdistro index has, and every third-party module
the package imports at run time is an exec_depend.

The index cannot be queried from CI (no network), so the keys were checked once by hand against
ros/rosdistro (commit 8468e88, 2026-08-22): `git grep "^<key>:" -- rosdep/` for the Python keys,
kilted/distribution.yaml for the ROS packages. A new key must be checked the same way and added
to VERIFIED_KEYS with that check.
"""
from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Keys found in ros/rosdistro @ 8468e88 (rosdep/python.yaml or kilted/distribution.yaml).
VERIFIED_KEYS = {
    "ament_cmake", "ament_cmake_python", "rosidl_default_generators", "rosidl_default_runtime", "std_msgs",
    "geometry_msgs", "rclpy", "builtin_interfaces", "rcl_interfaces", "sensor_msgs", "visualization_msgs",
    "diagnostic_msgs", "lifecycle_msgs", "tf2_msgs", "vision_msgs", "ament_index_python", "launch", "launch_ros",
    "python3-numpy", "python3-yaml", "python3-scipy", "python3-torch", "python3-pil", "python3-tqdm",
    "python3-matplotlib", "python3-trimesh-pip", "python3-onnxruntime-pip", "python3-psutil", "python3-rosbags-pip",
    "python3-pytest", "python3-pytest-timeout", "python3-hypothesis",
    "std_srvs",  # a package of ros2/common_interfaces in kilted/distribution.yaml (added 2026-12-02, not re-run against the index)
}
# Keys that are in no file of the index (rosdep would fail on them).
MISSING_KEYS = {"python3-torch-pip", "python3-safetensors-pip", "python3-safetensors", "python3-mcap-pip"}
# Top-level module -> the key that provides it. None: no rosdep key exists (pip, see docs/robot.md).
MODULE_KEYS = {
    "numpy": "python3-numpy", "yaml": "python3-yaml", "scipy": "python3-scipy", "torch": "python3-torch",
    "PIL": "python3-pil", "tqdm": "python3-tqdm", "matplotlib": "python3-matplotlib", "trimesh": "python3-trimesh-pip",
    "onnxruntime": "python3-onnxruntime-pip", "psutil": "python3-psutil", "rosbags": "python3-rosbags-pip",
    "safetensors": None, "rclpy": "rclpy", "builtin_interfaces": "builtin_interfaces", "rcl_interfaces": "rcl_interfaces",
    "std_msgs": "std_msgs", "geometry_msgs": "geometry_msgs", "sensor_msgs": "sensor_msgs",
    "visualization_msgs": "visualization_msgs", "diagnostic_msgs": "diagnostic_msgs", "lifecycle_msgs": "lifecycle_msgs",
    "tf2_msgs": "tf2_msgs", "vision_msgs": "vision_msgs", "std_srvs": "std_srvs", "ament_index_python": "ament_index_python",
    "launch": "launch", "launch_ros": "launch_ros",
}
# Optional or development-only imports (each imported lazily where it is needed).
OPTIONAL = {"tensorrt", "onnx", "pybullet", "mcap", "mcap_ros2"}


def package_keys() -> dict[str, set[str]]:
    root = ET.parse(ROOT / "package.xml").getroot()
    keys: dict[str, set[str]] = {}
    for tag in ("depend", "buildtool_depend", "exec_depend", "test_depend", "build_depend"):
        keys[tag] = {e.text.strip() for e in root.findall(tag)}
    return keys


def imported_modules() -> set[str]:
    found = set()
    for path in [*(ROOT / "cad_perception_ros").rglob("*.py"), *(ROOT / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"cad_perception_ros", "__future__"}


def test_every_key_is_in_the_rosdistro_index():
    keys = set().union(*package_keys().values())
    assert not keys & MISSING_KEYS, f"keys no rosdep file has: {keys & MISSING_KEYS}"
    assert keys <= VERIFIED_KEYS, f"unchecked keys (check them in ros/rosdistro first): {keys - VERIFIED_KEYS}"


def test_every_runtime_import_is_an_exec_depend():
    keys = package_keys()
    runtime = keys["exec_depend"] | keys["depend"]
    modules = imported_modules() - OPTIONAL
    unmapped = modules - set(MODULE_KEYS)
    assert not unmapped, f"imports without a known rosdep key: {unmapped}"
    missing = {m: MODULE_KEYS[m] for m in modules if MODULE_KEYS[m] is not None and MODULE_KEYS[m] not in runtime}
    assert not missing, f"imported but not exec_depend: {missing}"
    assert {"PIL", "ament_index_python", "torch"} <= modules  # the scan sees real imports
