"""Per-scene protocol of Vid2CAD / ROCA (cangumeli/ROCA roca/evaluation/vid2cad_evaluation.py).

Per-frame predictions with score >= score_threshold are mapped to the scene's world frame with
the frame's camera_to_world pose, pooled per scene and sorted by score; a lower-scoring
prediction is dropped as a duplicate of a kept higher-scoring one of the same class when
translation <= 0.4 m, scale ratio error <= 0.6 and rotation error <= 60 degrees (using the
symmetry of the higher-scoring prediction's CAD model). The survivors are evaluated against the
scene's objects (world frame) with the Scan2CAD criteria of `metrics.py`. Detection AP is
computed per frame on the 2D boxes.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cad_perception_ros.data.sample import ObjectAnnotation
from cad_perception_ros.evaluation.metrics import (
    AlignmentAccumulator,
    EvaluationConfig,
    EvaluationResults,
    rotation_error_deg,
    scale_ratio_error,
    translation_error,
)
from cad_perception_ros.types import SCAN2CAD_CLASSES, Alignment9D, CadPrediction, passes_score


@dataclass
class SceneFrame:
    """One evaluated frame: predictions and ground truth in its camera frame, plus its pose.

    camera_to_world: (4, 4) rigid transform, camera optical frame -> scene world frame.
    """

    scene_id: str
    camera_to_world: np.ndarray
    predictions: Sequence[CadPrediction]
    objects: Sequence[ObjectAnnotation] = ()


def alignment_to_world(alignment: Alignment9D, camera_to_world: np.ndarray) -> Alignment9D:
    """Compose a camera-frame alignment with a rigid camera_to_world (4, 4): R_w = R_cw R, t_w = R_cw t + t_cw."""
    pose = np.asarray(camera_to_world, dtype=np.float64)
    if pose.shape != (4, 4):
        raise ValueError(f"camera_to_world must have shape (4, 4), got {pose.shape}")
    rot, trans = pose[:3, :3], pose[:3, 3]
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-4) or np.linalg.det(rot) < 0:
        raise ValueError("camera_to_world must be a rigid transform (orthonormal rotation, det +1)")
    return Alignment9D(rotation=rot @ alignment.rotation, translation=rot @ alignment.translation + trans,
                       scale=alignment.scale.copy())


def scene_objects_from_frames(frames: Iterable[SceneFrame], tolerance_m: float = 0.01
                              ) -> dict[str, list[ObjectAnnotation]]:
    """World-frame ground truth per scene from the frames' annotations, duplicates merged.

    Two annotations are the same object when class and cad_id agree and their world
    translations are within tolerance_m (the frames of one scene see the same static objects).
    """
    scenes: dict[str, list[ObjectAnnotation]] = {}
    for frame in frames:
        objects = scenes.setdefault(frame.scene_id, [])
        for obj in frame.objects:
            world = alignment_to_world(obj.alignment, frame.camera_to_world)
            seen = any(o.class_id == obj.class_id and o.cad_id == obj.cad_id
                       and translation_error(o.alignment.translation, world.translation) <= tolerance_m
                       for o in objects)
            if not seen:
                objects.append(dataclasses.replace(obj, alignment=world))
    return scenes


def scene_nms(predictions: Sequence[CadPrediction], config: EvaluationConfig,
              symmetry_of: Mapping[str, str] | None = None) -> list[CadPrediction]:
    """ROCA's duplicate removal on world-frame predictions; returns survivors by descending score."""
    ranked = sorted(predictions, key=lambda p: -p.score)
    kept: list[CadPrediction] = []
    for cand in ranked:
        duplicate = False
        for best in kept:
            if best.class_id != cand.class_id:
                continue
            sym = symmetry_of.get(best.cad_id, "none") if symmetry_of is not None else "none"
            a, b = best.alignment, cand.alignment
            if (translation_error(a.translation, b.translation) <= config.nms_translation_m
                    and scale_ratio_error(a.scale, b.scale) <= config.nms_scale_ratio
                    and rotation_error_deg(a.rotation, b.rotation, sym) <= config.nms_rotation_deg):
                duplicate = True
                break
        if not duplicate:
            kept.append(cand)
    return kept


def evaluate_scenes(frames: Iterable[SceneFrame],
                    scene_objects: Mapping[str, Sequence[ObjectAnnotation]] | None = None, *,
                    config: EvaluationConfig | None = None, class_names: Sequence[str] = SCAN2CAD_CLASSES,
                    symmetry_of: Mapping[str, str] | None = None,
                    cad_iou: Callable[[str, str], float] | None = None) -> EvaluationResults:
    """Per-scene evaluation. scene_objects: world-frame ground truth per scene id; when None it is
    built from the frames with `scene_objects_from_frames`. Every scene in scene_objects counts,
    also those without any frame (as ROCA counts excluded scenes' objects)."""
    frames = list(frames)
    acc = AlignmentAccumulator(config=config, class_names=class_names, symmetry_of=symmetry_of, cad_iou=cad_iou)
    if scene_objects is None:
        scene_objects = scene_objects_from_frames(frames)
    pooled: dict[str, list[CadPrediction]] = {}
    for frame in frames:
        acc.add_detections(frame.predictions, frame.objects)
        world = [dataclasses.replace(p, alignment=alignment_to_world(p.alignment, frame.camera_to_world))
                 for p in frame.predictions if passes_score(p.score, acc.config.score_threshold)]
        pooled.setdefault(frame.scene_id, []).extend(world)
    for scene_id in sorted(set(scene_objects) | set(pooled)):
        survivors = scene_nms(pooled.get(scene_id, []), acc.config, symmetry_of)
        acc.add_alignments(survivors, list(scene_objects.get(scene_id, [])))
    return acc.results("scene")
