"""Decode P2ONet's static-shape outputs into CadPredictions (every backend, same conventions as
``model/roca/decode.decode``): score filtering, the 9-D -> SO(3) SVD projection with the
determinant fix (Eq. 6), the class-restricted exemplar selection and its CAD model, and boxes
mapped back from the network input to the original image. Timings: "procrustes" is the SVD,
"retrieval" the exemplar selection (milliseconds).
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch

from cad_perception_ros.geometry.rotations import svd_orthogonalize
from cad_perception_ros.model.config import ModelConfig
from cad_perception_ros.model.points2objects.network import EXPORT_OUTPUTS
from cad_perception_ros.model.points2objects.shape_selection import select_exemplars
from cad_perception_ros.model.roca.decode import boxes_to_image, to_torch
from cad_perception_ros.types import Alignment9D, CadPrediction, passes_score


class ExemplarIndex(NamedTuple):
    """Exemplar -> CAD model: class_ids (E,) int64, cad_ids (E ids, each a real CAD model)."""

    class_ids: np.ndarray
    cad_ids: list[str]

    @classmethod
    def from_exemplars(cls, exemplars) -> "ExemplarIndex":
        return cls(np.asarray(exemplars.class_ids, dtype=np.int64), list(exemplars.cad_ids))


def decode(raw: Mapping[str, Any], config: ModelConfig, *, index: ExemplarIndex, shape_labels: str = "soft",
           image_size: tuple[int, int] | None = None, score_threshold: float | None = None,
           timings: dict[str, float] | None = None, depth: np.ndarray | None = None) -> list[CadPrediction]:
    """Raw outputs of one image (batch axis 1) -> predictions in the original image.

    rotation = SVD projection of rotations_raw (det +1); cad_id = the CAD model of the exemplar
    with the highest logit among the detection's class; retrieval_distance = 1 - its shape
    probability (sigmoid for soft labels, softmax over the class's exemplars for hard ones).
    Translations are already in the camera frame. mask is None (no mask head). depth (a registered
    sensor depth map) is ignored: the network regresses the translation directly, from RGB alone.
    """
    out = to_torch(raw, EXPORT_OUTPUTS)
    if out["shape_logits"].shape[-1] != len(index.cad_ids):
        raise ValueError(f"decode: {out['shape_logits'].shape[-1]} shape logits for {len(index.cad_ids)} exemplars")
    thr = config.score_threshold if score_threshold is None else float(score_threshold)
    keep = torch.nonzero(passes_score(out["scores"], thr)).flatten()
    if keep.numel() == 0:
        return []
    sel = {k: out[k][keep] for k in EXPORT_OUTPUTS}
    t0 = time.perf_counter()
    rotation = svd_orthogonalize(sel["rotations_raw"].double()).numpy()  # (n, 3, 3)
    t1 = time.perf_counter()
    exemplar, distance = _select(sel["shape_logits"].double(), sel["classes"], index, shape_labels)
    t2 = time.perf_counter()
    if timings is not None:
        timings["procrustes"] = (t1 - t0) * 1e3
        timings["retrieval"] = (t2 - t1) * 1e3
    boxes, _ = boxes_to_image(sel["boxes"], config.input_size, image_size)
    preds = []
    for i in range(len(keep)):
        cls = int(sel["classes"][i])
        alignment = Alignment9D(rotation[i], sel["translations"][i].double().numpy(), sel["scales"][i].double().numpy())
        found = exemplar[i] >= 0
        preds.append(CadPrediction(class_id=cls, class_name=config.class_names[cls], score=float(sel["scores"][i]),
                                   box_xyxy=boxes[i], alignment=alignment,
                                   cad_id=index.cad_ids[exemplar[i]] if found else "",
                                   retrieval_distance=float(distance[i]) if found else float("nan"), mask=None))
    return preds


def _select(logits: torch.Tensor, classes: torch.Tensor, index: ExemplarIndex,
            shape_labels: str) -> tuple[np.ndarray, np.ndarray]:
    """logits (n, E), classes (n,) -> exemplar (n,) int (-1 when the class has none),
    1 - shape probability (n,)."""
    class_ids = torch.as_tensor(index.class_ids)
    exemplar = select_exemplars(logits, class_ids, classes)  # (n,)
    best = logits.gather(1, exemplar[:, None])[:, 0]  # (n,)
    if shape_labels == "soft":
        prob = torch.sigmoid(best)
    else:
        allowed = classes[:, None] == class_ids[None, :]
        masked = torch.where(allowed, logits, torch.full_like(logits, float("-inf")))
        prob = torch.softmax(masked, dim=1).gather(1, exemplar[:, None])[:, 0]
    same = class_ids[exemplar] == classes  # False when the class has no exemplar
    return torch.where(same, exemplar, -1).numpy(), (1.0 - prob).numpy()
