"""Loading the aligner the node runs: the model pipeline (CadAligner) or a fixture that replays
recorded predictions (model "fixture:<json>", for node tests and the demo without a model).

ROS-free. Fixture JSON (written by ``write_fixture``):
    {"model_name": str, "class_names": [str], "cad_models": {cad_id: {"mesh_uri", "extent"}},
     "default": [prediction], "by_image_sha1": {sha1 of the RGB (H, W, 3) uint8 bytes: [prediction]},
     "delay_ms": artificial processing time per call (optional, default 0),
     "raise_on_image_sha1": [sha1] images on which the call raises FixtureFailure (optional)}
    prediction = {class_id, class_name, score, box_xyxy (4), rotation (3x3), translation (3),
                  scale (3), cad_id, retrieval_distance}
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cad_perception_ros.cad.format import CadDatabaseError
from cad_perception_ros.jsonio import read_json_object
from cad_perception_ros.mapping.predictions_io import prediction_from_dict, prediction_to_dict
from cad_perception_ros.model.checkpoint import read_meta
from cad_perception_ros.paths import mesh_uri
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.geometry.depth_fit import DepthFitConfig
from cad_perception_ros.geometry.floor import rest_on_floor
from cad_perception_ros.ros.conversions import CadInfo, CadLookup, database_lookup
from cad_perception_ros.ros.params import FIXTURE_PREFIX, NodeParams
from cad_perception_ros.runtime.network import (
    default_model_dir,
    model_database,
    model_dir_kind,
)
from cad_perception_ros.types import SCAN2CAD_CLASSES, CadPrediction

BUNDLED_MODEL_DIR = default_model_dir()


class AlignerLoadError(RuntimeError):
    """The model, backend or CAD database could not be loaded; the message says which and why."""


class FixtureFailure(RuntimeError):
    """Raised by a FixtureAligner on an image listed in raise_on_image_sha1 (fault injection)."""


def image_key(rgb: np.ndarray) -> str:
    """Fixture key of an image: sha1 of its contiguous (H, W, 3) uint8 RGB bytes."""
    return hashlib.sha1(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()).hexdigest()


def prediction_from_json(d: dict[str, Any], where: str) -> CadPrediction:
    """predictions_io.prediction_from_dict; AlignerLoadError naming `where` on a bad entry."""
    try:
        return prediction_from_dict(d, where)
    except ValueError as exc:
        raise AlignerLoadError(str(exc)) from None


def write_fixture(path: str | Path, *, default: Sequence[CadPrediction] = (),
                  by_image: dict[str, Sequence[CadPrediction]] | None = None,
                  cad_models: dict[str, CadInfo] | None = None, model_name: str = "fixture",
                  delay_ms: float = 0.0, raise_on_images: Sequence[str] = ()) -> Path:
    """Write a fixture JSON; delay_ms and raise_on_images (sha1 keys) inject slowness and failures."""
    data = {"model_name": model_name, "class_names": list(SCAN2CAD_CLASSES),
            "delay_ms": float(delay_ms), "raise_on_image_sha1": list(raise_on_images),
            "cad_models": {k: {"mesh_uri": v.mesh_uri, "extent": list(v.extent)} for k, v in (cad_models or {}).items()},
            "default": [prediction_to_dict(p) for p in default],
            "by_image_sha1": {k: [prediction_to_dict(p) for p in v] for k, v in (by_image or {}).items()}}
    path = Path(path)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


class FixtureAligner:
    """Deterministic stand-in for CadAligner: the predictions recorded for the given image
    (by content hash) or the default list. Same call signature and attributes."""

    def __init__(self, *, predictions: dict[str, list[CadPrediction]], default: list[CadPrediction],
                 cad_models: dict[str, CadInfo], class_names: tuple[str, ...], model_name: str,
                 delay_s: float = 0.0, raise_on: frozenset[str] = frozenset()):
        if not (0.0 <= delay_s <= 60.0):
            raise AlignerLoadError(f"fixture delay {delay_s} s outside [0, 60]")
        self._predictions, self._default = predictions, default
        self._delay_s, self._raise_on = delay_s, raise_on
        self.cad_models, self.class_names, self.model_name = cad_models, class_names, model_name
        self.cad_database = None
        self.score_threshold = 0.0  # applied in __call__, like CadAligner's (the node sets the live value)
        self.last_timings: dict[str, float] = {}
        self.calls_with_depth = 0

    @classmethod
    def from_json(cls, path: str | Path) -> "FixtureAligner":
        path = Path(path)
        data = read_json_object(path, what="fixture", error=AlignerLoadError)
        where = str(path)
        try:
            delay_s = float(data.get("delay_ms", 0.0)) / 1e3
            raise_on = frozenset(str(k) for k in data.get("raise_on_image_sha1", []))
        except (TypeError, ValueError) as exc:
            raise AlignerLoadError(f"fixture {path}: bad delay_ms / raise_on_image_sha1: {exc}") from None
        return cls(delay_s=delay_s, raise_on=raise_on,predictions={k: [prediction_from_json(d, where) for d in v]
                                for k, v in data.get("by_image_sha1", {}).items()},
                   default=[prediction_from_json(d, where) for d in data.get("default", [])],
                   cad_models={k: CadInfo(v["mesh_uri"], tuple(float(x) for x in v["extent"]))
                               for k, v in data.get("cad_models", {}).items()},
                   class_names=tuple(data.get("class_names", SCAN2CAD_CLASSES)),
                   model_name=str(data.get("model_name", "fixture")))

    def __call__(self, image_rgb: np.ndarray, K: np.ndarray, depth: np.ndarray | None = None,
                 floor=None) -> list[CadPrediction]:
        """depth (a registered depth map) is counted in calls_with_depth and otherwise ignored; with
        a floor (and no depth) the recorded predictions stand on it as CadAligner's do (unit CAD boxes)."""
        self.calls_with_depth += depth is not None
        # The content hash (24 ms for a 1920x1080 image) only when some image has its own entry.
        key = image_key(image_rgb) if (self._predictions or self._raise_on) else ""
        if self._delay_s > 0:
            time.sleep(self._delay_s)  # stands in for inference time
        if key in self._raise_on:
            raise FixtureFailure(f"fixture: injected failure on image {key[:12]}")
        kept = [p for p in self._predictions.get(key, self._default) if p.score >= self.score_threshold]
        return kept if floor is None or depth is not None else rest_on_floor(kept, floor)

    def lookup(self, cad_id: str) -> CadInfo | None:
        return self.cad_models.get(cad_id)


