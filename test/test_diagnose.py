"""`diagnose`: oracle Procrustes solves (NOCs / depth from the model or the truth) and depth shape."""
from pathlib import Path

import numpy as np
import pytest
import torch

from cad_perception_ros.cli import main
from cad_perception_ros.evaluation.oracle import OracleAccumulator, _depth_shape, format_oracle
from cad_perception_ros.model.config import load_experiment
from cad_perception_ros.model.roca.network import RocaNet

ROOT = Path(__file__).resolve().parents[1]


def test_ground_truth_nocs_on_ground_truth_depth_recover_every_pose(make_scene):
    torch.manual_seed(0)
    exp = load_experiment(ROOT / "config" / "roca_tiny.yaml")
    net = RocaNet.from_config(exp.model).eval()
    acc = OracleAccumulator()
    rng = np.random.default_rng(5)
    scenes = [make_scene(rng, size=exp.model.input_size) for _ in range(3)]
    for scene in scenes:
        acc.add(net, scene)
    report = acc.report()
    rows = {(r.nocs, r.depth): r for r in report.rows}
    n = sum(len(s.objects) for s in scenes)
    assert set(rows) == {(a, b) for a in ("predicted", "ground truth") for b in ("predicted", "ground truth")}
    assert all(r.count == n for r in rows.values())
    truth = rows[("ground truth", "ground truth")]
    assert truth.rotation_ok == 100.0 and truth.translation_ok == 100.0 and truth.median_rotation_deg < 1.0
    assert rows[("predicted", "predicted")].rotation_ok < 100.0  # an untrained model is not the truth
    assert "| ground truth | ground truth |" in format_oracle(report)


def test_depth_shape_statistics():
    gt = torch.linspace(2.0, 3.0, 16)[None]
    mask = torch.ones(1, 16)
    (err, corr, slope), = _depth_shape(0.5 * (gt - 2.5) + 2.75, gt, mask)  # half the relief, 10 % far
    assert err == pytest.approx(0.1) and corr == pytest.approx(1.0) and slope == pytest.approx(0.5)
    assert _depth_shape(gt, gt, torch.zeros(1, 16)) == []  # too few pixels: left out


def test_cli_refuses_points2objects_and_an_existing_json(tmp_path, capsys):
    assert main(["diagnose", "--model-dir", str(ROOT / "models" / "points2objects"), "--data", str(tmp_path)]) == 2
    assert "needs ROCA" in capsys.readouterr().err
    existing = tmp_path / "figures.json"
    existing.write_text("{}")
    assert main(["diagnose", "--data", str(tmp_path), "--json", str(existing)]) == 2
    assert "--overwrite" in capsys.readouterr().err and existing.read_text() == "{}"


def test_cli_on_a_generated_split_with_the_bundled_model(tmp_path, capsys, procedural_db_dir):
    pytest.importorskip("pybullet")
    import json

    from cad_perception_ros.data.generate import GenerateConfig, generate_split
    config = GenerateConfig(split="val", scenes=1, views_per_scene=2, seed=3, image_size=(120, 160))
    generate_split(tmp_path / "data", config, db_dir=procedural_db_dir(), workers=1, progress=False)
    out = tmp_path / "figures.json"
    assert main(["diagnose", "--data", str(tmp_path / "data"), "--json", str(out)]) == 0
    assert "| ground truth | ground truth |" in capsys.readouterr().out
    figures = json.loads(out.read_text())
    truth = next(r for r in figures["rows"] if r["nocs"] == r["depth"] == "ground truth")
    assert truth["count"] > 0 and truth["rotation_ok"] >= 90.0  # rendered NOCs and depth agree


@pytest.mark.parametrize("through_alignment", [True, False])
def test_gradient_norms_show_which_losses_reach_the_depth_map(through_alignment, make_cads, make_scene):
    from dataclasses import replace

    from cad_perception_ros.evaluation.gradients import format_gradient_norms, loss_gradient_norms
    from cad_perception_ros.model.roca.targets import collate
    torch.manual_seed(0)
    exp = load_experiment(ROOT / "config" / "roca_tiny.yaml")
    config = replace(exp.model, alignment_depth_gradients=through_alignment)
    net = RocaNet.from_config(config).eval()
    rng = np.random.default_rng(2)
    batches = [collate([make_scene(rng, size=config.input_size) for _ in range(2)], num_classes=config.num_classes,
                       input_size=config.input_size, cads=make_cads()) for _ in range(2)]
    norms = loss_gradient_norms(net, batches)
    assert all(v > 0 for v in norms["depth (berHu + ROI depth)"].values())
    assert (norms["rotation"]["depth output layer"] > 0) == through_alignment
    assert norms["rotation"]["backbone"] > 0  # the shape code still reaches the shared features
    assert format_gradient_norms(norms).count("\n") == 1 + len(norms)
    assert not net.training  # the caller's mode is restored
