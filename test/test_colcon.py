"""The package as a robot user builds it: real `colcon build` of this repository in a fresh
workspace (colcon's default isolated layout: install/cad_perception_ros/ is the package's
prefix), the INSTALLED node (<prefix>/lib/cad_perception_ros/cad_perception_node after
`source install/setup.bash`, run from a directory outside the checkout) with a 640x480 camera
stream in and alignments out, its bundled model and CAD database found in install/share, and
`colcon test` running the pytest suite (a small selection, set at configure time).

`ros2 run` / `ros2 launch` are not installable here (no ros2cli, no launch); `ros2 run` runs
exactly that executable, so the test starts it directly.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLCON = Path(os.environ.get("CAD_PERCEPTION_COLCON_VENV", ROOT / ".venv-colcon")) / "bin" / "colcon"
PACKAGE = "cad_perception_ros"


def project_venv() -> Path:
    """The venv holding the ROS 2 wheels (this interpreter's prefix)."""
    return Path(sys.prefix)


def build_env() -> dict[str, str]:
    """Environment of a shell with 'the ROS 2 install' (the project venv) set up, as a user has it
    after sourcing their ROS setup: venv bin on PATH, its prefix on AMENT/CMAKE_PREFIX_PATH."""
    venv = project_venv()
    env = {k: v for k, v in os.environ.items() if k not in ("_ROS_WHEELS_BOOTSTRAP_COMPLETE", "PYTHONPATH",
                                                              "AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH",
                                                              "COLCON_PREFIX_PATH")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), str(COLCON.parent), env.get("PATH", "")])
    env["AMENT_PREFIX_PATH"] = env["CMAKE_PREFIX_PATH"] = str(venv)
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    return env


def copy_sources(dest: Path) -> Path:
    """The repository's files (tracked and untracked, not ignored) under dest/src/cad_perception_ros."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    pkg = dest / "src" / PACKAGE
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, pkg / rel)
    return pkg


def colcon(ws: Path, *args: str, log: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run colcon in the workspace; stdout+stderr go to `log`; raises AssertionError on failure."""
    with open(log, "a") as out:
        result = subprocess.run([str(COLCON), *args], cwd=ws, env=build_env(), stdout=out, stderr=subprocess.STDOUT,
                                timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"colcon {' '.join(args)} failed (rc {result.returncode}):\n" + log.read_text()[-6000:])
    return result


def installed_env(ws: Path) -> dict[str, str]:
    """The environment after `source install/setup.bash` in a shell that had build_env()."""
    script = f"source '{ws / 'install' / 'setup.bash'}' && env -0"
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, env=build_env()).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)

pytestmark = [pytest.mark.slow, pytest.mark.ros, pytest.mark.timeout(1200)]
rclpy = pytest.importorskip("rclpy")

# What `colcon test` runs here (the whole suite is the default when this is empty).
COLCON_TEST_SELECTION = "test/test_tracking.py test/test_package_xml.py test/test_rviz_config.py"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    if os.environ.get("CAD_PERCEPTION_IN_COLCON_TEST"):
        pytest.skip("inside `colcon test` of a workspace this test built: no nested colcon build")
    if not COLCON.exists():
        pytest.fail(f"colcon not found at {COLCON}: run scripts/setup_env.sh (it installs .venv-colcon/)")
    ws = tmp_path_factory.mktemp("colcon_ws")
    copy_sources(ws)
    t0 = time.monotonic()
    colcon(ws, "build", "--packages-select", PACKAGE, "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}",
           "-DBUILD_TESTING=ON", f"-DCAD_PERCEPTION_PYTEST_ARGS={COLCON_TEST_SELECTION}", log=ws / "colcon_build.log")
    print(f"\ncolcon build: {time.monotonic() - t0:.1f} s")
    return ws


