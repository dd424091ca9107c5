"""A tiny model directory next to a tiny CAD database (3 boxes), for the fault tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cad_perception_ros.model.config import ModelConfig

TINY = ModelConfig(input_size=(48, 64), backbone_widths=(8, 8, 8, 8), backbone_blocks=(1, 1, 1, 1), fpn_channels=8,
                   head_channels=8, top_k=2, roi_size=4, depth_channels=4, depth_feature_channels=8, shape_code_dim=8,
                   hidden_dim=8, embedding_dim=8, voxel_channels=(2, 2, 2))


def build_tiny_database(root: Path):
    """3 canonical boxes (chair, table, sofa) -> CadDatabase at root."""
    import trimesh
    from cad_perception_ros.cad.database import CadDatabase, CadDatabaseConfig, CadModel
    from cad_perception_ros.types import SCAN2CAD_CLASSES
    entries = []
    for i, (name, extent) in enumerate((("chair", (0.5, 1.0, 0.5)), ("table", (1.0, 0.6, 0.8)), ("sofa", (1.0, 0.5, 0.4)))):
        model = CadModel(cad_id=f"{name}_{i}", class_name=name, class_id=SCAN2CAD_CLASSES.index(name), symmetry="none",
                         mesh_file="", extent=(0.0, 0.0, 0.0))
        entries.append((model, trimesh.creation.box(extents=extent)))
    return CadDatabase.build(root, entries, config=CadDatabaseConfig(grid_size=8, num_points=16))


def build_tiny_model_dir(tmp: Path) -> Path:
    """tmp/cad_db (3 models) and tmp/model (random TINY RocaNet whose embeddings name those 3)."""
    import torch
    from cad_perception_ros.model.checkpoint import save_model_dir
    from cad_perception_ros.model.roca.network import RocaNet
    db = build_tiny_database(tmp / "cad_db")
    torch.manual_seed(0)
    model = RocaNet.from_config(TINY)
    ids = [m.cad_id for m in db]
    emb = np.random.default_rng(0).standard_normal((len(ids), TINY.embedding_dim)).astype(np.float32)
    return save_model_dir(tmp / "model", model, TINY, cad_embeddings=emb,
                          cad_class_ids=np.array([m.class_id for m in db]), cad_ids=ids, cad_db="../cad_db")


def rewrite_meta(model_dir: Path, **changes) -> None:
    meta = json.loads((model_dir / "meta.json").read_text())
    meta.update(changes)
    (model_dir / "meta.json").write_text(json.dumps(meta))


def refresh_hash(model_dir: Path, name: str) -> None:
    """Make meta.json's sha256 agree with a file the test replaced (so the content check is what fails)."""
    import hashlib
    meta = json.loads((model_dir / "meta.json").read_text())
    meta["sha256"][name] = hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
    (model_dir / "meta.json").write_text(json.dumps(meta))
