"""Test harness for ROS tests: loopback-only DDS env from scripts/local_dds.sh with a domain id
unique to this run, node subprocesses, a client node in the test process, waits with timeouts."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = str(ROOT / ".venv" / "bin" / "python")  # this checkout's venv (scripts/setup_env.sh)
DDS_KEYS = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE",
            "RMW_IMPLEMENTATION", "ROS_DOMAIN_ID")


def dds_env(domain_id: int) -> dict[str, str]:
    """Environment of scripts/local_dds.sh (the single source of the DDS settings)."""
    script = f"source '{ROOT / 'scripts/local_dds.sh'}' && env -0"
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True,
                         env={**os.environ, "CAD_PERCEPTION_DOMAIN_ID": str(domain_id)}).stdout
    env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def unique_domain_id(offset: int = 0) -> int:
    return 120 + (os.getpid() * 7 + offset) % 100


def apply_env(env: dict[str, str]) -> None:
    """Make this (test) process use the same DDS settings before rclpy.init."""
    for key in DDS_KEYS:
        os.environ[key] = env[key]
    for key in ("ROS_LOCALHOST_ONLY", "ROS_STATIC_PEERS"):
        os.environ.pop(key, None)


def python_executable() -> str:
    return VENV_PYTHON if Path(VENV_PYTHON).exists() else sys.executable


def start_node(env: dict[str, str], ros_args: list[str], log_path: Path, *, autostart: bool = True) -> subprocess.Popen:
    """The node in its own process (plain node with --autostart, else waiting for lifecycle transitions)."""
    child_env = dict(env)
    if python_executable() != sys.executable:
        child_env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    log = open(log_path, "w")
    return subprocess.Popen([python_executable(), "-m", "cad_perception_ros.ros.node",
                             *(["--autostart"] if autostart else []), "--ros-args", *ros_args],
                            env=child_env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(2)  # SIGINT: the node's main() shuts down cleanly
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def spin_until(executor, condition, timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        executor.spin_once(timeout_sec=0.05)


def make_image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def make_K(height: int = 48, width: int = 64) -> np.ndarray:
    return np.array([[60.0, 0.0, width / 2], [0.0, 60.0, height / 2], [0.0, 0.0, 1.0]])
