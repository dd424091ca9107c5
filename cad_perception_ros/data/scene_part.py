"""The part of a split that one scene writes, the same for every data version: its rendered views
(scan2cad_format.write_view) and the world alignments of its objects."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from cad_perception_ros.data import scan2cad_format as fmt
from cad_perception_ros.types import Alignment9D


def render_part(root: Path, scene, K: np.ndarray, renderer, config, rng: np.random.Generator,
                sample_camera: Callable[[], np.ndarray]) -> dict:
    """Render config.views_per_scene views of the loaded `scene` with intrinsics K (3, 3), each the
    first of config.max_view_tries cameras (sample_camera() -> camera_to_world (4, 4)) that sees an
    object, write them under root and return {"scene_id", "records", "scene_alignments"}."""
    records = []
    for view in range(config.views_per_scene):
        sample = None
        for _ in range(config.max_view_tries):
            sample = renderer.render(sample_camera(), K, tuple(config.image_size), rng,
                                     image_id=f"{scene.scene_id}/{view:06d}")
            if sample.objects:
                break
        records.append(fmt.write_view(root, sample, f"{view:06d}"))
    world = [{**fmt.roca_pose_from_alignment(Alignment9D(o.rotation, o.translation, o.scale)),
              "catid_cad": fmt.SHAPENET_SYNSETS[o.class_id], "id_cad": o.cad_id,
              "sym": fmt.ROCA_SYMMETRY.get(o.symmetry, "__SYM_NONE")} for o in scene.objects]
    return {"scene_id": scene.scene_id, "records": records, "scene_alignments": world}
