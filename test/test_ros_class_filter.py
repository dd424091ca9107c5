"""class_filter is checked against the LOADED model's classes: configure fails (node alive,
unconfigured, the reason names the model's classes) for a class the model lacks, and a runtime
change to such a class is refused; a model with its own class list (not Scan2CAD's) works."""
from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(90)]
rclpy = pytest.importorskip("rclpy")


def fixture_with_classes(path, classes):
    import json

    from cad_perception_ros.ros.aligners import write_fixture
    write_fixture(path)
    data = json.loads(path.read_text())
    data["class_names"] = list(classes)
    path.write_text(json.dumps(data))
    return path


def wait_log(path, text: str, proc, timeout: float = 40.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = path.read_text()
        if text in log:
            return log
        assert proc.poll() is None, log
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the node log:\n{path.read_text()[-3000:]}")


def test_class_filter_unknown_to_the_model_fails_configure(tmp_path, dds_env, unique_domain_id, start_node, stop_process):
    fixture = fixture_with_classes(tmp_path / "fixture.json", ["mug", "kettle"])
    env = dds_env(unique_domain_id(81))
    proc = start_node(env, ["-r", "__ns:=/cf1", "-p", f"model:=fixture:{fixture}", "-p", "class_filter:=chair"],
                      tmp_path / "node.log")
    try:
        log = wait_log(tmp_path / "node.log", "configure failed", proc)
        assert "not among the loaded model's classes" in log and "'mug', 'kettle'" in log
        assert proc.poll() is None  # the node stays up, unconfigured
    finally:
        stop_process(proc)


def test_runtime_class_filter_checked_against_the_model(tmp_path, apply_env, dds_env, spin_until, start_node, stop_process, unique_domain_id):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.executors import SingleThreadedExecutor
    fixture = fixture_with_classes(tmp_path / "fixture.json", ["mug", "kettle"])
    env = dds_env(unique_domain_id(82))
    apply_env(env)
    proc = start_node(env, ["-r", "__ns:=/cf2", "-p", f"model:=fixture:{fixture}", "-p", "class_filter:=mug"],
                      tmp_path / "node.log")
    rclpy.init()
    try:
        wait_log(tmp_path / "node.log", "configured: model", proc)
        node = rclpy.create_node("class_filter_client")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        client = node.create_client(SetParameters, "/cf2/cad_perception/set_parameters")
        spin_until(executor, client.service_is_ready, 20.0, "set_parameters")

        def set_filter(value: str):
            future = client.call_async(SetParameters.Request(parameters=[Parameter(name="class_filter", value=ParameterValue(
                type=ParameterType.PARAMETER_STRING, string_value=value))]))
            spin_until(executor, future.done, 10.0, "set_parameters reply")
            return future.result().results[0]

        refused = set_filter("chair")  # a Scan2CAD class, but not this model's
        assert not refused.successful and "mug" in refused.reason
        assert set_filter("kettle,mug").successful
        node.destroy_node()
    finally:
        stop_process(proc)
        rclpy.try_shutdown()
