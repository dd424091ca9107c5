"""launch/cad_perception.launch.py: every node parameter is a launch argument, plus use_sim_time,
and a value given on the command line reaches the node.

The `launch` / `launch_ros` packages are not installable here, so the test runs the real launch
file against a minimal fake of the parts of their API it uses (DeclareLaunchArgument,
LaunchConfiguration.perform, OpaqueFunction, Node / LifecycleNode keyword arguments), resolves
the arguments as `ros2 launch ... name:=value` does (declared default, overridden by the command
line), and then starts the real node with the command line launch_ros builds from those Node
arguments (executable arguments, `--ros-args`, node name and namespace remaps, one
`--params-file` per parameters entry, a dict written to a `/**: ros__parameters` YAML file as
launch_ros does, topic remaps). The node's parameters are read back over its GetParameters service.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from cad_perception_ros.ros.params import NodeParams

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "cad_perception.launch.py"


class Recorded:
    """Stands in for a launch action: keeps its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class FakeLaunchConfiguration:
    def __init__(self, name: str):
        self.name = name

    def perform(self, context) -> str:
        return context.launch_configurations[self.name]


def fake_modules() -> dict[str, types.ModuleType]:
    mods = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions",
        "ament_index_python", "ament_index_python.packages")}
    mods["launch"].LaunchDescription = type("LaunchDescription", (Recorded,), {})
    mods["launch.actions"].DeclareLaunchArgument = type("DeclareLaunchArgument", (Recorded,), {})
    mods["launch.actions"].OpaqueFunction = type("OpaqueFunction", (Recorded,), {})
    mods["launch.substitutions"].LaunchConfiguration = FakeLaunchConfiguration
    mods["launch_ros.actions"].Node = type("Node", (Recorded,), {})
    mods["launch_ros.actions"].LifecycleNode = type("LifecycleNode", (Recorded,), {})
    mods["ament_index_python.packages"].get_package_share_directory = lambda package: str(ROOT)
    return mods


def load_launch(monkeypatch):
    for name, module in fake_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("cad_perception_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolve(module, cli: dict[str, str]):
    """What `ros2 launch cad_perception_ros cad_perception.launch.py k:=v ...` would start:
    (declared arguments {name: default}, the node actions)."""
    description = module.generate_launch_description()
    declared = {a.args[0]: a.kwargs["default_value"] for a in description.args[0]
                if type(a).__name__ == "DeclareLaunchArgument"}
    unknown = set(cli) - set(declared)
    assert not unknown, f"not launch arguments: {unknown}"
    context = types.SimpleNamespace(launch_configurations={**declared, **cli})
    (opaque,) = [a for a in description.args[0] if type(a).__name__ == "OpaqueFunction"]
    return declared, opaque.kwargs["function"](context)


def test_every_node_parameter_and_use_sim_time_is_a_launch_argument(monkeypatch):
    module = load_launch(monkeypatch)
    declared, (node,) = resolve(module, {})
    names = {f.name for f in dataclasses.fields(NodeParams)}
    assert names | {"use_sim_time", "params_file", "namespace", "image", "camera_info"} == set(declared)
    # Nothing given: the node gets the params file and only use_sim_time (+ autostart) on top.
    params_file, overrides = node.kwargs["parameters"]
    assert Path(params_file) == ROOT / "config" / "cad_perception.yaml"
    assert overrides == {"use_sim_time": False, "autostart": True}
    assert type(node).__name__ == "Node" and node.kwargs["arguments"] == ["--autostart"]


def test_command_line_values_are_typed_and_lifecycle_mode(monkeypatch):
    module = load_launch(monkeypatch)
    _, (node,) = resolve(module, {"score_threshold": "0.3", "max_objects": "7", "publish_tf": "false",
                                  "class_filter": "chair,table", "autostart": "false", "use_sim_time": "true"})
    overrides = node.kwargs["parameters"][1]
    assert overrides == {"use_sim_time": True, "score_threshold": 0.3, "max_objects": 7, "publish_tf": False,
                         "class_filter": "chair,table", "autostart": False}
    assert type(node).__name__ == "LifecycleNode"
    with pytest.raises(ValueError, match="max_objects"):
        resolve(module, {"max_objects": "many"})


def ros_command(node, tmp_path: Path) -> list[str]:
    """The command line launch_ros builds for a Node action (see the module docstring)."""
    kw = node.kwargs
    cmd = [sys.executable, "-m", "cad_perception_ros.ros.node", *kw.get("arguments", []), "--ros-args",
           "-r", f"__node:={kw['name']}"]
    if kw["namespace"]:
        cmd += ["-r", f"__ns:={kw['namespace'] if kw['namespace'].startswith('/') else '/' + kw['namespace']}"]
    for i, entry in enumerate(kw["parameters"]):
        if isinstance(entry, dict):
            path = tmp_path / f"launch_params_{i}.yaml"
            path.write_text(yaml.safe_dump({"/**": {"ros__parameters": entry}}))
            entry = str(path)
        cmd += ["--params-file", str(entry)]
    for src, dst in kw["remappings"]:
        cmd += ["-r", f"{src}:={dst}"]
    return cmd


@pytest.mark.ros
@pytest.mark.timeout(90)
def test_launch_argument_reaches_the_running_node(monkeypatch, tmp_path, apply_env, dds_env, spin_until, stop_process,
                                                 unique_domain_id):
    rclpy = pytest.importorskip("rclpy")
    import subprocess

    from cad_perception_ros.ros.aligners import write_fixture

    fixture = write_fixture(tmp_path / "fixture.json")
    module = load_launch(monkeypatch)
    _, (node,) = resolve(module, {"score_threshold": "0.3", "use_sim_time": "true", "namespace": "lt",
                                  "model": f"fixture:{fixture}", "tf_prefix": "obj_"})
    for name in ("launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions",
                 "ament_index_python", "ament_index_python.packages"):
        monkeypatch.delitem(sys.modules, name)  # the real ament_index_python for rclpy
    env = dds_env(unique_domain_id(41))
    apply_env(env)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    log = open(tmp_path / "node.log", "w")
    proc = subprocess.Popen(ros_command(node, tmp_path), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
    rclpy.init()
    try:
        from rcl_interfaces.srv import GetParameters
        from rclpy.executors import SingleThreadedExecutor
        client_node = rclpy.create_node("launch_param_reader")
        executor = SingleThreadedExecutor()
        executor.add_node(client_node)
        client = client_node.create_client(GetParameters, "/lt/cad_perception/get_parameters")
        spin_until(executor, lambda: client.service_is_ready() or proc.poll() is not None, 40.0, "the node's parameter service")
        assert proc.poll() is None, (tmp_path / "node.log").read_text()
        future = client.call_async(GetParameters.Request(names=["score_threshold", "use_sim_time", "tf_prefix", "max_objects"]))
        spin_until(executor, future.done, 20.0, "GetParameters reply")
        values = future.result().values
        assert values[0].double_value == pytest.approx(0.3)  # was silently 0.5 before
        assert values[1].bool_value is True
        assert values[2].string_value == "obj_"
        assert values[3].integer_value == NodeParams().max_objects  # from the params file
        client_node.destroy_node()
    finally:
        stop_process(proc)
        log.close()
        rclpy.try_shutdown()
