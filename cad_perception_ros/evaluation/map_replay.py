"""Replaying multi-view scenes through the object map and scoring the fused map (ROS-free).

Each scene's views are replayed in order as a camera moving through the scene: its camera_to_world
pose goes into a TfBuffer as the dynamic transform map <- camera_optical at the view's stamp (one
second apart), the fusion looks the pose up at the stamp, exactly as the node does with /tf. After
the last view the map's objects (world frame, score = confidence) are evaluated against the
scene's objects with the Scan2CAD criteria (metrics.py): one unit per scene, like the per-scene
protocol of scene.py, which pools the raw predictions with ROCA's NMS instead of fusing them.

Identity switches: in every view each ground-truth object is matched (same class, nearest centre
within MATCH_RADIUS_M, Hungarian) to a prediction; the id that prediction got (map object id, or
the camera-frame tracker's track id for comparison) is the object's id in that view; a change of
id between two consecutive views in which the object was matched is one switch.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from cad_perception_ros.data.sample import ObjectAnnotation
from cad_perception_ros.evaluation.metrics import AlignmentAccumulator, EvaluationConfig, EvaluationResults
from cad_perception_ros.evaluation.scene import SceneFrame, alignment_to_world, scene_objects_from_frames
from cad_perception_ros.mapping.object_map import MapConfig, ObjectMap
from cad_perception_ros.mapping.tf_buffer import RigidTransform, TfBuffer
from cad_perception_ros.tracking import ObjectTracker
from cad_perception_ros.types import SCAN2CAD_CLASSES, CadPrediction

MATCH_RADIUS_M = 0.4  # a prediction stands for a ground-truth object within this centre distance
STAMP_STEP_NS = 1_000_000_000
MAP_FRAME, CAMERA_FRAME = "map", "camera_optical"


@dataclass(frozen=True)
class ReplayView:
    """One view to replay: its scene frame (predictions + ground truth, camera frame), K (3, 3), (H, W)."""

    frame: SceneFrame
    K: np.ndarray
    image_size: tuple[int, int]


@dataclass
class MapReplay:
    """Per scene the fused map (world-frame CadPredictions), plus identity switches of the map and
    of the camera-frame tracker over the same views, and how many objects the map removed."""

    maps: dict[str, list[CadPrediction]]
    map_switches: int
    tracker_switches: int
    matched_observations: int
    removed: int


def replay(views: Sequence[ReplayView], *, config: MapConfig | None = None,
           symmetry_of: Callable[[str], str] | None = None) -> MapReplay:
    """Fuse every scene's views (in order) into a fresh ObjectMap; see the module docstring."""
    config = config or MapConfig()
    maps: dict[str, list[CadPrediction]] = {}
    map_switches = tracker_switches = matched = removed = 0
    for scene_id in dict.fromkeys(v.frame.scene_id for v in views):
        scene_views = [v for v in views if v.frame.scene_id == scene_id]
        fusion, tf = ObjectMap(config, symmetry_of=symmetry_of), TfBuffer(cache_time_s=3600.0, max_extrapolation_s=0.0)
        tracker = ObjectTracker()
        map_ids: list[dict[int, int]] = []
        track_ids: list[dict[int, int]] = []
        scene_gt = scene_objects_from_frames([v.frame for v in scene_views])[scene_id]
        for k, view in enumerate(scene_views):
            stamp = k * STAMP_STEP_NS
            tf.set_transform(MAP_FRAME, CAMERA_FRAME, stamp, RigidTransform.from_matrix(view.frame.camera_to_world))
            camera_to_map = tf.lookup(MAP_FRAME, CAMERA_FRAME, stamp)
            predictions = list(view.frame.predictions)
            assigned = fusion.update(predictions, camera_to_map, view.K, view.image_size, stamp_s=k * 1.0)
            strong = [i for i, p in enumerate(predictions) if p.score >= config.score_threshold]
            tracks = tracker.update([predictions[i] for i in strong])
            pairs = ground_truth_pairs(view.frame, predictions, strong, scene_gt)
            map_ids.append({g: assigned[i].object_id for g, i in pairs.items()})
            track_ids.append({g: tracks[strong.index(i)].track_id for g, i in pairs.items()})
            matched += len(pairs)
        map_switches += count_switches(map_ids)
        tracker_switches += count_switches(track_ids)
        removed += fusion.removed
        maps[scene_id] = [o.as_prediction() for o in fusion.objects]
    return MapReplay(maps, map_switches, tracker_switches, matched, removed)


