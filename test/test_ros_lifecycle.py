"""Lifecycle of the node driven from another process through its services (lifecycle_msgs
ChangeState / GetState, rcl_interfaces SetParameters): a configure failure on a missing model
dir leaves the node alive and unconfigured; after setting model_dir it configures; activate ->
outputs, deactivate -> none, activate again -> outputs, cleanup -> unconfigured -> configure."""
from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(120)]
rclpy = pytest.importorskip("rclpy")

NS, CAM = "/cp_life", "/cam_life"
NODE = f"{NS}/cad_perception"


class LifecycleClient:
    def __init__(self, client):
        """client: a conftest CameraClient."""
        from lifecycle_msgs.srv import ChangeState, GetState
        from rcl_interfaces.srv import SetParameters
        self.client = client
        node = client.node
        self.change = node.create_client(ChangeState, f"{NODE}/change_state")
        self.get = node.create_client(GetState, f"{NODE}/get_state")
        self.set_params = node.create_client(SetParameters, f"{NODE}/set_parameters")

    def call(self, service, request, timeout: float = 30.0, retry_s: float | None = None):
        """The reply to `request`. retry_s (idempotent requests only): send it again that often,
        since a request made just after discovery can lose its reply (the server's reply writer
        not yet matched with our reader), so one send could wait forever."""
        client = self.client
        client.spin_until(lambda: service.service_is_ready(), timeout, f"service {service.srv_name}")
        start = time.monotonic()
        futures = [service.call_async(request)]
        while not any(f.done() for f in futures):
            waited = time.monotonic() - start
            if waited > timeout:
                raise AssertionError(f"timed out after {timeout} s waiting for reply of {service.srv_name}")
            if retry_s is not None and waited > retry_s * len(futures):
                futures.append(service.call_async(request))
            client.executor.spin_once(timeout_sec=0.02)
        return next(f for f in futures if f.done()).result()

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState
        return self.call(self.get, GetState.Request(), retry_s=3.0).current_state.label

    def transition(self, transition_id: int) -> bool:
        from lifecycle_msgs.srv import ChangeState
        request = ChangeState.Request()
        request.transition.id = transition_id
        return self.call(self.change, request).success

    def set_string(self, name: str, value: str):
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters
        value_msg = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        request = SetParameters.Request(parameters=[Parameter(name=name, value=value_msg)])
        return self.call(self.set_params, request).results[0]


def test_lifecycle_transitions_and_configure_failure(tmp_path, CameraClient, apply_env, dds_env, start_node, stop_process, tiny_model_and_views, unique_domain_id):
    from lifecycle_msgs.msg import Transition as T
    model_dir, _, dataset = tiny_model_and_views(tmp_path, views=1)
    image, K = dataset[0].image, dataset[0].K
    env = dds_env(unique_domain_id(5))
    apply_env(env)
    log = tmp_path / "node.log"
    proc = start_node(env, ["-r", f"__ns:={NS}", "-p", f"model_dir:={tmp_path / 'no_such_model'}",
                            "-p", "score_threshold:=0.0", "-p", f"image_topic:={CAM}/image",
                            "-p", f"camera_info_topic:={CAM}/camera_info", "-p", "qos_reliability:=reliable"],
                      log, autostart=False)
    rclpy.init()
    try:
        client = CameraClient(rclpy, camera=CAM, out_ns=NODE)
        life = LifecycleClient(client)
        assert life.state() == "unconfigured"
        assert life.transition(T.TRANSITION_CONFIGURE) is False  # missing model dir: FAILURE
        assert proc.poll() is None and life.state() == "unconfigured"
        assert "no_such_model" in log.read_text() and "no meta.json" in log.read_text()
        assert life.set_string("model_dir", str(model_dir)).successful
        assert life.transition(T.TRANSITION_CONFIGURE) and life.state() == "inactive"
        refused = life.set_string("model_dir", str(tmp_path))  # model params are locked while configured
        assert not refused.successful and "unconfigured" in refused.reason

        assert life.transition(T.TRANSITION_ACTIVATE) and life.state() == "active"
        client.wait_connected(proc=proc)
        client.serve(image, K, outputs=("alignments", "detections", "tf"))

        assert life.transition(T.TRANSITION_DEACTIVATE) and life.state() == "inactive"
        client.spin_until(lambda: client.image_pub.get_subscription_count() == 0, 10.0, "the node to unsubscribe")
        before = {name: len(msgs) for name, msgs in client.got.items()}
        for _ in range(3):
            client.publish(image, K)
        end = time.monotonic() + 1.5  # a negative check needs a window: nothing may arrive in it
        while time.monotonic() < end:
            client.executor.spin_once(timeout_sec=0.05)
        assert {name: len(msgs) for name, msgs in client.got.items()} == before

        assert life.transition(T.TRANSITION_ACTIVATE) and life.state() == "active"
        client.wait_connected(proc=proc)
        stamp = client.serve(image, K, outputs=("alignments", "poses"))
        assert len(client.by_stamp("alignments", stamp).objects) > 0

        assert life.transition(T.TRANSITION_DEACTIVATE)
        assert life.transition(T.TRANSITION_CLEANUP) and life.state() == "unconfigured"
        assert life.transition(T.TRANSITION_CONFIGURE) and life.state() == "inactive"
        assert proc.poll() is None
    finally:
        stop_process(proc)
        rclpy.try_shutdown()
