"""The GPU scripts' command lines (their GPU phases run only on a CUDA machine): --help, and clear
refusals of bad arguments before any work."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script, *args, cwd=None):
    return subprocess.run(["bash", str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


@pytest.mark.parametrize("script, first_line, last_words", [
    ("gpu_check.sh", "The CUDA paths of cad_perception_ros", "benchmark tables and pictures, loss curves)."),
    ("gpu_train.sh", "A time-boxed ROCA training stage on a GPU machine", "evaluation tables and pictures)."),
])
def test_help_prints_the_header_and_nothing_else(script, first_line, last_words):
    result = _run(script, "--help")
    assert result.returncode == 0 and result.stdout.startswith(first_line)
    assert "set -uo" not in result.stdout and "#" not in result.stdout.splitlines()[0]
    assert result.stdout.rstrip().endswith(last_words)  # the whole header, up to its last line


@pytest.mark.parametrize("script, args, message", [
    ("gpu_check.sh", [], "--data DATA is required"),
    ("gpu_check.sh", ["--colour", "red"], "unknown argument --colour"),
    ("gpu_train.sh", [], "--out DIR is required"),
    ("gpu_train.sh", ["--out", "x", "--shading", "shiny"], "--shading must be pybullet or flat"),
    ("gpu_train.sh", ["--out", "x", "--config", "config/none.yaml"], "no config config/none.yaml"),
    ("gpu_train.sh", ["--colour", "red"], "unknown argument --colour"),
    ("gpu_train.sh", ["--out", "x", "--init-from", "nowhere"], "--init-from nowhere has no model.safetensors"),
])
def test_bad_arguments_are_refused_before_any_work(script, args, message, tmp_path):
    result = _run(script, *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert list(tmp_path.iterdir()) == [] and not (ROOT / "x").exists()  # nothing written (the scripts cd to ROOT)