def load_aligner(params: NodeParams) -> tuple[Any, CadLookup]:
    """Build the aligner named by `params` and the CAD lookup for its messages.

    Raises AlignerLoadError naming what is missing (pipeline module, model dir, CAD database).
    """
    if params.model.startswith(FIXTURE_PREFIX):
        aligner = FixtureAligner.from_json(params.model[len(FIXTURE_PREFIX):])
        aligner.score_threshold = params.score_threshold
        return aligner, aligner.lookup
    model_dir = Path(params.model_dir).expanduser() if params.model_dir else default_model_dir(params.model)
    if not (model_dir / "meta.json").is_file():
        raise AlignerLoadError(f"model directory {model_dir} has no meta.json (train or export a model, "
                               "or set the model_dir parameter)")
    try:
        kind = model_dir_kind(model_dir)
    except ValueError as exc:
        raise AlignerLoadError(str(exc)) from None
    if kind != params.model:
        raise AlignerLoadError(f"parameter model is {params.model!r} but model directory {model_dir} holds a "
                               f"{kind!r} model: set model:={kind} or point model_dir at a {params.model} model")
    cad_db = load_checked_database(model_dir, params.cad_db)
    try:
        aligner = CadAligner.from_model_dir(model_dir, backend=params.backend, device=params.device,
                                            cad_db=cad_db, score_threshold=params.score_threshold)
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
        raise AlignerLoadError(f"cannot load model {model_dir} ({params.backend}, {params.device}): {exc}") from None
    scheme = params.mesh_uri_scheme
    return aligner, database_lookup(getattr(aligner, "cad_database", None),
                                    mesh_uri=lambda path: mesh_uri(path, scheme))


def load_checked_database(model_dir: Path, cad_db: str = ""):
    """The CAD database the node serves (`cad_db`, else the one meta.json names; None if neither),
    loaded strictly: a database that is named but broken (missing mesh, bad manifest), or that
    lacks CAD models the model's embeddings name, raises AlignerLoadError instead of degrading."""
    meta = read_meta(model_dir, error=AlignerLoadError)
    try:
        return model_database(model_dir, meta, cad_db, strict=True)
    except CadDatabaseError as exc:
        raise AlignerLoadError(str(exc)) from None


def filter_predictions(predictions: Sequence[CadPrediction], params: NodeParams) -> list[CadPrediction]:
    """Class filter and max_objects, sorted by descending score. The score threshold is not
    applied here: the aligner applies it, once (see run_aligner)."""
    classes = params.classes
    kept = [p for p in predictions if not classes or p.class_name in classes]
    return sorted(kept, key=lambda p: -p.score)[: params.max_objects]


def run_aligner(aligner, image_rgb: np.ndarray, K: np.ndarray, params: NodeParams,
                depth: np.ndarray | None = None, floor=None, min_score: float | None = None) -> list[CadPrediction]:
    """The aligner on one image at the current score_threshold (set on the aligner, which applies
    it once, before its alignment and retrieval work), then the class filter and max_objects.
    depth: (H, W) metres registered to the image (0 = hole) or None (RGB alone); floor: a
    geometry.floor.FloorPlane in the camera frame or None; min_score: a lower threshold to run at
    instead (the object map's map_fuse_score; the caller splits off what passes score_threshold)."""
    aligner.score_threshold = params.score_threshold if min_score is None else min(params.score_threshold, min_score)
    extra = {} if floor is None else {"floor": floor}
    if depth is None:
        return filter_predictions(aligner(image_rgb, K, **extra), params)
    aligner.depth_range = (params.depth_min_m, params.depth_max_m)
    if hasattr(aligner, "depth_fit"):  # CadAligner (a fixture aligner has no CAD surface to fit)
        aligner.depth_fit = DepthFitConfig() if params.depth_fit else None
    return filter_predictions(aligner(image_rgb, K, depth, **extra), params)


def model_classes(aligner) -> tuple[str, ...] | None:
    """Class names of a loaded aligner (CadAligner: its network config; fixture: its list)."""
    names = getattr(aligner, "class_names", None)
    return None if names is None else tuple(names)
