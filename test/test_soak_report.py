"""The soak's figures and verdict (ROS-free) and its clear exit without a model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cad_perception_ros.tools.soak_report import SoakBounds, summarize, windows, write_files


def run(rss_growth_mb=0.0, latency_late_ms=30.0, duration=120):
    samples = [{"t_s": float(t), "rss_mb": 100.0 + rss_growth_mb * t / duration, "frames_in": 30 * t,
                "frames_out": 29 * t, "node_received": 30 * t, "node_processed": 29 * t, "frames_dropped": t,
                "errors": 0, "rejected": 0, "latency_p50_ms": 30.0, "latency_p95_ms": 40.0} for t in range(1, duration + 1)]
    t = np.arange(0, duration, 1 / 29)
    lat = np.where(t > duration - 30, latency_late_ms, 30.0) + np.random.default_rng(0).uniform(-1, 1, t.size)
    return samples, np.stack([t, lat], 1)


def test_windows_are_capped_for_short_runs():
    assert windows(600, 30, 60) == (30, (30, 90), (540, 600))
    assert windows(120, 30, 60) == (30, (30, 60), (90, 120))
    assert windows(8, 30, 60) == (2, (2, 4), (6, 8))


@pytest.mark.parametrize("growth, late, passed, failed", [(0.0, 30.0, True, None), (80.0, 30.0, False, "memory_growth_ok"),
                                                         (0.0, 60.0, False, "latency_drift_ok")])
def test_verdict(growth, late, passed, failed):
    samples, lat = run(growth, late)
    s = summarize(samples, lat, windows(120, 30, 60), SoakBounds())
    assert s["passed"] is passed and (failed is None or s["checks"][failed] is False)
    assert s["frames_in"] == 3600 and s["frames_dropped"] == 120
    assert s["latency_p50_last_window_ms"] == pytest.approx(late, abs=1.0)


def test_files_are_written(tmp_path):
    samples, lat = run()
    summary = summarize(samples, lat, windows(120, 30, 60), SoakBounds())
    paths = write_files(tmp_path, samples, lat, summary)
    assert all(p.stat().st_size > 0 for p in paths)
    assert json.loads((tmp_path / "summary.json").read_text())["rss_growth_mb"] == pytest.approx(0.0, abs=1e-9)
    assert (tmp_path / "samples.csv").read_text().count("\n") == 121


def test_soak_without_a_model_says_so(tmp_path, capsys):
    from cad_perception_ros.cli import main
    assert main(["soak", "--model-dir", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    assert "no trained model at" in capsys.readouterr().err
