"""CadAligner: one RGB image + intrinsics -> detected objects with a retrieved, 9-DoF aligned CAD model.

The same pipeline serves the ROS node, the CLI and the evaluation, whatever the backend:

    preprocess  image (H, W, 3) uint8 RGB, K (3, 3) -> resized to the network input (h, w),
                K scaled by diag(w / W, h / H, 1) (exact under the pixel-centre convention
                u = c + 0.5, which PIL's resampling follows), -> {"image": (1, 3, h, w), "K": (1, 3, 3)}
    network     Backend.run (torch / onnxruntime / tensorrt), static shapes
    decode      runtime/postprocess.decode: Procrustes (3x3 SVD), retrieval, boxes / masks back
                to the original image -> list[CadPrediction]

``last_timings`` holds milliseconds per stage of the last call: preprocess, network,
procrustes, retrieval, postprocess, total (and crop, with a crop stage: ROCA v2's zoom-in crop
network, runtime/crop_stage.py, which re-aligns each prediction from the full-resolution image).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from cad_perception_ros.data.transforms import scale_intrinsics
from cad_perception_ros.types import CadPrediction

STAGES: tuple[str, ...] = ("preprocess", "network", "procrustes", "retrieval", "postprocess")

# decode(raw, *, image_size=(H, W), K=(3, 3) original, input_K=(3, 3) network, score_threshold, timings)
DecodeFn = Callable[..., list[CadPrediction]]


class Preprocessed(NamedTuple):
    """inputs: backend feed; K_input: (3, 3) float64 intrinsics of the resized image; scale: (sx, sy)."""

    inputs: dict[str, np.ndarray]
    K_input: np.ndarray
    scale: tuple[float, float]


def validate_image(image: np.ndarray) -> np.ndarray:
    """Check an (H, W, 3) uint8 RGB image; ValueError with the offending property otherwise."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (encoding-normalised RGB8), got dtype {image.dtype}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image is too small: {image.shape[1]}x{image.shape[0]} pixels")
    return image


def validate_intrinsics(K: np.ndarray) -> np.ndarray:
    """Check a (3, 3) pinhole K: finite, fx > 0, fy > 0, last row (0, 0, 1). Returns float64 K."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be (3, 3), got shape {K.shape}")
    if not np.isfinite(K).all():
        raise ValueError("K contains NaN or inf")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"K focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
    if not np.allclose(K[2], (0.0, 0.0, 1.0)) or K[1, 0] != 0:
        raise ValueError(f"K must be upper triangular with last row (0, 0, 1), got {K.tolist()}")
    return K


def preprocess(image: np.ndarray, K: np.ndarray, input_size: tuple[int, int]) -> Preprocessed:
    """Validate, resize (bilinear, PIL) to input_size (h, w), scale K, normalise to [0, 1] NCHW float32."""
    from PIL import Image

    image, K = validate_image(image), validate_intrinsics(K)
    height, width = image.shape[:2]
    h, w = input_size
    if (height, width) != (h, w):
        image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))  # (h, w, 3)
    sx, sy = w / width, h / height
    K_input = scale_intrinsics(K, sx, sy)
    tensor = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0  # (1, 3, h, w)
    return Preprocessed({"image": tensor, "K": K_input[None].astype(np.float32)}, K_input, (sx, sy))


class CadAligner:
    """image_rgb (H, W, 3) uint8 + K (3, 3) -> list[CadPrediction] in the original image's pixels."""

    def __init__(self, *, backend, decode: DecodeFn, input_size: tuple[int, int], class_names: tuple[str, ...],
                 cad_database=None, model_name: str = "", score_threshold: float = 0.5, crop_stage=None):
        self.backend = backend
        self.decode = decode
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.class_names = tuple(class_names)
        self.cad_database = cad_database
        self.model_name = model_name
        self.score_threshold = float(score_threshold)
        self.crop_stage = crop_stage
        self.last_timings: dict[str, float] = {}

    @classmethod
    def from_model_dir(cls, model_dir: str | Path, backend: str = "torch", device: str = "cpu", cad_db=None,
                       score_threshold: float | None = None, retrieval: str | None = None,
                       **backend_options) -> "CadAligner":
        """Load a model directory (see model/checkpoint.py) and build the named backend on `device`."""
        from cad_perception_ros.runtime.loading import build_aligner

        return build_aligner(cls, model_dir, backend=backend, device=device, cad_db=cad_db,
                             score_threshold=score_threshold, retrieval=retrieval, **backend_options)

    def __call__(self, image_rgb: np.ndarray, K: np.ndarray) -> list[CadPrediction]:
        t0 = time.perf_counter()
        pre = preprocess(image_rgb, K, self.input_size)
        t1 = time.perf_counter()
        raw = self.backend.run(pre.inputs)
        t2 = time.perf_counter()
        timings: dict[str, float] = {}
        predictions = self.decode(raw, image_size=image_rgb.shape[:2], K=validate_intrinsics(K),
                                  input_K=pre.K_input, score_threshold=self.score_threshold, timings=timings)
        t3 = time.perf_counter()
        crop_ms = 0.0
        if self.crop_stage is not None:
            predictions = self.crop_stage(image_rgb, validate_intrinsics(K), predictions)
            crop_ms = (time.perf_counter() - t3) * 1e3
            t3 = time.perf_counter()
        decode_ms = (t3 - t2) * 1e3 - crop_ms
        procrustes, retrieval = timings.get("procrustes", 0.0), timings.get("retrieval", 0.0)
        self.last_timings = {"preprocess": (t1 - t0) * 1e3, "network": (t2 - t1) * 1e3,
                             "procrustes": procrustes, "retrieval": retrieval,
                             "postprocess": max(decode_ms - procrustes - retrieval, 0.0), "total": (t3 - t0) * 1e3}
        if self.crop_stage is not None:
            self.last_timings["crop"] = crop_ms
        return predictions
