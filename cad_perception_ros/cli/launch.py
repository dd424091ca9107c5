"""Start the cad_perception node as launch/cad_perception.launch.py would (for machines without
ros2 launch): same executable, params file, namespace and topic remappings.

    cad-perception launch --remap image:=/cam/image_raw --remap camera_info:=/cam/camera_info
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from cad_perception_ros.paths import asset_root

PACKAGE_ROOT = asset_root()
DEFAULT_PARAMS = PACKAGE_ROOT / "config" / "cad_perception.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=None, help=f"ROS params file (default: {DEFAULT_PARAMS})")
    parser.add_argument("--namespace", default=None, help="node namespace (default: none)")
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                        help="topic remapping, e.g. image:=/cam/image_raw (repeatable)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="parameter override, e.g. model_dir:=/models/roca (repeatable)")
    parser.add_argument("--lifecycle", action="store_true",
                        help="do not autostart: wait for lifecycle transitions (configure, activate)")
    parser.add_argument("--print", dest="print_only", action="store_true", help="print the command and exit")


def node_command(args: argparse.Namespace) -> list[str]:
    """The node's command line: python -m cad_perception_ros.ros.node [--autostart] --ros-args ..."""
    params = args.params or DEFAULT_PARAMS
    if not params.is_file():
        raise SystemExit(f"params file not found: {params}")
    cmd = [sys.executable, "-m", "cad_perception_ros.ros.node"] + ([] if args.lifecycle else ["--autostart"])
    cmd += ["--ros-args", "--params-file", str(params)]
    if args.namespace:
        cmd += ["-r", f"__ns:={args.namespace if args.namespace.startswith('/') else '/' + args.namespace}"]
    for item in args.remap:
        if ":=" not in item:
            raise SystemExit(f"--remap {item!r}: expected FROM:=TO")
        cmd += ["-r", item]
    for item in args.param:
        if ":=" not in item:
            raise SystemExit(f"--param {item!r}: expected NAME:=VALUE")
        cmd += ["-p", item]
    return cmd


def run(args: argparse.Namespace) -> int:
    cmd = node_command(args)
    if args.print_only:
        print(" ".join(cmd))
        return 0
    return subprocess.call(cmd, env=dict(os.environ))
