"""`ablate`: variants resolved strictly, trained, evaluated, tabulated (tiny model, 3 steps)."""
import json

import pytest
import yaml

pytest.importorskip("pybullet")

from data_fixtures import procedural_db_dir  # noqa: E402

from cad_perception_ros.ablate import variant_experiment  # noqa: E402
from cad_perception_ros.cli import main  # noqa: E402
from cad_perception_ros.config import ConfigError  # noqa: E402
from cad_perception_ros.data.generate import GenerateConfig, generate_split  # noqa: E402
from cad_perception_ros.paths import asset_root  # noqa: E402

TINY = asset_root() / "config" / "roca_tiny.yaml"
VARIANTS = {"direct": {"rotation_mode": "direct", "end_to_end": False, "learned_weights": False,
                       "retrieval_mode": "chamfer", "completion": False},
            "final": {}}


def test_variant_overrides_are_strict_and_rescale_the_schedule():
    mapping = variant_experiment(TINY, "direct", VARIANTS["direct"], steps=10)
    assert mapping["model"]["rotation_mode"] == "direct" and mapping["model"]["name"].endswith("-direct")
    assert mapping["train"]["max_steps"] == 10 and all(s <= 10 for s in mapping["train"]["lr_decay_steps"])
    with pytest.raises(ConfigError, match="not_a_switch"):
        variant_experiment(TINY, "bad", {"not_a_switch": True}, steps=10)


def test_ablate_trains_evaluates_and_writes_one_row_per_variant(tmp_path):
    data = tmp_path / "data"
    for split in ("train", "val"):
        generate_split(data, GenerateConfig(split=split, scenes=1, views_per_scene=2, seed=4, image_size=(72, 96)),
                       db_dir=procedural_db_dir(), workers=1, progress=False)
    config = tmp_path / "ablations.yaml"
    config.write_text(yaml.safe_dump({"base": str(TINY), "steps": 3, "variants": VARIANTS,
                                      "retrieval_comparison": "final"}))
    out = tmp_path / "runs"
    assert main(["ablate", "--config", str(config), "--data", str(data), "--out", str(out)]) == 0
    rows = json.loads((out / "ablations.json").read_text())
    assert list(rows) == ["direct", "final", "final, Chamfer retrieval"]
    for row in rows.values():
        assert 0.0 <= row["instance_avg"]["alignment_accuracy"] <= 100.0
    assert (out / "direct" / "model" / "model.safetensors").is_file()
    table = (out / "ablations.md").read_text()
    assert table.count("\n| ") == 4  # header + 3 rows


def test_ablate_rejects_an_unknown_variant(tmp_path, capsys):
    config = tmp_path / "ablations.yaml"
    config.write_text(yaml.safe_dump({"base": str(TINY), "steps": 3, "variants": VARIANTS}))
    assert main(["ablate", "--config", str(config), "--data", str(tmp_path), "--only", "nope"]) == 2
    assert "unknown variant" in capsys.readouterr().err