def ground_truth_pairs(frame: SceneFrame, predictions: Sequence[CadPrediction], strong: Sequence[int],
                       scene_gt: Sequence[ObjectAnnotation]) -> dict[int, int]:
    """{scene ground-truth index: prediction index} for the view's objects matched one-to-one
    (Hungarian, camera frame) to a fused prediction (index in `strong`) of their class within
    MATCH_RADIUS_M."""
    objects = [o for o in frame.objects if o.class_id in {predictions[i].class_id for i in strong}]
    if not objects:
        return {}
    cost = np.full((len(objects), len(strong)), 1e6)  # (G, P) metres
    for g, obj in enumerate(objects):
        for c, i in enumerate(strong):
            if predictions[i].class_id == obj.class_id:
                cost[g, c] = np.linalg.norm(predictions[i].alignment.translation - obj.alignment.translation)
    out: dict[int, int] = {}
    for g, c in zip(*linear_sum_assignment(cost)):
        if cost[g, c] > MATCH_RADIUS_M:
            continue
        world = alignment_to_world(objects[g].alignment, frame.camera_to_world).translation
        index = next((j for j, s in enumerate(scene_gt) if s.class_id == objects[g].class_id
                      and s.cad_id == objects[g].cad_id and np.linalg.norm(s.alignment.translation - world) <= 0.01),
                     None)
        if index is not None:
            out[index] = strong[c]
    return out


def count_switches(ids_per_view: Sequence[Mapping[int, int]]) -> int:
    """Changes of id between consecutive views in which a ground-truth object was matched."""
    last: dict[int, int] = {}
    switches = 0
    for ids in ids_per_view:
        for gt, object_id in ids.items():
            if gt in last and last[gt] != object_id:
                switches += 1
            last[gt] = object_id
    return switches


def evaluate_map(replayed: MapReplay, frames: Sequence[SceneFrame], *, config: EvaluationConfig | None = None,
                 class_names: Sequence[str] = SCAN2CAD_CLASSES,
                 symmetry_of: Mapping[str, str] | None = None) -> EvaluationResults:
    """Scan2CAD metrics of the fused maps, one unit per scene (ground truth: scene_objects_from_frames)."""
    acc = AlignmentAccumulator(config=config, class_names=class_names, symmetry_of=symmetry_of)
    scene_objects = scene_objects_from_frames(frames)
    for scene_id in sorted(set(scene_objects) | set(replayed.maps)):
        acc.add_alignments(replayed.maps.get(scene_id, []), list(scene_objects.get(scene_id, [])))
    return acc.results("map")


def map_precision(replayed: MapReplay, frames: Sequence[SceneFrame], min_score: float = 0.5) -> tuple[int, int]:
    """(confident map objects, those standing for a real object): map objects with confidence >=
    min_score, and how many of them are matched one-to-one (Hungarian, same class, centre within
    MATCH_RADIUS_M, world frame) to a ground-truth object of their scene. What a planner is given
    and how much of it is there: the alignment metric counts no false object."""
    scene_objects = scene_objects_from_frames(frames)
    confident = true = 0
    for scene_id, objects in replayed.maps.items():
        kept = [p for p in objects if p.score >= min_score]
        gt = scene_objects.get(scene_id, [])
        confident += len(kept)
        if not kept or not gt:
            continue
        cost = np.full((len(kept), len(gt)), 1e6)
        for i, p in enumerate(kept):
            for j, o in enumerate(gt):
                if p.class_id == o.class_id:
                    cost[i, j] = float(np.linalg.norm(p.alignment.translation - o.alignment.translation))
        rows, cols = linear_sum_assignment(cost)
        true += int((cost[rows, cols] <= MATCH_RADIUS_M).sum())
    return confident, true
