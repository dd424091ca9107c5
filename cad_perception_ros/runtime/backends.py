"""Inference backends behind one interface: numpy arrays in, numpy arrays out.

Every backend runs the network's static-shape export graph ``forward_export(image, K)``:

    inputs  {"image": (1, 3, H, W) float32 in [0, 1] RGB, "K": (1, 3, 3) float32 intrinsics of that image}
    outputs {name: float32 / int array of a fixed shape}  (names and shapes set by the network)

Heavy optional dependencies (onnxruntime, tensorrt) are imported inside the backend that uses them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cad_perception_ros.runtime.contract import (  # noqa: F401 (re-exported)
    BACKENDS,
    INPUT_NAMES,
    Backend,
    check_inputs,
)
from cad_perception_ros.runtime.tensorrt_backend import TensorRTBackend


class TorchBackend:
    """Eager PyTorch: CPU, or CUDA with fp16 autocast (`half`, default on for CUDA)."""

    name = "torch"

    def __init__(self, *, model, device: str = "cpu", half: bool | None = None):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"TorchBackend: device {device!r} requested but torch has no CUDA")
        self.device = device
        self.half = device.startswith("cuda") if half is None else bool(half)
        if self.half and not device.startswith("cuda"):
            raise ValueError("TorchBackend: half precision is supported on CUDA only")
        self.model = model.to(device).eval()

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(inputs)
        tensors = [torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=np.float32)).to(self.device)
                   for n in INPUT_NAMES]
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
            out = self.model.forward_export(*tensors)
        return {k: _to_numpy(v) for k, v in out.items()}


def _to_numpy(t) -> np.ndarray:
    t = t.detach()
    if t.is_floating_point() and t.dtype != torch.float32:
        t = t.float()
    return t.cpu().numpy()


class OnnxRuntimeBackend:
    """ONNX Runtime: CPUExecutionProvider, or CUDAExecutionProvider (onnxruntime-gpu) for device cuda."""

    name = "onnxruntime"

    def __init__(self, *, onnx_path: str | Path, device: str = "cpu", intra_op_threads: int | None = None,
                 inter_op_threads: int | None = None):
        import onnxruntime as ort

        self.device = device
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = int(intra_op_threads)
        if inter_op_threads:
            options.inter_op_num_threads = int(inter_op_threads)
        # Idle ORT workers otherwise busy-wait after each run and steal the cores that the
        # decode (Procrustes SVD, retrieval, mask pasting) runs on right after the network.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers: list = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError("OnnxRuntimeBackend: device cuda needs onnxruntime-gpu "
                                   f"(available providers: {ort.get_available_providers()})")
            index = int(device.split(":")[1]) if ":" in device else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        if not Path(onnx_path).is_file():
            raise FileNotFoundError(f"OnnxRuntimeBackend: ONNX file not found: {onnx_path}")
        self.session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_shapes = {i.name: tuple(i.shape) for i in self.session.get_inputs()}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(inputs)
        feeds = {}
        for name, shape in self.input_shapes.items():
            array = np.ascontiguousarray(inputs[name], dtype=np.float32)
            if array.shape != shape:
                raise ValueError(f"OnnxRuntimeBackend: input {name!r} must be {shape} (static), got {array.shape}")
            feeds[name] = array
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))


def make_backend(name: str, *, model=None, onnx_path: str | Path | None = None, device: str = "cpu",
                 **options) -> Backend:
    """Backend by name. torch needs `model`; onnxruntime and tensorrt need `onnx_path`.

    options: onnxruntime: intra_op_threads, inter_op_threads; torch: half;
    tensorrt: cache_dir, precision, force_rebuild, workspace_mb.
    """
    if name == "torch":
        if model is None:
            raise ValueError("torch backend needs a model")
        return TorchBackend(model=model, device=device, **options)
    if name in ("onnxruntime", "tensorrt") and onnx_path is None:
        raise ValueError(f"{name} backend needs an ONNX file (cad-perception export)")
    if name == "onnxruntime":
        return OnnxRuntimeBackend(onnx_path=onnx_path, device=device, **options)
    if name == "tensorrt":
        return TensorRTBackend(onnx_path=onnx_path, device="cuda" if device == "cpu" else device, **options)
    raise ValueError(f"unknown backend {name!r}; choose from {list(BACKENDS)}")
