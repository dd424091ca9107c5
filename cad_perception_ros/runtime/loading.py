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
import os
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np

from cad_perception_ros.runtime.retrieval import EmbeddingIndex

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
        from cad_perception_ros.config import to_mapping

        return {"model_name": self.config.name, "class_names": list(self.config.class_names),
                "config": to_mapping(self.config), "weights_sha256": self.meta.get("sha256", {}).get("model.safetensors")}


def default_model_dir(kind: str = "roca") -> Path:
    """The bundled model of a kind: models/roca or models/points2objects (see cad_perception_ros.paths)."""
    from cad_perception_ros.paths import models_dir

    if kind not in ("roca", "points2objects"):
        raise ValueError(f"unknown model kind {kind!r}; expected roca or points2objects")
    return models_dir() / kind


def model_dir_kind(model_dir: str | Path) -> str:
    """The model kind ("roca" | "points2objects") a model directory's meta.json declares
    (directories written before model kinds existed are "roca"); ValueError if unreadable."""
    import json

    path = Path(model_dir) / "meta.json"
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("model_kind", "roca"))
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(f"{path}: cannot read the model kind: {exc}") from None


def load_network(model_dir: str | Path) -> LoadedNetwork:
    from cad_perception_ros.model.checkpoint import load_model_dir

    loaded = load_model_dir(model_dir)
    if loaded.config.kind == "points2objects":
        from cad_perception_ros.model.points2objects.decode import ExemplarIndex

        return LoadedNetwork(loaded.model.eval(), loaded.config, loaded.meta,
                             ExemplarIndex.from_exemplars(loaded.exemplars), Path(model_dir), loaded.p2o)
    index = (EmbeddingIndex(loaded.cad_embeddings, loaded.cad_class_ids, loaded.cad_ids)
             if len(loaded.cad_ids) else None)
    return LoadedNetwork(loaded.model.eval(), loaded.config, loaded.meta, index, Path(model_dir))


def decode_function(net: LoadedNetwork, index=None):
    """decode(raw, *, image_size, K, input_K, score_threshold, timings) for the network's kind,
    with `index` (default net.index) for the CAD choice."""
    index = net.index if index is None else index
    if net.config.kind == "points2objects":
        from cad_perception_ros.model.points2objects.decode import decode as p2o_decode

        return functools.partial(p2o_decode, config=net.config, index=index, shape_labels=net.p2o.shape_labels)
    from cad_perception_ros.runtime.postprocess import decode

    return functools.partial(decode, config=net.config, index=index)


def random_network(*, input_size: tuple[int, int] | None = None, seed: int = 0, cads_per_class: int = 24,
                   config=None) -> LoadedNetwork:
    """Random-weight RocaNet (same weights for every input size at one seed) with random CAD embeddings."""
    import torch

    from cad_perception_ros.model.config import ModelConfig
    from cad_perception_ros.model.network import RocaNet

    if config is None:
        config = ModelConfig() if input_size is None else ModelConfig(input_size=tuple(input_size))
    elif input_size is not None:
        config = dataclasses.replace(config, input_size=tuple(input_size))
    torch.manual_seed(seed)
    model = RocaNet.from_config(config).eval()
    rng = np.random.default_rng(seed)
    n = cads_per_class * config.num_classes
    index = EmbeddingIndex(rng.standard_normal((n, config.embedding_dim)).astype(np.float32),
                           np.repeat(np.arange(config.num_classes), cads_per_class), [f"random_{i:05d}" for i in range(n)])
    return LoadedNetwork(model, config, {"model_name": config.name, "sha256": {}}, index, None)


def with_input_size(net: LoadedNetwork, input_size: tuple[int, int]) -> LoadedNetwork:
    """Same weights, another static input size (the network is fully convolutional up to the ROI heads)."""
    from cad_perception_ros.model.network import RocaNet

    if tuple(input_size) == net.input_size:
        return net
    config = dataclasses.replace(net.config, input_size=tuple(input_size))
    if config.kind == "points2objects":
        from cad_perception_ros.model.points2objects.network import P2ONet

        model = P2ONet.from_config(config, net.model.p2o, net.model.exemplars)
    else:
        model = RocaNet.from_config(config)
    model.load_state_dict(net.model.state_dict())
    return net._replace(model=model.eval(), config=config)


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cad_perception_ros"


def resolve_onnx(net: LoadedNetwork, *, cache_dir: str | Path | None = None) -> Path:
    """An ONNX file of `net` at its input size: MODEL_DIR/model.onnx if it matches, else a cached export."""
    from cad_perception_ros.export import export_onnx, read_sidecar

    weights = net.meta.get("sha256", {}).get("model.safetensors")
    if net.model_dir is not None and (net.model_dir / "model.onnx").is_file():
        try:
            side = read_sidecar(net.model_dir / "model.onnx")
            if tuple(side["input_size"]) == net.input_size and side.get("weights_sha256") == weights:
                return net.model_dir / "model.onnx"
            log.warning("%s does not match the weights / input size; using a cached export", net.model_dir / "model.onnx")
        except ValueError as exc:
            log.warning("ignoring %s: %s", net.model_dir / "model.onnx", exc)
    h, w = net.input_size
    tag = (weights or "random")[:16]
    path = Path(cache_dir or cache_root() / "onnx") / f"{net.config.name}-{tag}-{w}x{h}.onnx"
    if net.model_dir is not None and path.is_file():
        try:
            read_sidecar(path)
            return path
        except ValueError:
            pass
    export_onnx(net.model, path, input_size=net.input_size, metadata=net.sidecar_metadata(), overwrite=True)
    return path


