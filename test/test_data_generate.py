"""Generation: determinism across worker counts, resume, CLI generate/show, dataset, transforms."""
import hashlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pybullet")


from cad_perception_ros.cli import main  # noqa: E402
from cad_perception_ros.data.benchmark import BENCHMARKS, get_benchmark  # noqa: E402
from cad_perception_ros.data.dataset import SyntheticDataset  # noqa: E402
from cad_perception_ros.data.generate import GenerateConfig, generate_split  # noqa: E402
from cad_perception_ros.data.transforms import color_jitter, resize_sample  # noqa: E402


@pytest.fixture(scope="module")
def db_dir(procedural_db_dir):
    return procedural_db_dir()


def _digest(root: Path) -> dict:
    skip = ("parts", "dataset_info")
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not str(p.relative_to(root)).startswith(skip)}


@pytest.mark.slow
def test_cli_generate_is_deterministic_resumable_and_shows(db_dir, tmp_path):
    args = ["data", "generate", "--scenes", "2", "--seed", "5", "--views-per-scene", "2", "--size", "160x120",
            "--split", "val", "--db", str(db_dir)]
    assert main(args + ["--out", str(tmp_path / "a"), "--workers", "2"]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--workers", "1"]) == 0
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert len(a) > 10 and a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    # resume: a finished split renders nothing; a deleted scene is re-rendered identically
    config = GenerateConfig(split="val", scenes=2, seed=5, views_per_scene=2, image_size=(120, 160))
    assert generate_split(tmp_path / "a", config, db_dir=db_dir, progress=False) == 0
    (tmp_path / "a" / "parts" / "val" / "val_00001.json").unlink()
    assert generate_split(tmp_path / "a", config, db_dir=db_dir, progress=False) == 1
    assert _digest(tmp_path / "a") == a
    # a different data set in the same directory is refused
    other = GenerateConfig(split="val", scenes=3, seed=6, views_per_scene=2, image_size=(120, 160))
    with pytest.raises(ValueError, match="different"):
        generate_split(tmp_path / "a", other, db_dir=db_dir, progress=False)

    dataset = SyntheticDataset(tmp_path / "a", "val")
    assert len(dataset) == 4 and dataset[0].size == (120, 160)
    assert sum(len(s.objects) for s in dataset) >= 2
    out = tmp_path / "grid.png"
    assert main(["data", "show", "--data", str(tmp_path / "a"), "--split", "val", "--out", str(out), "--n", "4"]) == 0
    from PIL import Image

    grid = np.asarray(Image.open(out))
    assert grid.shape[1] == 960 and grid.std() > 10
    assert main(["data", "show", "--data", str(tmp_path / "a"), "--split", "val", "--out", str(out)]) == 2


def test_cli_generate_focal_sets_the_lens_and_is_recorded(db_dir, tmp_path):
    """--focal 0.6 (a wide-angle camera): every view's fx = fy = 0.6 x width, the data set's info
    records it (a resume with another lens is refused); without --focal the info has no such key."""
    import json

    args = ["data", "generate", "--scenes", "1", "--seed", "5", "--views-per-scene", "2", "--size", "160x120",
            "--split", "val", "--db", str(db_dir), "--workers", "1"]
    assert main(args + ["--out", str(tmp_path / "wide"), "--focal", "0.6"]) == 0
    views = SyntheticDataset(tmp_path / "wide", "val")
    assert len(views) == 2 and all(s.K[0, 0] == pytest.approx(96.0) == s.K[1, 1] for s in views)
    info = json.loads((tmp_path / "wide" / "dataset_info_val.json").read_text())
    assert info["focal_factor"] == [0.6, 0.6]
    assert main(args + ["--out", str(tmp_path / "wide"), "--focal", "1.4-1.7"]) != 0  # different data set
    assert main(args + ["--out", str(tmp_path / "plain")]) == 0
    assert "focal_factor" not in json.loads((tmp_path / "plain" / "dataset_info_val.json").read_text())
    with pytest.raises(SystemExit):
        main(args + ["--out", str(tmp_path / "bad"), "--focal", "1.7-1.4"])


def test_resize_sample_keeps_projection_consistent(db_dir, tmp_path):
    config = GenerateConfig(split="val", scenes=1, seed=2, views_per_scene=1, image_size=(120, 160))
    generate_split(tmp_path, config, db_dir=db_dir, progress=False)
    sample = SyntheticDataset(tmp_path, "val")[0]
    small = resize_sample(sample, (60, 80))
    assert small.image.shape == (60, 80, 3) and small.instance_map.shape == (60, 80)
    assert np.allclose(small.K[:2, :3], sample.K[:2, :3] / 2) and small.K[2, 2] == 1
    # the centre of output pixel (r, c) sees the same ray as the source pixel (2r+1, 2c+1)'s corner:
    # a source pixel centre (u, v) maps to (u/2, v/2) under both K's
    u, v = 37.5, 21.5
    ray = np.linalg.inv(sample.K) @ [u, v, 1]
    assert np.allclose((small.K @ ray)[:2], [u / 2, v / 2])
    assert set(np.unique(small.instance_map)) <= set(np.unique(sample.instance_map))
    rng = np.random.default_rng(0)
    jittered = color_jitter(sample.image, rng)
    assert jittered.shape == sample.image.shape and jittered.dtype == np.uint8
    assert not np.array_equal(jittered, sample.image)


def test_benchmarks_are_named_and_fixed():
    val = get_benchmark("synthetic-val-v1")
    assert (val.split, val.seed, val.scenes, val.views_per_scene, val.image_size) == ("val", 20261122, 50, 4, (360, 480))
    assert val.generate_config().scenes == 50 and "synthetic-train-v1" in BENCHMARKS
    holdout = get_benchmark("synthetic-holdout-v1")  # other scenes than val's, four times as many views
    assert (holdout.split, holdout.seed, holdout.views) == ("val", 20261201, 800) and holdout.seed != val.seed
    with pytest.raises(ValueError, match="known"):
        get_benchmark("nope")
