"""TensorRT backend: build an engine from the exported ONNX file, cache it, run it on CUDA.

Build (TensorRT Python API): Builder -> NetworkDefinition (EXPLICIT_BATCH flag on TensorRT < 10,
where implicit batch was still the default; TensorRT 10 networks are always explicit batch) ->
OnnxParser.parse -> BuilderConfig (FP16 flag for precision "fp16", workspace pool limit) ->
build_serialized_network. The serialized engine is cached by ``EngineCache`` keyed by the ONNX
sha256, the TensorRT version, the GPU name and compute capability and the precision.

Run: the TensorRT 10 name-based API. Every I/O tensor gets a torch CUDA tensor as its buffer
(``set_tensor_address``); ``execute_async_v3`` runs on the current torch CUDA stream.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from cad_perception_ros.runtime.contract import INPUT_NAMES, check_inputs
from cad_perception_ros.runtime.engine_cache import EngineCache, EngineKey, sha256_file

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/cad_perception_ros/engines (or ~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cad_perception_ros" / "engines"


def engine_key(onnx_path: str | Path, precision: str, device_index: int = 0) -> EngineKey:
    """Cache key of `onnx_path` for the installed TensorRT and the CUDA device `device_index`."""
    import tensorrt as trt
    major, minor = torch.cuda.get_device_capability(device_index)
    return EngineKey(sha256_file(onnx_path), trt.__version__, torch.cuda.get_device_name(device_index),
                     f"{major}.{minor}", precision)


def build_engine(onnx_path: Path, key: EngineKey, workspace_mb: int = 2048) -> bytes:
    """Parse `onnx_path` and build a serialized engine at `key.precision` ("fp16" or "fp32")."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if key.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif key.precision != "fp32":
        raise ValueError(f"precision must be fp16 or fp32, got {key.precision!r}")
    log.info("building TensorRT %s engine for %s (%s); this takes a while", key.precision, onnx_path, key.gpu_name)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT engine build failed for {onnx_path}")
    return bytes(serialized)


class TensorRTBackend:
    """Serialized-engine runner; see the module docstring. Requires tensorrt and a CUDA torch."""

    name = "tensorrt"

    def __init__(self, *, onnx_path: str | Path, device: str = "cuda", cache_dir: str | Path | None = None,
                 precision: str = "fp16", force_rebuild: bool = False, workspace_mb: int = 2048):
        import tensorrt as trt
        if not torch.cuda.is_available():
            raise RuntimeError("TensorRTBackend needs a CUDA device and a CUDA build of torch")
        self.device = device
        index = int(device.split(":")[1]) if ":" in device else 0
        torch.cuda.set_device(index)
        cache = EngineCache(cache_dir=cache_dir or default_cache_dir(),
                            builder=lambda path, key: build_engine(path, key, workspace_mb))
        result = cache.get(onnx_path, engine_key(onnx_path, precision, index), force=force_rebuild)
        log.info("TensorRT engine %s (%s)", result.path, result.status)
        self.cache_status = result.status
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(result.engine)
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {result.path}; rebuild with force_rebuild=True")
        self.context = self.engine.create_execution_context()
        self.buffers: dict[str, torch.Tensor] = {}
        self.output_names: list[str] = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            dtype = torch.from_numpy(np.empty(0, dtype=trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
            self.buffers[name] = torch.empty(shape, dtype=dtype, device=device)
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                self.output_names.append(name)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(inputs)
        for name in INPUT_NAMES:
            buffer = self.buffers[name]
            array = np.ascontiguousarray(inputs[name])
            if tuple(array.shape) != tuple(buffer.shape):
                raise ValueError(f"TensorRTBackend: input {name!r} must be {tuple(buffer.shape)}, got {array.shape}")
            buffer.copy_(torch.from_numpy(array).to(buffer.dtype))
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        stream.synchronize()
        return {name: self.buffers[name].float().cpu().numpy() if self.buffers[name].is_floating_point()
                else self.buffers[name].cpu().numpy() for name in self.output_names}