def load_cad_database(net: LoadedNetwork, cad_db=None):
    """CadDatabase from `cad_db` (a CadDatabase or a folder) or meta.json's cad_db; None if unavailable."""
    if cad_db is not None and not isinstance(cad_db, (str, Path)):
        return cad_db
    folder = Path(cad_db) if cad_db else (net.model_dir / net.meta["cad_db"]
                                          if net.model_dir is not None and net.meta.get("cad_db") else None)
    if folder is None:
        return None
    try:
        from cad_perception_ros.cad.database import CadDatabase

        return CadDatabase.load(folder)
    except (ImportError, ValueError, OSError) as exc:
        log.warning("CAD database %s not loaded (%s); predictions keep their cad ids, overlays draw boxes", folder, exc)
        return None


def wireframes_for(cad_database, cad_ids) -> dict:
    """cad id -> overlay Wireframe of its mesh (cached); ids the database lacks are skipped."""
    if cad_database is None:
        return {}
    return {cad_id: w for cad_id in set(cad_ids) if cad_id
            and (w := _wireframe(cad_database, cad_id)) is not None}


@functools.lru_cache(maxsize=512)
def _wireframe(cad_database, cad_id: str):
    from cad_perception_ros.runtime.overlay import mesh_wireframe

    try:
        return mesh_wireframe(cad_database.mesh(cad_id))
    except (KeyError, ValueError, OSError):
        return None


def chamfer_index(database, class_names):
    """ChamferIndex over a CadDatabase's surface samples, class ids in the model's class order."""
    from cad_perception_ros.runtime.postprocess import ChamferIndex

    rows = [i for i, m in enumerate(database.models) if m.class_name in class_names]
    class_ids = np.array([class_names.index(database.models[i].class_name) for i in rows], dtype=np.int64)
    return ChamferIndex(database.points[rows], class_ids, [database.models[i].cad_id for i in rows])


def _index(net: LoadedNetwork, retrieval: str | None, database):
    """The decode index: the model's own (CAD embeddings, or a points2objects model's exemplars) or,
    for retrieval "chamfer", a ChamferIndex over the database (ROCA models only)."""
    if net.config.kind == "points2objects":
        if retrieval not in (None, "learned"):
            raise ValueError(f"retrieval {retrieval!r}: a points2objects model selects shape exemplars; "
                             "only its own selection (retrieval None or 'learned') is available")
        return net.index
    retrieval = retrieval or net.config.retrieval_mode
    if retrieval not in ("learned", "chamfer"):
        raise ValueError(f"retrieval must be 'learned' or 'chamfer', got {retrieval!r}")
    if retrieval == "chamfer":
        if database is None:
            raise ValueError("chamfer retrieval needs a CAD database (meta.json cad_db or cad_db=...)")
        return chamfer_index(database, list(net.config.class_names))
    return net.index


def build_aligner(cls, source, *, backend: str = "torch", device: str = "cpu", cad_db=None,
                  score_threshold: float | None = None, retrieval: str | None = None, **backend_options):
    """CadAligner (`cls`) from a model directory or a LoadedNetwork, on the named backend.

    retrieval: "learned" (the model's CAD embeddings), "chamfer" (nearest CAD by Chamfer distance
    between predicted NOCs and the database's surface samples) or None (the model's retrieval_mode).
    """
    from cad_perception_ros.runtime.backends import make_backend

    net = source if isinstance(source, LoadedNetwork) else load_network(source)
    database = load_cad_database(net, cad_db)
    index = _index(net, retrieval, database)
    if backend == "torch":
        runner = make_backend("torch", model=net.model, device=device, **backend_options)
    else:
        runner = make_backend(backend, onnx_path=resolve_onnx(net), device=device, **backend_options)
    threshold = net.config.score_threshold if score_threshold is None else float(score_threshold)
    from cad_perception_ros.runtime.crop_stage import has_crop_network, load_crop_stage

    crop_stage = None
    if net.config.kind == "roca" and has_crop_network(net.model_dir):  # ROCA v2: zoom-in crop network
        crop_stage = load_crop_stage(net.model_dir, backend=backend)
    return cls(backend=runner, decode=decode_function(net, index),
               input_size=net.input_size, class_names=net.config.class_names,
               cad_database=database, model_name=net.config.name, score_threshold=threshold,
               crop_stage=crop_stage)


class BenchmarkCase(NamedTuple):
    backend: str
    aligner: Any
    image: np.ndarray  # (H, W, 3) uint8 at the network input size
    K: np.ndarray  # (3, 3)


def benchmark_cases(model_dir, *, backends, sizes=None, input_size=None, device="cpu",
                    threads=None, score_threshold: float | None = None) -> Iterator[BenchmarkCase]:
    """One aligner per backend (network at `input_size` (H, W), default the model's), fed one image per
    camera size in `sizes` ((H, W) list, default the input size). Random weights use score threshold 0:
    all top_k detections go through Procrustes and retrieval (the worst case)."""
    from cad_perception_ros.pipeline import CadAligner

    net = load_network(model_dir) if model_dir else random_network(input_size=input_size)
    net = with_input_size(net, input_size) if input_size else net
    threshold = score_threshold if score_threshold is not None else (None if model_dir else 0.0)
    rng = np.random.default_rng(0)
    for name in backends:
        options = {"intra_op_threads": threads} if threads and name == "onnxruntime" else {}
        aligner = build_aligner(CadAligner, net, backend=name, device=device, score_threshold=threshold, **options)
        for h, w in sizes or [net.input_size]:
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            K = np.array([[0.9 * w, 0.0, w / 2], [0.0, 0.9 * w, h / 2], [0.0, 0.0, 1.0]])
            yield BenchmarkCase(name, aligner, image, K)
