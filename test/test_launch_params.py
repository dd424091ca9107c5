"""The launch file, the YAML params file and NodeParams agree on every default; the launcher
builds the same node command line. No ROS started, no launch import (parsed with ast)."""
from __future__ import annotations

import argparse
import ast
import dataclasses
from pathlib import Path

import yaml

from cad_perception_ros.cli.launch import add_arguments, node_command
from cad_perception_ros.ros.params import DESCRIPTIONS, RANGES, NodeParams

ROOT = Path(__file__).resolve().parents[1]


def launch_arguments() -> dict[str, str]:
    tree = ast.parse((ROOT / "launch/cad_perception.launch.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets):
            return {k.value: (v.value if isinstance(v, ast.Constant) else None) for k, v in zip(node.value.keys, node.value.values)}
    raise AssertionError("ARGUMENTS not found in the launch file")


def yaml_params() -> dict:
    data = yaml.safe_load((ROOT / "config/cad_perception.yaml").read_text())
    (key,) = data
    assert key.endswith("cad_perception")
    return data[key]["ros__parameters"]


def test_yaml_equals_nodeparams_defaults():
    defaults = dataclasses.asdict(NodeParams())
    assert yaml_params() == defaults
    NodeParams(**yaml_params())  # valid
    assert set(DESCRIPTIONS) == set(defaults) and set(RANGES) <= set(defaults)


def test_launch_defaults_agree_with_yaml():
    args, params = launch_arguments(), yaml_params()
    for name in ("model_dir", "model", "backend", "device"):
        assert args[name] == params[name], name
    assert args["image"] == params["image_topic"] and args["camera_info"] == params["camera_info_topic"]
    assert args["params_file"] is None  # computed from the package share directory


def test_launcher_command_line():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cmd = node_command(parser.parse_args(["--namespace", "perception", "--remap", "image:=/cam/image_raw",
                                          "--param", "device:=cpu"]))
    assert cmd[1:4] == ["-m", "cad_perception_ros.ros.node", "--autostart"]
    i = cmd.index("--ros-args")
    assert cmd[i + 1:i + 3] == ["--params-file", str(ROOT / "config/cad_perception.yaml")]
    assert cmd[i + 3:] == ["-r", "__ns:=/perception", "-r", "image:=/cam/image_raw", "-p", "device:=cpu"]