def test_build_installs_node_assets_and_one_python_package(workspace):
    install = workspace / "install" / PACKAGE
    node = install / "lib" / PACKAGE / "cad_perception_node"
    assert node.is_file() and node.stat().st_mode & 0o111
    share = install / "share" / PACKAGE
    for rel in ("package.xml", "launch/cad_perception.launch.py", "config/cad_perception.yaml",
                "config/fastdds_local.xml", "config/cad_perception.rviz", "models/roca/meta.json",
                "models/roca/model.safetensors", "models/roca/crop_model.safetensors", "models/roca/crop_config.yaml",
                "models/cad_db_v2/manifest.json", "models/roca_v1/meta.json", "models/roca_v1/model.safetensors",
                "models/cad_db/manifest.json"):
        assert (share / rel).is_file(), rel
    probe = ("import cad_perception_ros, cad_perception_ros.paths as p, cad_perception_ros.ros.node;"
             "from cad_perception_ros.msg import ObjectAlignmentArray;"
             "import cad_perception_ros.msg as m;"
             "print(cad_perception_ros.ros.node.__file__); print(m.__file__); print(p.asset_root()); print(p.models_dir())")
    out = subprocess.run([sys.executable, "-c", probe], env=installed_env(workspace), cwd=workspace,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    node_module, msg_module, asset_root, models = (Path(line) for line in out[:4])
    site = install / "lib"
    assert node_module.is_relative_to(site) and msg_module.is_relative_to(site), out  # not the checkout
    assert asset_root == share.resolve() and models == share.resolve() / "models"


def test_installed_node_serves_a_640x480_stream_with_its_bundled_model(workspace, tmp_path, CameraClient, apply_env,
                                                                       dds_env, stop_process, unique_domain_id):
    from cad_perception_ros.data.dataset import SyntheticDataset
    from cad_perception_ros.data.generate import GenerateConfig, generate_split

    share = workspace / "install" / PACKAGE / "share" / PACKAGE
    generate_split(tmp_path / "data", GenerateConfig(split="val", scenes=1, views_per_scene=1, image_size=(480, 640)),
                   db_dir=share / "models" / "cad_db", progress=False)
    sample = SyntheticDataset(tmp_path / "data", "val")[0]
    assert sample.image.shape == (480, 640, 3)
    dds = dds_env(unique_domain_id(61))
    apply_env(dds)
    env = {**installed_env(workspace), **{k: dds[k] for k in dds if k.startswith(("ROS_", "FASTDDS_", "RMW_"))}}
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    node_exe = workspace / "install" / PACKAGE / "lib" / PACKAGE / "cad_perception_node"
    log = open(tmp_path / "node.log", "w")
    proc = subprocess.Popen([str(node_exe), "--autostart", "--ros-args", "-r", "__ns:=/inst",
                             "-p", "image_topic:=/cam_inst/image", "-p", "camera_info_topic:=/cam_inst/camera_info",
                             "-p", "score_threshold:=0.05"],
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    try:
        client = CameraClient(rclpy, camera="/cam_inst", out_ns="/inst/cad_perception")
        client.wait_connected(timeout=120.0, proc=proc)
        stamp = client.serve(sample.image, sample.K, outputs=("alignments", "detections", "markers"), timeout=60.0)
        alignments = client.by_stamp("alignments", stamp)
        assert alignments.header.frame_id == "cam_optical"
        assert alignments.model, "the bundled model names itself"
        assert len(alignments.objects) > 0, "the bundled model finds objects at score_threshold 0.05"
        meshes = [m.mesh_resource for m in client.by_stamp("markers", stamp).markers if m.ns == "cad_mesh" and m.mesh_resource]
        # the default model (ROCA v2) retrieves from the database its meta.json names, models/cad_db_v2
        assert meshes and all(u.startswith(f"package://{PACKAGE}/models/cad_db_v2/") for u in meshes), meshes
        ids = [d.id for d in client.by_stamp("detections", stamp).detections]
        assert len(set(ids)) == len(ids)  # one id per object
        client.node.destroy_node()
    finally:
        stop_process(proc)
        log.close()
        rclpy.try_shutdown()
    text = (tmp_path / "node.log").read_text()
    assert "configured: model" in text, text[-3000:]


def test_colcon_test_runs_pytest(workspace):
    t0 = time.monotonic()
    colcon(workspace, "test", "--packages-select", PACKAGE, log=workspace / "colcon_test.log")
    print(f"\ncolcon test ({COLCON_TEST_SELECTION}): {time.monotonic() - t0:.1f} s")
    report = workspace / "build" / PACKAGE / "test_results" / PACKAGE / "pytest.xml"
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert int(suite.get("tests")) >= 5 and int(suite.get("failures")) == 0 and int(suite.get("errors")) == 0
    names = {case.get("classname", "") for case in suite.iter("testcase")}
    assert any("test_tracking" in n for n in names)
    colcon(workspace, "test-result", "--all", log=workspace / "colcon_test.log")
