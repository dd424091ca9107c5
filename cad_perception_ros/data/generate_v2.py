"""Scene generation of data version 2 (``GenerateConfig.data_version == 2``), written in exactly
the format of version 1 (``scan2cad_format.write_view``) so every reader reads it unchanged.

Scene i of a split is, as in v1, a pure function of (seed, split code, i) and the CAD database:
its generator is ``default_rng(SeedSequence([seed, SPLIT_CODES[split], i, 2]))``.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from cad_perception_ros.data.scene_part import render_part
from cad_perception_ros.data.scenes import sample_intrinsics  # image_size, focal_factor, principal_jitter: as v1's
from cad_perception_ros.data.scenes_v2 import SceneConfigV2, generate_scene_v2, sample_camera_v2

# Version of the v2 scene / material / render recipe: part of every v2 split's identity, so a
# changed recipe never finishes an old split and named benchmarks are re-rendered.
SCENE_RECIPE = "scenes-v2.1"


def scene_config_v2(config) -> SceneConfigV2:
    """The SceneConfigV2 of a GenerateConfig (image size, classes, styles)."""
    return replace(SceneConfigV2(), image_size=tuple(config.image_size), classes=tuple(config.scene.classes),
                   styles=config.styles)


def render_scene_v2(root: Path, config, index: int, database, renderer, split_code: int, name: str) -> dict:
    """Generate, render and write v2 scene `index`; return its part (as generate.render_scene)."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, split_code, index, 2]))
    scene_config = scene_config_v2(config)
    labels = renderer._part_labels(database)
    scene = generate_scene_v2(database, labels, rng, scene_config, scene_id=name)
    renderer.load(scene, database)
    renderer.min_visible_pixels = scene_config.min_visible_pixels
    K = sample_intrinsics(rng, scene_config)
    return render_part(root, scene, K, renderer, config, rng, lambda: sample_camera_v2(scene, K, rng, scene_config))
