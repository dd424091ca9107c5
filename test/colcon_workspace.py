"""A fresh colcon workspace with this repository as its one source package, built with the real
colcon (scripts/setup_env.sh puts colcon-common-extensions into .venv-colcon/) against the ROS 2
wheels of the project venv. Nothing is cached in the repository: the workspace lives in a temp dir.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

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
