"""Per-view predictions on disk (JSON), so a replay through the object map can rerun without the model.

File: {"model": str, "data": str, "split": str, "views": [[prediction, ...], ...]} with
prediction = {class_id, class_name, score, box_xyxy (4), rotation (3x3), translation (3), scale (3),
cad_id, retrieval_distance (null = NaN)}; every pose in its view's optical frame.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cad_perception_ros.jsonio import read_json_object
from cad_perception_ros.types import Alignment9D, CadPrediction


def prediction_to_dict(p: CadPrediction) -> dict[str, Any]:
    """JSON-ready dict of one prediction (no mask)."""
    return {"class_id": int(p.class_id), "class_name": p.class_name, "score": float(p.score),
            "box_xyxy": [float(v) for v in np.asarray(p.box_xyxy).reshape(4)],
            "rotation": np.asarray(p.alignment.rotation).tolist(),
            "translation": np.asarray(p.alignment.translation).tolist(),
            "scale": np.asarray(p.alignment.scale).tolist(), "cad_id": p.cad_id,
            "retrieval_distance": None if math.isnan(p.retrieval_distance) else float(p.retrieval_distance)}


def prediction_from_dict(d: dict[str, Any], where: str) -> CadPrediction:
    """Inverse of prediction_to_dict; ValueError naming `where` on a bad entry."""
    try:
        distance = d.get("retrieval_distance")
        return CadPrediction(class_id=int(d["class_id"]), class_name=str(d["class_name"]), score=float(d["score"]),
                             box_xyxy=np.asarray(d["box_xyxy"], dtype=np.float64),
                             alignment=Alignment9D(np.asarray(d["rotation"]), np.asarray(d["translation"]),
                                                   np.asarray(d["scale"])),
                             cad_id=str(d.get("cad_id", "")),
                             retrieval_distance=float("nan") if distance is None else float(distance))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: bad prediction entry: {exc!r}") from None


def write_predictions(path: str | Path, views: Sequence[Sequence[CadPrediction]], *, model: str,
                      data: str, split: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": model, "data": data, "split": split,
               "views": [[prediction_to_dict(p) for p in view] for view in views]}
    path.write_text(json.dumps(payload), encoding="utf-8")


def read_predictions(path: str | Path) -> dict[str, Any]:
    """{"model", "data", "split", "views": list[list[CadPrediction]]}; ValueError on a bad file."""
    data = read_json_object(path, what="predictions file")
    views = data.get("views")
    if not isinstance(views, list):
        raise ValueError(f"{path}: 'views' must be a list of lists of predictions")
    return {"model": str(data.get("model", "")), "data": str(data.get("data", "")),
            "split": str(data.get("split", "")),
            "views": [[prediction_from_dict(d, f"{path} view {i}") for d in view] for i, view in enumerate(views)]}
