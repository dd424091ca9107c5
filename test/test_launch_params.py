"""The YAML params file and NodeParams agree on every default; the launcher builds the node
command line. The launch file's argument -> parameter wiring: test_launch_file.py."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import yaml

from cad_perception_ros.cli.launch import add_arguments, node_command
from cad_perception_ros.ros.params import DESCRIPTIONS, RANGES, NodeParams

ROOT = Path(__file__).resolve().parents[1]


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


def test_launcher_command_line():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cmd = node_command(parser.parse_args(["--namespace", "perception", "--remap", "image:=/cam/image_raw",
                                          "--param", "device:=cpu"]))
    assert cmd[1:4] == ["-m", "cad_perception_ros.ros.node", "--autostart"]
    i = cmd.index("--ros-args")
    assert cmd[i + 1:i + 3] == ["--params-file", str(ROOT / "config/cad_perception.yaml")]
    assert cmd[i + 3:] == ["-r", "__ns:=/perception", "-r", "image:=/cam/image_raw", "-p", "device:=cpu"]
