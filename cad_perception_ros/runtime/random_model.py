"""A random-weight RocaNet saved as a real model directory, for node tests, latency measurements
and the demo when no trained model exists. Its CAD index embeds a real CAD database with the
(random) retrieval head, so retrieved ids name meshes RViz and the 3D view can load.

Predictions of such a model are meaningless (use score threshold 0 to get objects at all); what
it exercises is everything around the network: model dir loading, the pipeline, the node.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.cad.retrieval import EmbeddingIndex
from cad_perception_ros.model.checkpoint import save_model_dir
from cad_perception_ros.model.config import RocaConfig, load_experiment
from cad_perception_ros.model.roca.network import RocaNet
from cad_perception_ros.paths import asset_root
from cad_perception_ros.runtime.network import LoadedNetwork
from cad_perception_ros.types import SCAN2CAD_CLASSES

TINY_CONFIG = asset_root() / "config" / "roca_tiny.yaml"


def save_random_model_dir(folder: str | Path, *, cad_db: str | Path, config: str | Path | None = None,
                          input_size: tuple[int, int] | None = None, seed: int = 0,
                          overwrite: bool = False) -> Path:
    """Write a random-weight model directory (model/checkpoint.py layout) and return its path.

    cad_db: CadDatabase folder (stored relative to the model dir, embedded for retrieval).
    config: experiment YAML with a ``model:`` section (default config/roca_tiny.yaml); the model
    always gets all SCAN2CAD_CLASSES so its class ids equal the data's. input_size: (H, W) override.
    Raises FileExistsError if `folder` holds a model and not overwrite; CadDatabaseError on a bad db.
    """

    model_config = load_experiment(config or TINY_CONFIG).model
    changes = {"class_names": SCAN2CAD_CLASSES, "name": f"{model_config.name}_random"}
    if input_size is not None:
        changes["input_size"] = tuple(int(v) for v in input_size)
    model_config = dataclasses.replace(model_config, **changes)
    database = CadDatabase.load(cad_db)
    torch.manual_seed(seed)
    model = RocaNet.from_config(model_config).eval()
    with torch.no_grad():
        embeddings = model.embed_cads(torch.as_tensor(np.asarray(database.grids)).float()).numpy()  # (N, D)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return save_model_dir(folder, model, model_config, cad_embeddings=embeddings,
                          cad_class_ids=np.array([m.class_id for m in database.models], np.int64),
                          cad_ids=[m.cad_id for m in database.models], overwrite=overwrite,
                          cad_db=os.path.relpath(Path(cad_db).resolve(), folder.resolve()),
                          extra_meta={"random_weights": True, "seed": seed})


def random_network(*, input_size: tuple[int, int] | None = None, seed: int = 0, cads_per_class: int = 24,
                   config=None) -> LoadedNetwork:
    """Random-weight RocaNet (same weights for every input size at one seed) with random CAD embeddings."""
    if config is None:
        config = RocaConfig() if input_size is None else RocaConfig(input_size=tuple(input_size))
    elif input_size is not None:
        config = dataclasses.replace(config, input_size=tuple(input_size))
    torch.manual_seed(seed)
    model = RocaNet.from_config(config).eval()
    rng = np.random.default_rng(seed)
    n = cads_per_class * config.num_classes
    index = EmbeddingIndex(rng.standard_normal((n, config.embedding_dim)).astype(np.float32),
                           np.repeat(np.arange(config.num_classes), cads_per_class), [f"random_{i:05d}" for i in range(n)])
    return LoadedNetwork(model, config, {"model_name": config.name, "sha256": {}}, index, None)
