"""`map-eval` and the replay behind it: ground truth replayed through the TF buffer and the object
map scores 100 % with no identity switch; the command runs on simulated and on stored predictions."""
import json

import numpy as np
import pytest

pytest.importorskip("pybullet")

from cad_perception_ros.cli.main import main  # noqa: E402
from cad_perception_ros.data.dataset import SyntheticDataset  # noqa: E402
from cad_perception_ros.data.generate import GenerateConfig, generate_split  # noqa: E402
from cad_perception_ros.evaluation.map_replay import ReplayView, count_switches, evaluate_map, replay  # noqa: E402
from cad_perception_ros.evaluation.scene import SceneFrame, scene_objects_from_frames  # noqa: E402
from cad_perception_ros.mapping.predictions_io import read_predictions, write_predictions  # noqa: E402
from cad_perception_ros.types import SCAN2CAD_CLASSES, CadPrediction  # noqa: E402


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory, procedural_db_dir):
    root = tmp_path_factory.mktemp("map_data")
    config = GenerateConfig(split="val", scenes=2, views_per_scene=3, seed=5, image_size=(120, 160))
    generate_split(root, config, db_dir=procedural_db_dir(), workers=1, progress=False)
    return root


def oracle(sample) -> list[CadPrediction]:
    return [CadPrediction(class_id=o.class_id, class_name=SCAN2CAD_CLASSES[o.class_id], score=0.9,
                          box_xyxy=o.box_xyxy, alignment=o.alignment, cad_id=o.cad_id) for o in sample.objects]


def test_count_switches():
    assert count_switches([{0: 5, 1: 6}, {0: 5}, {0: 7, 1: 6}, {1: 8}]) == 2


def test_ground_truth_replayed_gives_one_object_each_and_full_accuracy(tiny_root):
    dataset = SyntheticDataset(tiny_root, "val")
    samples = [dataset[i] for i in range(len(dataset))]
    frames = [SceneFrame(s.scene_id, s.camera_to_world, oracle(s), s.objects) for s in samples]
    assert len({s.scene_id for s in samples}) == 2 and any(not np.allclose(s.camera_to_world, np.eye(4)) for s in samples)
    replayed = replay([ReplayView(f, s.K, s.size) for f, s in zip(frames, samples)])
    truth = scene_objects_from_frames(frames)
    assert {k: len(v) for k, v in replayed.maps.items()} == {k: len(v) for k, v in truth.items()}
    assert replayed.map_switches == 0 and replayed.matched_observations > 0
    results = evaluate_map(replayed, frames)
    assert results.num_units == 2 and results.instance_average("alignment_accuracy") == 100.0


def test_command_on_simulated_and_on_stored_predictions(tiny_root, tmp_path, capsys):
    out = tmp_path / "sim.json"
    assert main(["map-eval", "--data", str(tiny_root), "--limit", "6", "--simulate", "--seed", "1", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["views"] == 6 and summary["scenes"] == 2
    assert {"image", "scene", "map"} <= set(summary) and 0.0 <= summary["map"]["instance_alignment_accuracy"] <= 100.0
    assert "fused map" in capsys.readouterr().out
    dataset = SyntheticDataset(tiny_root, "val")
    stored = tmp_path / "preds.json"
    write_predictions(stored, [oracle(dataset[i]) for i in range(len(dataset))], model="oracle", data="tiny", split="val")
    assert read_predictions(stored)["views"][0][0].cad_id == dataset[0].objects[0].cad_id
    out = tmp_path / "stored.json"
    assert main(["map-eval", "--data", str(tiny_root), "--predictions", str(stored), "--json", str(out)]) == 0
    stored_summary = json.loads(out.read_text())
    assert stored_summary["source"] == "model oracle" and stored_summary["map"]["instance_alignment_accuracy"] == 100.0
    assert stored_summary["identity_switches"]["map"] == 0
    before = out.read_bytes()
    assert main(["map-eval", "--data", str(tiny_root), "--simulate", "--json", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before  # the report is kept
    assert main(["map-eval", "--data", str(tiny_root), "--predictions", str(stored), "--model-dir", str(tmp_path),
                 "--json", str(out), "--overwrite"]) == 2  # no meta.json there: a clear error, not a traceback
    assert "meta.json" in capsys.readouterr().err
