#!/usr/bin/env python3
"""Build the project's ROS 2 interface packages into a venv that holds the PyPI ROS wheels.

Builds, with CMake against the pip-installed ament/rosidl wheels:
  * tf2_msgs, vision_msgs and std_srvs (Trigger only) from ``interfaces/`` (field-for-field
    rebuilds with upstream's type hashes), skipped when a ROS 2 install on AMENT_PREFIX_PATH
    already provides them;
  * cad_perception_ros's own messages (``msg/``) from the top-level CMakeLists.txt.

The generated Python of ``cad_perception_ros.msg`` is moved to a side directory on a .pth
path, so it merges into the core package (``pkgutil.extend_path``) instead of shadowing it.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED_DIR = "_cad_perception_ros_generated"
# Build-host paths baked into the wheels' CMake export files (see README, "Environment").
_HOST_PY_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
_HOST_NUMPY_INCLUDE = re.compile(r"/opt/python/[^;\"\s]*/site-packages/numpy/_core/include")


def venv_python_paths(venv: Path) -> tuple[str, str, Path]:
    """Ask the venv interpreter for its include dir, numpy include dir and site-packages."""
    code = ("import sysconfig, numpy; print(sysconfig.get_paths()['include']); "
            "print(numpy.get_include()); print(sysconfig.get_paths()['purelib'])")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True,
                         capture_output=True, text=True, env=_clean_env()).stdout.split("\n")
    return out[0], out[1], Path(out[2])


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    return env


def patch_cmake_exports(venv: Path, py_include: str, np_include: str) -> int:
    """Rewrite build-host include dirs in $VENV/share/*/cmake/*.cmake. Returns files changed."""
    changed = 0
    for path in (venv / "share").glob("*/cmake/*.cmake"):
        text = path.read_text(errors="replace")
        new = _HOST_NUMPY_INCLUDE.sub(np_include, _HOST_PY_INCLUDE.sub(py_include, text))
        if new != text:
            path.write_text(new)
            changed += 1
    return changed


def provided_by_system_ros(package: str, venv: Path) -> bool:
    """True when an AMENT_PREFIX_PATH entry outside the venv already has `package`."""
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        if Path(prefix).resolve() != venv.resolve() and (Path(prefix) / "share" / package).is_dir():
            return True
    return False


def cmake_build(source: Path, build: Path, venv: Path, extra: list[str]) -> None:
    """Configure, build and install one ament_cmake package into the venv prefix."""
    env = _clean_env()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(
        filter(None, [str(venv), env.get("AMENT_PREFIX_PATH", "")]))
    configure = ["cmake", "-S", str(source), "-B", str(build), "-G", "Ninja" if shutil.which("ninja") else "Unix Makefiles",
                 f"-DCMAKE_PREFIX_PATH={venv}", f"-DCMAKE_INSTALL_PREFIX={venv}",
                 f"-DPython3_EXECUTABLE={venv / 'bin' / 'python'}", "-DBUILD_TESTING=OFF", *extra]
    for cmd in (configure, ["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2)],
                ["cmake", "--install", str(build)]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
            raise SystemExit(f"build_interfaces: '{' '.join(cmd[:3])} ...' failed for {source.name}")


def relocate_own_messages(site: Path) -> None:
    """Move site-packages/cad_perception_ros (generated msgs) to a side dir on a .pth path."""
    generated = site / "cad_perception_ros"
    target_root = site / GENERATED_DIR
    target = target_root / "cad_perception_ros"
    if generated.is_dir():
        if target.exists():
            shutil.rmtree(target)
        target_root.mkdir(exist_ok=True)
        shutil.move(str(generated), str(target))
    # Sorts after pip's "__editable__" .pth, so the core package is found first.
    (site / "zz_cad_perception_ros_generated.pth").write_text(str(target_root) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv", help="venv holding the ROS 2 wheels (default: %(default)s)")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "interfaces", help="CMake build folder (default: %(default)s)")
    args = parser.parse_args(argv)
    venv = args.venv.resolve()
    if not (venv / "bin" / "python").exists():
        raise SystemExit(f"build_interfaces: no venv at {venv}; run scripts/setup_env.sh first")
    py_include, np_include, site = venv_python_paths(venv)
    print(f"[interfaces] patched {patch_cmake_exports(venv, py_include, np_include)} CMake export files", file=sys.stderr)
    for package in ("tf2_msgs", "vision_msgs", "std_srvs"):
        if provided_by_system_ros(package, venv):
            print(f"[interfaces] {package}: provided by the ROS 2 install, not building", file=sys.stderr)
            continue
        print(f"[interfaces] building {package}", file=sys.stderr)
        cmake_build(ROOT / "interfaces" / package, args.build_dir / package, venv, [])
    print("[interfaces] building cad_perception_ros messages", file=sys.stderr)
    cmake_build(ROOT, args.build_dir / "cad_perception_ros", venv, ["-DCAD_PERCEPTION_INTERFACES_ONLY=ON"])
    relocate_own_messages(site)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
