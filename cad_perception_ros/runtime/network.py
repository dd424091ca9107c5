"""Model directory -> network, CAD index, ONNX file and backend: the wiring behind CadAligner.

Model directory (model/checkpoint.py): model.safetensors, config.yaml, meta.json,
cad_embeddings.safetensors. The ONNX graph for onnxruntime / tensorrt is MODEL_DIR/model.onnx
when it exists and its sidecar matches the weights and input size (``cad-perception export``);
otherwise it is exported once into the user cache ($XDG_CACHE_HOME/cad_perception_ros/onnx),
named by the weights' hash and the input size.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Any, NamedTuple

from cad_perception_ros.cad.database import CadDatabase, CadDatabaseError
from cad_perception_ros.cad.retrieval import EmbeddingIndex
from cad_perception_ros.config import to_mapping
from cad_perception_ros.model.checkpoint import load_model_dir, meta_cad_ids, read_meta
from cad_perception_ros.model.config import MODEL_KINDS
from cad_perception_ros.model.points2objects.decode import ExemplarIndex
from cad_perception_ros.model.points2objects.decode import decode as p2o_decode
from cad_perception_ros.model.points2objects.network import P2ONet
from cad_perception_ros.model.roca.decode import decode
from cad_perception_ros.model.roca.network import RocaNet
from cad_perception_ros.paths import models_dir

log = logging.getLogger(__name__)


class LoadedNetwork(NamedTuple):
    """model: RocaNet or P2ONet (eval, CPU); config: ModelConfig; meta: meta.json dict; index: CAD
    embeddings (None when empty) or, for points2objects, the ExemplarIndex; model_dir: where it came
    from (None for a random-weight model); p2o: P2OConfig of a points2objects model."""

    model: Any
    config: Any
    meta: dict[str, Any]
    index: Any
    model_dir: Path | None
    p2o: Any = None

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.config.input_size)

    @property
    def embedding_dim(self) -> int:
        return int(self.config.embedding_dim)

    def sidecar_metadata(self) -> dict[str, Any]:
        """Keys the export sidecar carries besides the graph facts."""
        return {"model_name": self.config.name, "class_names": list(self.config.class_names),
                "config": to_mapping(self.config), "weights_sha256": self.meta.get("sha256", {}).get("model.safetensors")}


def default_model_dir(kind: str = "roca") -> Path:
    """The bundled model of a kind: models/roca or models/points2objects (see cad_perception_ros.paths)."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected roca or points2objects")
    return models_dir() / kind


def model_dir_kind(model_dir: str | Path) -> str:
    """The model kind ("roca" | "points2objects") a model directory's meta.json declares
    (directories written before model kinds existed are "roca"); ValueError if unreadable."""
    path = Path(model_dir) / "meta.json"
    try:
        return str(read_meta(model_dir, error=ValueError).get("model_kind", "roca"))
    except ValueError as exc:
        raise ValueError(f"{path}: cannot read the model kind: {exc}") from None


def load_network(model_dir: str | Path) -> LoadedNetwork:
    loaded = load_model_dir(model_dir)
    if loaded.config.kind == "points2objects":
        return LoadedNetwork(loaded.model.eval(), loaded.config, loaded.meta,
                             ExemplarIndex.from_exemplars(loaded.exemplars), Path(model_dir), loaded.p2o)
    index = (EmbeddingIndex(loaded.cad_embeddings, loaded.cad_class_ids, loaded.cad_ids)
             if len(loaded.cad_ids) else None)
    return LoadedNetwork(loaded.model.eval(), loaded.config, loaded.meta, index, Path(model_dir))


def decode_function(net: LoadedNetwork, index=None):
    """decode(raw, *, image_size, score_threshold, timings) for the network's kind,
    with `index` (default net.index) for the CAD choice."""
    index = net.index if index is None else index
    if net.config.kind == "points2objects":
        return functools.partial(p2o_decode, config=net.config, index=index)
    return functools.partial(decode, config=net.config, index=index)


def with_input_size(net: LoadedNetwork, input_size: tuple[int, int]) -> LoadedNetwork:
    """Same weights, another static input size (the network is fully convolutional up to the ROI heads)."""
    if tuple(input_size) == net.input_size:
        return net
    config = dataclasses.replace(net.config, input_size=tuple(input_size))
    if config.kind == "points2objects":
        model = P2ONet.from_config(config, net.model.p2o, net.model.exemplars)
    else:
        model = RocaNet.from_config(config)
    model.load_state_dict(net.model.state_dict())
    return net._replace(model=model.eval(), config=config)


def model_database(model_dir: Path | None, meta: dict[str, Any], cad_db=None, *, strict: bool = False):
    """The CAD database of a model (the one loader): `cad_db` (a CadDatabase, or a folder), else the
    folder meta.json's cad_db names relative to `model_dir`; None when neither names one.

    strict (the node): a named database that does not load, or that lacks CAD models the
    embeddings name (meta.json cad_ids), raises CadDatabaseError. Lenient (CLI, evaluation): a
    database that does not load is logged and None returned (predictions keep their cad ids)."""
    if cad_db is not None and not isinstance(cad_db, (str, Path)):
        return cad_db
    named = cad_db or (meta.get("cad_db") if model_dir is not None else None)
    if not named:
        return None
    folder = Path(cad_db).expanduser() if cad_db else Path(model_dir) / str(named)
    try:
        database = CadDatabase.load(folder)
    except (ValueError, OSError) as exc:
        if strict:
            raise CadDatabaseError(f"CAD database {folder}: {exc}") from None
        log.warning("CAD database %s not loaded (%s); predictions keep their cad ids, overlays draw boxes", folder, exc)
        return None
    if strict:
        ids = meta_cad_ids(model_dir, meta, error=CadDatabaseError)
        missing = [c for c in ids if c not in database]
        if missing:
            raise CadDatabaseError(f"model {model_dir}: {len(missing)} of {len(ids)} CAD embeddings name models that "
                                   f"the database {folder} lacks, e.g. {missing[:3]} (embeddings of another database?)")
    return database


def load_cad_database(net: LoadedNetwork, cad_db=None):
    """CadDatabase from `cad_db` (a CadDatabase or a folder) or meta.json's cad_db; None if unavailable."""
    return model_database(net.model_dir, net.meta, cad_db)
