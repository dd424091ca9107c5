"""RGB-D on the command line: predict --depth (16-bit PNG, .npy, .exr refused), benchmark --depth,
evaluate --depth sensor with the paired comparison to RGB alone."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cad_perception_ros.cli import main
from cad_perception_ros.cli.predict import load_depth

ROOT = Path(__file__).resolve().parents[1]
H, W = 120, 160


@pytest.fixture()
def photo(tmp_path, make_image):
    path = tmp_path / "photo.png"
    Image.fromarray(make_image(3, H, W)).save(path)
    return path


def _predict(photo, out, *extra):
    return main(["predict", str(photo), "--intrinsics", f"{0.9 * W},{0.9 * W},{W / 2},{H / 2}",
                 "--score-threshold", "0.0", "--out", str(out), *extra])


def test_load_depth_reads_16bit_png_and_npy_and_refuses_exr(tmp_path):
    Image.fromarray(np.full((4, 5), 1500, np.uint16)).save(tmp_path / "d.png")
    np.testing.assert_allclose(load_depth(tmp_path / "d.png"), 1.5, rtol=1e-6)
    np.testing.assert_allclose(load_depth(tmp_path / "d.png", 0.0001), 0.15, rtol=1e-6)
    np.save(tmp_path / "d.npy", np.full((4, 5), 2.5, np.float32))
    assert load_depth(tmp_path / "d.npy").dtype == np.float32
    (tmp_path / "d.exr").write_bytes(b"v/1\x01")
    with pytest.raises(ValueError, match="save the depth as a float32 .npy"):
        load_depth(tmp_path / "d.exr")
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="16-bit single channel"):
        load_depth(tmp_path / "rgb.png")


def test_predict_with_depth_moves_the_objects_to_the_sensor(photo, tmp_path):
    assert _predict(photo, tmp_path / "rgb") == 0
    Image.fromarray(np.full((H, W), 4000, np.uint16)).save(tmp_path / "depth.png")  # a wall 4 m away
    assert _predict(photo, tmp_path / "rgbd", "--depth", str(tmp_path / "depth.png")) == 0
    rgb = json.loads((tmp_path / "rgb" / "photo.json").read_text())
    rgbd = json.loads((tmp_path / "rgbd" / "photo.json").read_text())
    assert rgbd["depth"].endswith("depth.png") and rgb["depth"] is None
    z = [p["translation"][2] for p in rgbd["predictions"]]
    assert len(z) == len(rgb["predictions"]) > 0
    assert np.median(z) == pytest.approx(4.0, abs=0.5)


def test_predict_refuses_bad_depth_with_the_reason(photo, tmp_path):
    np.save(tmp_path / "small.npy", np.ones((10, 10), np.float32))
    with pytest.raises(SystemExit, match="depth is 10x10 but the colour image is 160x120"):
        _predict(photo, tmp_path / "out", "--depth", str(tmp_path / "small.npy"))
    with pytest.raises(SystemExit, match="2 depth file"):
        _predict(photo, tmp_path / "out", "--depth", str(tmp_path / "small.npy"), str(tmp_path / "small.npy"))


def test_benchmark_depth_times_each_case_with_and_without_depth(tmp_path):
    out = tmp_path / "bench"
    assert main(["benchmark", "--model-dir", str(ROOT / "models" / "roca"), "--backends", "torch", "--runs", "1",
                 "--depth", "--out", str(out)]) == 0
    rows = json.loads((out / "benchmark.json").read_text())
    assert [r["depth"] for r in rows] == ["none", "sensor"]
    assert all(r["median_ms"] > 0 for r in rows)


def test_evaluate_depth_sensor_compares_with_rgb_alone(tmp_path, capsys, procedural_db_dir):
    pytest.importorskip("pybullet")
    from cad_perception_ros.data.generate import GenerateConfig, generate_split
    generate_split(tmp_path / "data", GenerateConfig(split="val", scenes=1, views_per_scene=2, seed=3,
                                                     image_size=(H, W)), db_dir=procedural_db_dir(), workers=1,
                   progress=False)
    bundle = str(ROOT / "models" / "roca")  # the bundled default, ROCA v2 (crop network): config name roca_v2
    assert main(["evaluate", "--model-dir", bundle, "--data", str(tmp_path / "data"), "--protocol", "image",
                 "--depth", "sensor", "--compare-with", bundle, "--json", str(tmp_path / "report.json")]) == 0
    text = capsys.readouterr().out
    assert json.loads((tmp_path / "report.json").read_text())["depth"] == "sensor"
    assert "image protocol (roca_v2, depth sensor" in text
    assert "(roca_v2 (RGB alone))" in text
    assert "depth sensor minus roca_v2 (RGB alone): alignment accuracy, paired bootstrap" in text


def test_evaluate_depth_fit_is_paired_with_the_same_depth_and_needs_depth(tmp_path, capsys, procedural_db_dir):
    pytest.importorskip("pybullet")
    from cad_perception_ros.data.generate import GenerateConfig, generate_split
    generate_split(tmp_path / "data", GenerateConfig(split="val", scenes=1, views_per_scene=2, seed=3,
                                                     image_size=(H, W)), db_dir=procedural_db_dir(), workers=1,
                   progress=False)
    bundle = str(ROOT / "models" / "roca")
    args = ["evaluate", "--model-dir", bundle, "--data", str(tmp_path / "data"), "--protocol", "image"]
    assert main([*args, "--depth-fit"]) == 2
    assert "--depth-fit needs --depth" in capsys.readouterr().err
    assert main([*args, "--depth", "sensor", "--depth-fit", "--compare-with", bundle, "--compare-inputs", "same",
                 "--json", str(tmp_path / "report.json")]) == 0
    text = capsys.readouterr().out
    assert json.loads((tmp_path / "report.json").read_text())["depth_fit"] is True
    assert "depth sensor, depth fit minus roca_v2, depth sensor: alignment accuracy, paired bootstrap" in text
