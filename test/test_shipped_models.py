"""Every shipped model directory (models/*/ with a meta.json) still loads with today's config code
and gives the network its weights were saved from: the same parameter names and shapes, loaded
strictly, and every key of its config.yaml is read back with the same value, moved into
``ablation:`` or (only the documented keys of model/stored_config.py) dropped. Every experiment
file in config/ loads strictly with the dataclasses of its kind."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from safetensors.numpy import load_file

from cad_perception_ros.config import ConfigError, to_mapping
from cad_perception_ros.model.checkpoint import load_model_dir
from cad_perception_ros.model.config import (
    AblationSwitches,
    P2OAblationSwitches,
    P2OExperiment,
    P2OModelConfig,
    RocaConfig,
    RocaExperiment,
    experiment_from_mapping,
    load_experiment,
)
from cad_perception_ros.model.stored_config import (
    ABLATION_KEYS,
    DROPPED_SWITCHES,
    P2O_ABLATION_KEYS,
    ROCA_ONLY_KEYS,
    ROCA_ONLY_LOSS_WEIGHTS,
    read_stored_config,
)

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SHIPPED = sorted(p.parent.name for p in MODELS.glob("*/meta.json"))
NOT_EXPERIMENTS = {"cad_perception.yaml"}  # node parameters
CROP_EXPERIMENTS = sorted(p.name for p in (ROOT / "config").glob("roca_crop_*.yaml"))  # train-crop recipes
EXPERIMENTS = sorted(p.name for p in (ROOT / "config").glob("*.yaml")
                     if p.name not in NOT_EXPERIMENTS and p.name not in CROP_EXPERIMENTS
                     and not p.name.startswith("ablations"))


def _stored(name: str) -> dict:
    """The config.yaml mapping of shipped model `name` as written on disk."""
    return yaml.safe_load((MODELS / name / "config.yaml").read_text(encoding="utf-8"))


def test_both_methods_are_shipped():
    assert {"roca", "points2objects"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_dir_builds_the_saved_network(name):
    folder = MODELS / name
    loaded = load_model_dir(folder)
    saved = {k: v.shape for k, v in load_file(str(folder / "model.safetensors")).items()}
    built = {k: tuple(v.shape) for k, v in loaded.model.state_dict().items()}
    assert built == saved
    stored = _stored(name)
    on_disk, read_back = stored["model"], to_mapping(loaded.config)
    p2o = loaded.config.kind == "points2objects"
    moved = {k: v for k, v in on_disk.items() if k in ABLATION_KEYS and not p2o}
    if p2o:  # shape_labels moved from points2objects: into model.ablation; the rest of that section stays
        moved = {k: v for k, v in stored["points2objects"].items() if k in P2O_ABLATION_KEYS}
        p2o_back = to_mapping(loaded.p2o)
        assert {k: p2o_back[k] for k in stored["points2objects"] if k not in moved} == \
            {k: v for k, v in stored["points2objects"].items() if k not in moved}
    dropped = set(on_disk) - set(read_back) - set(moved)
    allowed = set(DROPPED_SWITCHES) | (set(ROCA_ONLY_KEYS) | set(ABLATION_KEYS) if p2o else set())
    assert dropped <= allowed, dropped  # nothing else may be lost
    for key in dropped & set(DROPPED_SWITCHES):
        assert on_disk[key] == DROPPED_SWITCHES[key]  # the behaviour the code keeps
    assert {k: read_back["ablation"][k] for k in moved} == moved
    kept = {k: v for k, v in on_disk.items() if k in read_back and k != "loss_weights"}
    assert {k: read_back[k] for k in kept} == kept  # every other saved key, same value
    lost_weights = set(on_disk["loss_weights"]) - set(read_back["loss_weights"])
    assert lost_weights <= (set(ROCA_ONLY_LOSS_WEIGHTS) if p2o else set())
    assert all(read_back["loss_weights"][k] == on_disk["loss_weights"][k] for k in read_back["loss_weights"])


def test_shipped_models_are_the_default_recipe():
    """The dataclass defaults are the shipped models' settings, but for their names."""
    for name in SHIPPED:
        config = load_model_dir(MODELS / name, verify=False).config
        default = type(config)()
        differ = {f.name for f in dataclasses.fields(config) if getattr(config, f.name) != getattr(default, f.name)}
        assert differ <= {"name"}, (name, differ)
    assert load_model_dir(MODELS / "roca", verify=False).config.ablation == AblationSwitches()
    assert load_model_dir(MODELS / "points2objects", verify=False).config.ablation == P2OAblationSwitches()


def test_points2objects_sections_hold_only_what_points2objects_reads():
    p2o = to_mapping(P2OModelConfig())
    assert not set(p2o) & (set(ROCA_ONLY_KEYS) | set(ABLATION_KEYS))
    assert not set(p2o["loss_weights"]) & set(ROCA_ONLY_LOSS_WEIGHTS)
    exp = to_mapping(P2OExperiment())
    assert "gt_depth_points" not in exp["train"] and "box_jitter" not in exp["train"]
    with pytest.raises(ConfigError, match="roi_size"):  # strict: a ROCA-only key in a P2O file is named
        experiment_from_mapping({"model": {"kind": "points2objects", "roi_size": 8}}, where="p2o.yaml")
    with pytest.raises(ConfigError, match="points2objects"):  # and a P2O section in a ROCA file
        experiment_from_mapping({"model": {"kind": "roca"}, "points2objects": {}}, where="roca.yaml")
    with pytest.raises(ConfigError, match="'foo' is not one of"):
        experiment_from_mapping({"model": {"kind": "foo"}}, where="x.yaml")


def test_old_stored_configs_load_and_dropped_switches_only_with_their_old_default():
    old = _stored("roca_v1")  # the previous bundle: its config.yaml holds the switches in their old place

    def model(**changes):
        return read_stored_config({**old, "model": {**old["model"], **changes}})[0]

    assert model(noc_pixel_features=False, procrustes_zero_center=True) == model()
    for key, value in DROPPED_SWITCHES.items():
        with pytest.raises(ConfigError, match=key):
            model(**{key: not value})
    direct = model(rotation_mode="direct")  # a top-level ablation switch moves in
    assert isinstance(direct, RocaConfig) and direct.ablation.rotation_mode == "direct"
    with pytest.raises(ConfigError, match="both"):
        model(rotation_mode="direct", ablation={"rotation_mode": "procrustes"})
    with pytest.raises(ConfigError, match="not_a_key"):  # anything else stays strict
        model(not_a_key=1)
    old_p2o = _stored("points2objects")
    hard = read_stored_config({**old_p2o, "points2objects": {**old_p2o["points2objects"], "shape_labels": "hard"}})
    assert isinstance(hard[0], P2OModelConfig) and hard[0].ablation.shape_labels == "hard"


@pytest.mark.parametrize("name", CROP_EXPERIMENTS)
def test_every_crop_recipe_in_config_loads(name):
    from cad_perception_ros.model.roca.crop_config import load_crop_experiment
    exp = load_crop_experiment(ROOT / "config" / name)
    assert exp.crop.crop_size > 0 and exp.crop_train.max_steps > 0


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_file_in_config_loads(name):
    exp = load_experiment(ROOT / "config" / name)
    assert isinstance(exp, P2OExperiment if exp.model.kind == "points2objects" else RocaExperiment)
    assert isinstance(exp.model, P2OModelConfig if exp.model.kind == "points2objects" else RocaConfig)
