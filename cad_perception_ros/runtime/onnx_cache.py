"""The ONNX graph a backend runs: MODEL_DIR/model.onnx when its sidecar matches the weights and the input
size (``cad-perception export``), otherwise one export into the user cache
($XDG_CACHE_HOME/cad_perception_ros/onnx) named by the weights' hash and the input size; and the
onnxruntime sessions of a ROCA v2 crop network and crop classifier (cached the same way)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from cad_perception_ros.model.roca.crop_classifier import export_classifier_onnx
from cad_perception_ros.model.roca.crop_export import export_crop_onnx
from cad_perception_ros.runtime.network import LoadedNetwork
from cad_perception_ros.runtime.onnx_export import export_onnx, read_sidecar

log = logging.getLogger(__name__)


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cad_perception_ros"



def resolve_onnx(net: LoadedNetwork, *, cache_dir: str | Path | None = None) -> Path:
    """An ONNX file of `net` at its input size: MODEL_DIR/model.onnx if it matches, else a cached export."""

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


def crop_onnx_session(model, weights_sha256: str, cache_dir: str | Path | None = None, dense: bool = True):
    """onnxruntime session of the crop network, exported on first use into the cache, named by
    weights_sha256, its crop_model.safetensors' digest (`cad-perception export` writes the same
    graph beside the detector's for deployment)."""
    tag = weights_sha256[:16]
    kind = "" if dense else "-global"
    path = Path(cache_dir or cache_root() / "onnx") / f"crop-{tag}-{model.config.max_crops}x{model.config.crop_size}{kind}.onnx"
    if not path.is_file():
        export_crop_onnx(model, path, dense=dense)
    return _session(path)


def _session(path: Path):
    import onnxruntime as ort  # optional dependency: only the onnxruntime backend needs it

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def classifier_onnx_session(model, weights_sha256: str, cache_dir: str | Path | None = None):
    """onnxruntime session of the crop classifier, exported on first use into the cache, named by
    its crop_classifier.safetensors' digest."""
    c = model.config
    path = Path(cache_dir or cache_root() / "onnx") / f"classifier-{weights_sha256[:16]}-{c.max_crops}x{c.crop_size}.onnx"
    if not path.is_file():
        export_classifier_onnx(model, path)
    return _session(path)
