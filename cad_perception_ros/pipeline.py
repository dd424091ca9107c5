"""CadAligner: one RGB image + intrinsics (+ an optional registered depth image) -> detected objects
with a retrieved, 9-DoF aligned CAD model.

The same pipeline serves the ROS node, the CLI and the evaluation, whatever the backend:

    preprocess  image (H, W, 3) uint8 RGB, K (3, 3) -> resized to the network input (h, w),
                K scaled by diag(w / W, h / H, 1) (exact under the pixel-centre convention
                u = c + 0.5, which PIL's resampling follows), -> {"image": (1, 3, h, w), "K": (1, 3, 3)}
    network     Backend.run (torch / onnxruntime / tensorrt), static shapes
    decode      model/roca/decode.decode: Procrustes (3x3 SVD), retrieval, boxes / masks back
                to the original image -> list[CadPrediction]

``last_timings`` holds milliseconds per stage of the last call: preprocess, network,
procrustes, retrieval, postprocess, total (and crop, with a crop stage: ROCA v2's zoom-in crop
network, runtime/crop_stage.py, which re-aligns each prediction from the full-resolution image;
and rescore, with a crop classifier, runtime/rescoring.py, which rescores the detector's
candidates down to its candidate_score from their full-resolution crops).

depth (optional): (H, W) float metres registered to the colour image (same size, same K), holes
0 / NaN / inf / outside depth_range (geometry/sensor_depth.py). Each object's back-projected
points then take the sensor z where it is valid and the predicted depth in the holes, in the
detector's decode and in the crop stage. Without depth the outputs are exactly those of RGB alone.

floor (optional): the floor plane in the camera frame (geometry/floor.py; a robot has it from TF).
Without depth, each object's depth and size are then corrected so that it stands on the floor
(``rest_on_floor``, least squares under ``floor_prior``; the retrieved CAD's extent gives its half
height). With depth the sensor measures the depth and the floor is not used.

depth_fit (optional, with depth only): each object's retrieved CAD surface is fitted to the sensor
points in its mask by a trimmed ICP in translation and heading (geometry/depth_fit.py).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from PIL import Image

from cad_perception_ros.cad.retrieval import chamfer_index
from cad_perception_ros.geometry.camera import resize_factors, scale_intrinsics, validate_intrinsics
from cad_perception_ros.geometry.depth_fit import DepthFitConfig, fit_to_depth
from cad_perception_ros.geometry.floor import FloorPlane, FloorPrior, rest_on_floor
from cad_perception_ros.geometry.sensor_depth import DEFAULT_RANGE_M, clean_depth
from cad_perception_ros.runtime.backends import make_backend
from cad_perception_ros.runtime.crop_stage import has_crop_network, load_crop_stage
from cad_perception_ros.runtime.network import (
    LoadedNetwork,
    decode_function,
    load_cad_database,
    load_network,
)
from cad_perception_ros.runtime.onnx_cache import resolve_onnx
from cad_perception_ros.runtime.rescoring import has_crop_classifier, load_rescorer
from cad_perception_ros.types import CadPrediction

# decode(raw, *, image_size=(H, W) of the original image, score_threshold, timings)
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


def preprocess(image: np.ndarray, K: np.ndarray, input_size: tuple[int, int]) -> Preprocessed:
    """Validate, resize (bilinear, PIL) to input_size (h, w), scale K, normalise to [0, 1] NCHW float32."""
    image, K = validate_image(image), validate_intrinsics(K)
    height, width = image.shape[:2]
    h, w = input_size
    if (height, width) != (h, w):
        image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))  # (h, w, 3)
    sx, sy = resize_factors((height, width), (h, w))
    K_input = scale_intrinsics(K, sx, sy)
    tensor = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0  # (1, 3, h, w)
    return Preprocessed({"image": tensor, "K": K_input[None].astype(np.float32)}, K_input, (sx, sy))


class CadAligner:
    """image_rgb (H, W, 3) uint8 + K (3, 3) [+ depth (H, W) metres] -> list[CadPrediction] in the
    original image's pixels. depth_range: (min, max) metres of valid sensor depth; floor_prior:
    how far a floor plane may move an object; depth_fit: None (off) or the ICP's settings (module docstring)."""

    def __init__(self, *, backend, decode: DecodeFn, input_size: tuple[int, int], class_names: tuple[str, ...],
                 cad_database=None, model_name: str = "", score_threshold: float = 0.5, crop_stage=None,
                 depth_range: tuple[float, float] = DEFAULT_RANGE_M, floor_prior: FloorPrior = FloorPrior(),
                 depth_fit: DepthFitConfig | None = None, rescorer=None):
        self.backend = backend
        self.decode = decode
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.class_names = tuple(class_names)
        self.cad_database = cad_database
        self.model_name = model_name
        self.score_threshold = float(score_threshold)
        self.crop_stage = crop_stage
        self.depth_range = (float(depth_range[0]), float(depth_range[1]))
        self.floor_prior = floor_prior
        self.depth_fit = depth_fit
        self.rescorer = rescorer
        self._extents = {m.cad_id: m.extent for m in cad_database} if cad_database is not None else {}
        self.last_timings: dict[str, float] = {}

    @classmethod
    def from_model_dir(cls, model_dir: "str | Path | LoadedNetwork", backend: str = "torch", device: str = "cpu",
                       cad_db=None, score_threshold: float | None = None, retrieval: str | None = None,
                       **backend_options) -> "CadAligner":
        """Load a model directory (see model/checkpoint.py), or take a LoadedNetwork, and build the
        named backend on `device`.

        retrieval: "learned" (the model's CAD embeddings), "chamfer" (nearest CAD by Chamfer distance
        between predicted NOCs and the database's surface samples) or None (the model's retrieval_mode).
        """
        net = model_dir if isinstance(model_dir, LoadedNetwork) else load_network(model_dir)
        database = load_cad_database(net, cad_db)
        index = _decode_index(net, retrieval, database)
        if backend == "torch":
            runner = make_backend("torch", model=net.model, device=device, **backend_options)
        else:
            runner = make_backend(backend, onnx_path=resolve_onnx(net), device=device, **backend_options)
        threshold = net.config.score_threshold if score_threshold is None else float(score_threshold)
        crop_stage = rescorer = None
        if net.config.kind == "roca" and has_crop_network(net.model_dir):  # ROCA v2: zoom-in crop network
            crop_stage = load_crop_stage(net.model_dir, backend=backend)
        if net.config.kind == "roca" and has_crop_classifier(net.model_dir):  # and its detection rescoring
            rescorer = load_rescorer(net.model_dir, backend=backend)
        return cls(backend=runner, decode=decode_function(net, index),
                   input_size=net.input_size, class_names=net.config.class_names,
                   cad_database=database, model_name=net.config.name, score_threshold=threshold,
                   crop_stage=crop_stage, rescorer=rescorer)

    def __call__(self, image_rgb: np.ndarray, K: np.ndarray, depth: np.ndarray | None = None,
                 floor: FloorPlane | None = None) -> list[CadPrediction]:
        """ValueError (geometry.sensor_depth.DepthError for the depth) on bad input; floor: see the module docstring."""
        t0 = time.perf_counter()
        pre = preprocess(image_rgb, K, self.input_size)
        with_depth = {}
        if depth is not None:
            with_depth["depth"] = clean_depth(depth, image_rgb.shape[:2], self.depth_range)  # (H, W), 0 = hole
        t1 = time.perf_counter()
        raw = self.backend.run(pre.inputs)
        t2 = time.perf_counter()
        timings: dict[str, float] = {}
        candidates = self.score_threshold
        if self.rescorer is not None:
            candidates = min(candidates, self.rescorer.config.candidate_score)
        predictions = self.decode(raw, image_size=image_rgb.shape[:2], score_threshold=candidates,
                                  timings=timings, **with_depth)
        t3 = time.perf_counter()
        rescore_ms = 0.0
        if self.rescorer is not None:
            predictions = self.rescorer(image_rgb, predictions, self.score_threshold)
            rescore_ms = (time.perf_counter() - t3) * 1e3
            t3 = time.perf_counter()
        crop_ms = 0.0
        if self.crop_stage is not None:
            predictions = self.crop_stage(image_rgb, validate_intrinsics(K), predictions, **with_depth)
            crop_ms = (time.perf_counter() - t3) * 1e3
            t3 = time.perf_counter()
        fit_ms = 0.0
        if self.depth_fit is not None and depth is not None and self.cad_database is not None:
            predictions = fit_to_depth(predictions, with_depth["depth"], validate_intrinsics(K), self._cad_samples,
                                       self.depth_fit)
            fit_ms = (time.perf_counter() - t3) * 1e3
            t3 = time.perf_counter()
        if floor is not None and depth is None:
            predictions = rest_on_floor(predictions, floor, self._extents.get, self.floor_prior)
        decode_ms = (t3 - t2) * 1e3 - crop_ms - fit_ms - rescore_ms
        procrustes, retrieval = timings.get("procrustes", 0.0), timings.get("retrieval", 0.0)
        self.last_timings = {"preprocess": (t1 - t0) * 1e3, "network": (t2 - t1) * 1e3,
                             "procrustes": procrustes, "retrieval": retrieval,
                             "postprocess": max(decode_ms - procrustes - retrieval, 0.0), "total": (t3 - t0) * 1e3}
        if self.crop_stage is not None:
            self.last_timings["crop"] = crop_ms
        if fit_ms:
            self.last_timings["depth_fit"] = fit_ms
        if self.rescorer is not None:
            self.last_timings["rescore"] = rescore_ms
        return predictions

    def _cad_samples(self, cad_id: str) -> np.ndarray | None:
        """(P, 3) canonical surface samples of a retrieved CAD, None where it is not in the database."""
        return self.cad_database.points[self.cad_database.index_of(cad_id)] if cad_id in self.cad_database else None


def _decode_index(net: LoadedNetwork, retrieval: str | None, database):
    """The decode index: the model's own (CAD embeddings, or a points2objects model's exemplars) or,
    for retrieval "chamfer", a ChamferIndex over the database (ROCA models only)."""
    if net.config.kind == "points2objects":
        if retrieval not in (None, "learned"):
            raise ValueError(f"retrieval {retrieval!r}: a points2objects model selects shape exemplars; "
                             "only its own selection (retrieval None or 'learned') is available")
        return net.index
    retrieval = retrieval or net.config.ablation.retrieval_mode
    if retrieval not in ("learned", "chamfer"):
        raise ValueError(f"retrieval must be 'learned' or 'chamfer', got {retrieval!r}")
    if retrieval == "chamfer":
        if database is None:
            raise ValueError("chamfer retrieval needs a CAD database (meta.json cad_db or cad_db=...)")
        return chamfer_index(database, list(net.config.class_names))
    return net.index
