"""The backend contract every runtime backend keeps: the input names, the Backend Protocol and the
input check (shapes and dtypes of the network feed)."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

# The backend names, in order of preference for a CPU-only install.
BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "tensorrt")
INPUT_NAMES: tuple[str, ...] = ("image", "K")



@runtime_checkable
class Backend(Protocol):
    """name: "torch" | "onnxruntime" | "tensorrt"; device: "cpu" | "cuda[:i]"."""

    name: str
    device: str

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """inputs as in the module docstring -> outputs keyed by the network's output names."""
        ...



def check_inputs(inputs: dict[str, np.ndarray]) -> None:
    """Raise ValueError unless `inputs` holds image (1, 3, H, W) and K (1, 3, 3)."""
    missing = [name for name in INPUT_NAMES if name not in inputs]
    if missing:
        raise ValueError(f"backend inputs: missing {missing}; expected {list(INPUT_NAMES)}")
    image, K = inputs["image"], inputs["K"]
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"backend inputs: image must be (1, 3, H, W), got {image.shape}")
    if K.shape != (1, 3, 3):
        raise ValueError(f"backend inputs: K must be (1, 3, 3), got {K.shape}")
