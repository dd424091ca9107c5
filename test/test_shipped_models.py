"""Every shipped model directory (models/*/ with a meta.json) still loads with today's config code
and gives the network its weights were saved from: the same parameter names and shapes, loaded
strictly, and every key of its config.yaml is read back with the same value (none lost or renamed)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from safetensors.numpy import load_file

from cad_perception_ros.config import to_mapping
from cad_perception_ros.model.checkpoint import load_model_dir

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = sorted(p.parent.name for p in MODELS.glob("*/meta.json"))


def test_both_methods_are_shipped():
    assert {"roca", "points2objects"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_dir_builds_the_saved_network(name):
    folder = MODELS / name
    loaded = load_model_dir(folder)
    saved = {k: v.shape for k, v in load_file(str(folder / "model.safetensors")).items()}
    built = {k: tuple(v.shape) for k, v in loaded.model.state_dict().items()}
    assert built == saved
    on_disk = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))["model"]
    read_back = to_mapping(loaded.config)
    assert {key: read_back.get(key) for key in on_disk} == on_disk  # every saved key, same value
