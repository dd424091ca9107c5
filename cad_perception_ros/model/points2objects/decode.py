"""Decode P2ONet's static-shape outputs into CadPredictions (every backend, same conventions as
``model/roca/decode.decode``): score filtering, the 9-D -> SO(3) SVD projection with the
determinant fix (Eq. 6), the class-restricted exemplar selection and its CAD model, and boxes
mapped back from the network input to the original image. Timings: "procrustes" is the SVD,
"retrieval" the exemplar selection (milliseconds).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch

from cad_perception_ros.geometry.rotations import svd_orthogonalize
from cad_perception_ros.model.config import P2OModelConfig
from cad_perception_ros.model.decoding import decode_detections, to_torch
from cad_perception_ros.model.points2objects.network import EXPORT_OUTPUTS
from cad_perception_ros.model.points2objects.shape_selection import select_exemplars
from cad_perception_ros.types import CadPrediction


class ExemplarIndex(NamedTuple):
    """Exemplar -> CAD model: class_ids (E,) int64, cad_ids (E ids, each a real CAD model)."""

    class_ids: np.ndarray
    cad_ids: list[str]

    @classmethod
    def from_exemplars(cls, exemplars) -> "ExemplarIndex":
        return cls(np.asarray(exemplars.class_ids, dtype=np.int64), list(exemplars.cad_ids))


def decode(raw: Mapping[str, Any], config: P2OModelConfig, *, index: ExemplarIndex,
           image_size: tuple[int, int] | None = None, score_threshold: float | None = None,
           timings: dict[str, float] | None = None, depth: np.ndarray | None = None) -> list[CadPrediction]:
    """Raw outputs of one image (batch axis 1) -> predictions in the original image.

    rotation = SVD projection of rotations_raw (det +1); cad_id = the CAD model of the exemplar
    with the highest logit among the detection's class; retrieval_distance = 1 - its shape
    probability (sigmoid for soft labels, softmax over the class's exemplars for hard ones:
    config.ablation.shape_labels).
    Translations are already in the camera frame. mask is None (no mask head). depth (a registered
    sensor depth map) is ignored: the network regresses the translation directly, from RGB alone.
    """
    out = to_torch(raw, EXPORT_OUTPUTS)
    if out["shape_logits"].shape[-1] != len(index.cad_ids):
        raise ValueError(f"decode: {out['shape_logits'].shape[-1]} shape logits for {len(index.cad_ids)} exemplars")

    def align(sel):  # (n, 3, 3) with det +1; translations are the network's, camera frame
        return svd_orthogonalize(sel["rotations_raw"].double()).numpy(), sel["translations"].double().numpy()

    def choose(sel):  # the exemplar's CAD model, 1 - its shape probability
        return _select(sel["shape_logits"].double(), sel["classes"], index, config.ablation.shape_labels)

    return decode_detections(out, config, EXPORT_OUTPUTS, align=align, choose=choose, cad_ids=index.cad_ids,
                             image_size=image_size, score_threshold=score_threshold, timings=timings)


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
