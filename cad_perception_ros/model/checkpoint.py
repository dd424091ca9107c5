"""Training checkpoints and the model directory, in safetensors + JSON/YAML only (no pickle).

Training checkpoint (a folder): model.safetensors, optimizer.safetensors (per-parameter state
tensors as "state.<param index>.<name>"), state.json (step, optimizer scalars and
param_groups, extra scalars such as the best loss).

Model directory (read by the runtime): model.safetensors, config.yaml (resolved RocaConfig or
P2OModelConfig under ``model:``; older layouts: model/stored_config.py), meta.json (format_version,
model_name, class_names, input_size, cad_db relative to the model dir, cad_ids, sha256 of every
file), cad_embeddings.safetensors
(embeddings (N, D) float32, class_ids (N,) int64). A Points2Objects model (model.kind
"points2objects") adds a ``points2objects:`` section to config.yaml and its shape-exemplar set
as exemplars.npz + exemplars.json (ExemplarSet.save: numpy arrays without pickle, JSON ids),
both hashed in meta.json; its cad_embeddings.safetensors is empty.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cad_perception_ros.config import ConfigError, to_mapping
from cad_perception_ros.jsonio import read_json_object
from cad_perception_ros.model.config import ModelConfig, RocaConfig
from cad_perception_ros.model.points2objects.exemplars import ExemplarSet
from cad_perception_ros.model.points2objects.network import P2ONet
from cad_perception_ros.model.roca.network import RocaNet
from cad_perception_ros.model.stored_config import read_stored_config

FORMAT_VERSION = 1
MODEL_FILES = ("model.safetensors", "config.yaml", "cad_embeddings.safetensors")
EXEMPLAR_FILES = ("exemplars.npz", "exemplars.json")


class ModelDirError(ValueError):
    """A model directory or checkpoint is missing, corrupt or inconsistent (message names the file)."""


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def record_sha256(folder: str | Path, names, **fields: Any) -> dict[str, Any]:
    """Store the sha256 of folder/<name> for each name in folder/meta.json, with `fields` as
    top-level keys (after a file changed on purpose: an attached crop network, a calibrated
    config); one write; returns the new meta."""
    folder = Path(folder)
    meta = {**read_meta(folder), **fields}
    for name in names:
        meta.setdefault("sha256", {})[name] = file_sha256(folder / name)
    (folder / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelDirError(f"missing file: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelDirError(f"{path}: not a valid safetensors file (corrupt or truncated?): {exc}") from None


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    tmp.replace(path)


def _model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    return dict(model.state_dict())


# ---------------------------------------------------------------------------- training checkpoints
def save_checkpoint(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    step: int, extra: dict[str, Any] | None = None) -> Path:
    """Write model, optimizer state and step to `folder` (created; files replaced atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _save_tensors(_model_state(model), folder / "model.safetensors")
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, state in opt["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value
            else:
                scalars[f"{pid}.{name}"] = value
    _save_tensors(tensors, folder / "optimizer.safetensors")
    meta = {"format_version": FORMAT_VERSION, "step": int(step), "param_groups": opt["param_groups"],
            "state_scalars": scalars, "extra": extra or {}}
    (folder / "state.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return folder


def load_checkpoint(folder: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> tuple[int, dict[str, Any]]:
    """Restore model (and optimizer) from `folder`; returns (step, extra)."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{folder / 'state.json'}: cannot read checkpoint state: {exc}") from None
    _load_state(getattr(model, "module", model), _load_tensors(folder / "model.safetensors"), folder)
    if optimizer is not None:
        state: dict[int, dict[str, Any]] = {}
        for key, value in _load_tensors(folder / "optimizer.safetensors").items():
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
        for key, value in meta.get("state_scalars", {}).items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return int(meta["step"]), dict(meta.get("extra", {}))


def _load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    bad = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or bad:
        raise ModelDirError(f"{where}: weights do not match the model config: missing {missing[:5]}, "
                            f"unexpected {unexpected[:5]}, wrong shape {bad[:5]}")
    model.load_state_dict(tensors)


# ---------------------------------------------------------------------------- model directory
class LoadedModel(NamedTuple):
    model: torch.nn.Module          # RocaNet or P2ONet in eval mode
    config: ModelConfig
    meta: dict[str, Any]
    cad_embeddings: np.ndarray      # (N, D) float32 (N = 0 when absent)
    cad_class_ids: np.ndarray       # (N,) int64
    cad_ids: list[str]
    p2o: Any = None                 # P2OConfig (points2objects models)
    exemplars: Any = None           # ExemplarSet (points2objects models)


def save_model_dir(folder: str | Path, model: torch.nn.Module, config: ModelConfig, *,
                   cad_embeddings: np.ndarray | None = None, cad_class_ids: np.ndarray | None = None,
                   cad_ids: list[str] | None = None, cad_db: str = "", overwrite: bool = False,
                   extra_meta: dict[str, Any] | None = None, p2o=None, exemplars=None) -> Path:
    """Write the runtime model directory. Refuses to replace existing files unless overwrite.

    A points2objects config needs `p2o` (P2OConfig) and `exemplars` (ExemplarSet)."""
    folder = Path(folder)
    p2o_kind = config.kind == "points2objects"
    if p2o_kind and (p2o is None or exemplars is None):
        raise ValueError("save_model_dir: a points2objects model needs p2o (P2OConfig) and exemplars (ExemplarSet)")
    files = (*MODEL_FILES, *(EXEMPLAR_FILES if p2o_kind else ()))
    if not overwrite and any((folder / f).exists() for f in (*files, "meta.json")):
        raise FileExistsError(f"{folder} already holds a model; pass overwrite=True (--overwrite)")
    folder.mkdir(parents=True, exist_ok=True)
    _save_tensors(_model_state(model), folder / "model.safetensors")
    sections = {"model": to_mapping(config), **({"points2objects": to_mapping(p2o)} if p2o_kind else {})}
    (folder / "config.yaml").write_text(yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")
    if p2o_kind:
        exemplars.save(folder / EXEMPLAR_FILES[0], overwrite=True)
    dim = config.embedding_dim if isinstance(config, RocaConfig) else 0  # P2ONet embeds no CADs
    emb = np.zeros((0, dim), np.float32) if cad_embeddings is None else cad_embeddings
    cls = np.zeros(len(emb), np.int64) if cad_class_ids is None else cad_class_ids
    ids = list(cad_ids or [])
    if len(ids) != len(emb) or len(cls) != len(emb):
        raise ValueError(f"cad_ids ({len(ids)}), cad_class_ids ({len(cls)}) and embeddings ({len(emb)}) differ")
    _save_tensors({"embeddings": torch.as_tensor(np.asarray(emb, np.float32)),
                   "class_ids": torch.as_tensor(np.asarray(cls, np.int64))}, folder / "cad_embeddings.safetensors")
    meta = {"format_version": FORMAT_VERSION, "model_name": config.name, "model_kind": config.kind,
            "class_names": list(config.class_names), "input_size": list(config.input_size), "cad_db": cad_db,
            "cad_ids": ids, "sha256": {f: file_sha256(folder / f) for f in files}, **(extra_meta or {})}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return folder


def save_roca_model_dir(folder: str | Path, model: torch.nn.Module, config: RocaConfig, cads=None, *,
                        cad_db: str = "", overwrite: bool = False,
                        extra_meta: dict[str, Any] | None = None) -> Path:
    """save_model_dir for a RocaNet, with the CAD embeddings of `cads` (targets.CadTable) computed by
    its retrieval head (none without a learned retrieval head or without cads)."""
    learned = cads is not None and getattr(model, "retrieval", None) is not None
    emb = model.embed_cads(torch.as_tensor(cads.grids)).numpy() if learned else None
    return save_model_dir(folder, model, config, cad_embeddings=emb, cad_class_ids=cads.class_ids if learned else None,
                          cad_ids=list(cads.cad_ids) if learned else [], cad_db=cad_db, overwrite=overwrite,
                          extra_meta=extra_meta)


def read_meta(folder: str | Path, *, error: type[Exception] = ModelDirError) -> dict[str, Any]:
    """A model directory's meta.json as a dict (the one reader); `error` names the file otherwise."""
    return read_json_object(Path(folder) / "meta.json", what="model metadata", error=error)


def meta_cad_ids(folder: str | Path, meta: dict[str, Any], *, error: type[Exception] = ModelDirError) -> list[str]:
    """The cad_ids of a model directory's meta.json (the CAD models its embeddings name, in row
    order; [] when absent); `error` naming the file unless they are a list of strings."""
    cad_ids = meta.get("cad_ids", [])
    if not isinstance(cad_ids, list) or not all(isinstance(c, str) for c in cad_ids):
        raise error(f"{Path(folder) / 'meta.json'}: cad_ids must be a list of strings")
    return list(cad_ids)


def load_model_dir(folder: str | Path, verify: bool = True) -> LoadedModel:
    """Read a model directory written by save_model_dir (hashes checked); ModelDirError otherwise."""
    folder = Path(folder)
    meta = read_meta(folder)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelDirError(f"{folder / 'meta.json'}: format_version {meta.get('format_version')!r}, "
                            f"expected {FORMAT_VERSION}")
    kind = meta.get("model_kind", "roca")
    for name in (*MODEL_FILES, *(EXEMPLAR_FILES if kind == "points2objects" else ())):
        if not (folder / name).is_file():
            raise ModelDirError(f"missing file: {folder / name}")
        if verify and file_sha256(folder / name) != meta.get("sha256", {}).get(name):
            raise ModelDirError(f"{folder / name}: sha256 does not match meta.json (corrupt or modified file)")
    try:
        data = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
        config, p2o = read_stored_config(data)
    except (yaml.YAMLError, ConfigError, AttributeError) as exc:
        raise ModelDirError(f"{folder / 'config.yaml'}: {exc}") from None
    if config.kind != kind:
        raise ModelDirError(f"{folder}: meta.json says model_kind {kind!r}, config.yaml says kind {config.kind!r}")
    exemplars = None
    if kind == "points2objects":
        try:
            exemplars = ExemplarSet.load(folder / EXEMPLAR_FILES[0])
        except ValueError as exc:
            raise ModelDirError(str(exc)) from None
        model = P2ONet.from_config(config, p2o, exemplars)
    else:
        model = RocaNet.from_config(config)
    _load_state(model, _load_tensors(folder / "model.safetensors"), folder / "model.safetensors")
    embeddings, class_ids, cad_ids = _load_embeddings(folder, meta)
    return LoadedModel(model.eval(), config, meta, embeddings, class_ids, cad_ids,
                       p2o if kind == "points2objects" else None, exemplars)


def _load_embeddings(folder: Path, meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(embeddings (N, D), class_ids (N,), cad_ids N) checked against each other and meta.json."""
    path = folder / "cad_embeddings.safetensors"
    emb = _load_tensors(path)
    if set(emb) != {"embeddings", "class_ids"}:
        raise ModelDirError(f"{path}: expected tensors ['class_ids', 'embeddings'], got {sorted(emb)}")
    embeddings, class_ids = emb["embeddings"].numpy(), emb["class_ids"].numpy()
    cad_ids = meta_cad_ids(folder, meta)
    n = embeddings.shape[0] if embeddings.ndim == 2 else -1
    if n != len(cad_ids) or class_ids.shape != (max(n, 0),):
        raise ModelDirError(f"{path}: embeddings {tuple(embeddings.shape)} and class_ids {tuple(class_ids.shape)} "
                            f"do not match the {len(cad_ids)} cad_ids of {folder / 'meta.json'}")
    return embeddings, class_ids, cad_ids


def init_from_weights(model: torch.nn.Module, path: str | Path, modules: Sequence[str]) -> list[str]:
    """Copy the tensors of the named top-level modules (e.g. "backbone", "detector") from a
    model.safetensors (a model dir's or a checkpoint's) into `model`; everything else keeps its
    fresh initialisation (ablations fine-tuned from one shared trunk). Tensors the source lacks
    inside a module it does have (a layer of an option the source was trained without, e.g.
    alignment.weight, the learned Procrustes weights) keep
    their initialisation too. Returns the copied names. Raises ModelDirError when a requested
    module is absent from the source or a tensor has another shape."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    tensors = _load_tensors(path)
    target = getattr(model, "module", model).state_dict()
    chosen = [k for k in target if k.split(".", 1)[0] in set(modules) and k in tensors]
    wrong = [k for k in chosen if tensors[k].shape != target[k].shape]
    absent = [m for m in modules if not any(k.split(".", 1)[0] == m for k in chosen)]
    if wrong or absent:
        raise ModelDirError(f"{path}: cannot initialise modules {list(modules)} from it: "
                            f"absent {absent} / wrong shape {wrong[:5]}")
    getattr(model, "module", model).load_state_dict({k: tensors[k] for k in chosen}, strict=False)
    return chosen


def verified_digests(folder: str | Path, names, verify: bool = True) -> dict[str, str]:
    """sha256 of folder/<name> for each name (each file read once); ModelDirError where meta.json
    lists another digest (and verify is True)."""
    folder = Path(folder)
    hashes = json.loads((folder / "meta.json").read_text(encoding="utf-8")).get("sha256", {})
    digests = {name: file_sha256(folder / name) for name in names}
    for name, digest in digests.items():
        if verify and name in hashes and digest != hashes[name]:
            raise ModelDirError(f"{folder / name}: sha256 does not match meta.json (corrupt or modified file)")
    return digests


def attach_files(model_dir: str | Path, source_dir: str | Path, names, *, what: str, written_by: str,
                 flag: str) -> Path:
    """Copy source_dir/<name> for each name into a ROCA model directory and record their sha256 in
    meta.json with meta[flag] = True. what: the part, for the errors; written_by: the command that writes source_dir."""
    model_dir, source_dir = Path(model_dir), Path(source_dir)
    meta = json.loads((model_dir / "meta.json").read_text(encoding="utf-8"))
    if meta.get("model_kind", "roca") != "roca":
        raise ValueError(f"{model_dir}: a {what} attaches to a ROCA model directory, not {meta.get('model_kind')!r}")
    for name in names:
        if not (source_dir / name).is_file():
            raise FileNotFoundError(f"missing {source_dir / name} ({written_by})")
        shutil.copyfile(source_dir / name, model_dir / name)
    record_sha256(model_dir, names, **{flag: True})
    return model_dir
