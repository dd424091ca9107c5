"""The object map (ROS-free): per-frame alignments fused over time in a fixed frame.

Each frame brings the predictions of one image (camera optical frame) and the camera's pose in the
map frame (camera_to_map, e.g. from mapping.tf_buffer). Predictions are moved to the map frame and
matched to the map objects of their class by centre distance (Hungarian, gate match_distance_m;
the distance along the viewing ray counts 1 / depth_uncertainty_ratio, as monocular depth is the
least sure direction).
A matched object keeps its id and takes the observation; an unmatched prediction starts an
object. An object's estimate is robust over its observations: ray-weighted robust mean of the centres,
weighted median of the (log) scales, symmetry-aware rotation average (averaging.py); its CAD model
is the score-weighted vote of the observations, its confidence the noisy-or of their scores
(times miss_confidence_factor per miss; 1 by default: misses
remove an object, they do not rank it).
An object whose centre should have been visible (in front of the camera, within max_range_m,
projecting inside the image) but was not matched counts a miss; after max_missed such frames in
a row it is removed and its id never comes back. Objects out of view are kept as they are.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from cad_perception_ros.geometry.camera import project
from cad_perception_ros.mapping.averaging import (
    average_rotations,
    medoid_rotation,
    nearest_equivalent,
    ray_scaled_distance,
    ray_weighted_mean,
    weighted_median,
)
from cad_perception_ros.mapping.tf_buffer import RigidTransform
from cad_perception_ros.types import Alignment9D, CadPrediction


@dataclass(frozen=True)
class MapConfig:
    """Fusion settings. Raises ValueError on a value outside its range."""

    match_distance_m: float = 0.5    # a prediction joins a map object of its class within this centre distance
    score_threshold: float = 0.3     # predictions below are not fused (evidence adds up: noisy-or confidence)
    max_missed: int = 3              # frames in a row an object should have been seen and was not
    max_range_m: float = 8.0         # beyond this the camera is not expected to see an object
    image_margin_px: float = 0.0     # the centre must project this far inside the image to count as visible
    max_observations: int = 50       # most recent observations kept per object
    depth_uncertainty_ratio: float = 3.0  # a centre is this many times less sure along its viewing ray (1 = isotropic)
    miss_confidence_factor: float = 1.0   # per miss, confidence *= this (1 = misses only remove; see docs/object_map.md)

    def __post_init__(self) -> None:
        if not (1.0 <= self.depth_uncertainty_ratio <= 100.0):
            raise ValueError(f"MapConfig.depth_uncertainty_ratio must be in [1, 100], got {self.depth_uncertainty_ratio!r}")
        if not (0.0 <= self.miss_confidence_factor <= 1.0):
            raise ValueError(f"MapConfig.miss_confidence_factor must be in [0, 1], got {self.miss_confidence_factor!r}")
        for name in ("match_distance_m", "max_range_m"):
            value = getattr(self, name)
            if not (value > 0 and np.isfinite(value)):
                raise ValueError(f"MapConfig.{name} must be positive and finite, got {value!r}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"MapConfig.score_threshold must be in [0, 1], got {self.score_threshold!r}")
        if self.max_missed < 1 or self.max_observations < 1:
            raise ValueError(f"MapConfig.max_missed and max_observations must be >= 1, got "
                             f"{self.max_missed!r}, {self.max_observations!r}")


@dataclass
class Observation:
    """One prediction moved to the map frame, with its score, CAD id, stamp (seconds), image box
    and viewing ray (3,), the unit vector from the camera centre to the object, map frame."""

    alignment: Alignment9D
    score: float
    cad_id: str
    stamp_s: float
    box_xyxy: np.ndarray
    ray: np.ndarray


@dataclass
class MapObject:
    """One object of the map: stable object_id (all classes) and number (within its class), the
    fused alignment (canonical -> map frame), confidence in [0, 1], last-seen stamp (seconds),
    frames missed in a row (and in all) while it should have been visible."""

    object_id: int
    number: int
    class_id: int
    class_name: str
    alignment: Alignment9D
    cad_id: str
    confidence: float
    last_seen_s: float
    observations: list[Observation] = field(default_factory=list)
    missed: int = 0
    misses_total: int = 0

    @property
    def name(self) -> str:
        """Stable name, e.g. "chair_3" (TF child frame after the prefix)."""
        return f"{self.class_name}_{self.number}"

    def as_prediction(self) -> CadPrediction:
        """The object as a CadPrediction in the map frame (score = confidence, box = last image box)."""
        return CadPrediction(class_id=self.class_id, class_name=self.class_name, score=self.confidence,
                             box_xyxy=self.observations[-1].box_xyxy, alignment=self.alignment, cad_id=self.cad_id)


def alignment_in_map(alignment: Alignment9D, camera_to_map: RigidTransform) -> Alignment9D:
    """A camera-frame alignment in the map frame: R_m = R_mc R, t_m = R_mc t + t_mc (scale unchanged)."""
    rot, trans = camera_to_map.rotation, camera_to_map.translation
    return Alignment9D(rot @ alignment.rotation, rot @ alignment.translation + trans, alignment.scale.copy())


class ObjectMap:
    """Objects that persist in the map frame with stable ids. symmetry_of(cad_id) -> "none" |
    "2fold" | "4fold" | "inf" (unknown CAD ids: "none")."""

    def __init__(self, config: MapConfig | None = None, *,
                 symmetry_of: Callable[[str], str] | None = None):
        self.config = config or MapConfig()
        self.symmetry_of = symmetry_of or (lambda cad_id: "none")
        self.objects: list[MapObject] = []
        self.removed = 0
        self._next_id = 0
        self._next_number: dict[str, int] = {}

    def clear(self) -> int:
        """Forget every object (ids keep counting up); returns how many there were."""
        count, self.objects = len(self.objects), []
        return count

    def update(self, predictions: Sequence[CadPrediction], camera_to_map: RigidTransform, K: np.ndarray,
               image_size: tuple[int, int], stamp_s: float) -> list[MapObject | None]:
        """Fuse one frame. predictions: camera optical frame. K (3, 3), image_size (H, W).
        Returns the map object of each prediction, in order (None for a prediction below the score
        threshold)."""
        kept = [i for i, p in enumerate(predictions) if p.score >= self.config.score_threshold]
        in_map = {i: alignment_in_map(predictions[i].alignment, camera_to_map) for i in kept}
        assigned: list[MapObject | None] = [None] * len(predictions)
        for class_name in sorted({predictions[i].class_name for i in kept}):
            rows = [i for i in kept if predictions[i].class_name == class_name]
            cols = [j for j, o in enumerate(self.objects) if o.class_name == class_name]
            centres = [in_map[i].translation for i in rows]
            rays = [_ray(in_map[i], camera_to_map) for i in rows]
            for r, c in self._match(centres, rays, [self.objects[j] for j in cols]):
                assigned[rows[r]] = self.objects[cols[c]]
        seen = {id(o) for o in assigned if o is not None}
        visible = self.visible(camera_to_map, K, image_size)
        for obj in self.objects:
            if id(obj) not in seen and id(obj) in visible:
                obj.missed, obj.misses_total = obj.missed + 1, obj.misses_total + 1
                obj.confidence = self._confidence(obj)
        before = len(self.objects)
        self.objects = [o for o in self.objects if o.missed < self.config.max_missed]
        self.removed += before - len(self.objects)
        for i in kept:
            p = predictions[i]
            observation = Observation(in_map[i], float(p.score), p.cad_id, float(stamp_s), np.asarray(p.box_xyxy),
                                      _ray(in_map[i], camera_to_map))
            obj = assigned[i]
            if obj is None:
                obj = assigned[i] = self._new_object(p, observation)
            self._observe(obj, observation)
        return assigned

    def visible(self, camera_to_map: RigidTransform, K: np.ndarray, image_size: tuple[int, int]) -> set[int]:
        """id() of the objects whose centre lies in front of the camera, within max_range_m, and
        projects inside the image shrunk by image_margin_px."""
        if not self.objects:
            return set()
        map_to_camera = camera_to_map.inverse()
        centres = np.stack([o.alignment.translation for o in self.objects])  # (M, 3) map frame
        in_camera = centres @ map_to_camera.rotation.T + map_to_camera.translation  # (M, 3) optical frame
        uv = project(torch.as_tensor(in_camera), torch.as_tensor(np.asarray(K, np.float64))).numpy()  # (M, 2)
        h, w, m = image_size[0], image_size[1], self.config.image_margin_px
        ok = ((in_camera[:, 2] > 0.1) & (np.linalg.norm(in_camera, axis=1) <= self.config.max_range_m)
              & (uv[:, 0] >= m) & (uv[:, 0] <= w - m) & (uv[:, 1] >= m) & (uv[:, 1] <= h - m))
        return {id(o) for o, v in zip(self.objects, ok) if v}

    def _match(self, centres: list[np.ndarray], rays: list[np.ndarray],
               objects: list[MapObject]) -> list[tuple[int, int]]:
        """(prediction index, object index) pairs within the gate, minimum total ray-scaled centre
        distance (the along-ray part divided by depth_uncertainty_ratio)."""
        if not centres or not objects:
            return []
        ratio = self.config.depth_uncertainty_ratio
        cost = np.array([[ray_scaled_distance(c, o.alignment.translation, r, ratio) for o in objects]
                         for c, r in zip(centres, rays)])  # (P, O) metres
        gate = self.config.match_distance_m
        rows, cols = linear_sum_assignment(np.where(cost <= gate, cost, 1e6))
        return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] <= gate]

    def _new_object(self, p: CadPrediction, observation: Observation) -> MapObject:
        number = self._next_number.get(p.class_name, 0)
        obj = MapObject(object_id=self._next_id, number=number, class_id=int(p.class_id), class_name=p.class_name,
                        alignment=observation.alignment, cad_id=p.cad_id, confidence=0.0,
                        last_seen_s=observation.stamp_s)
        self._next_id, self._next_number[p.class_name] = self._next_id + 1, number + 1
        self.objects.append(obj)
        return obj

    def _observe(self, obj: MapObject, observation: Observation) -> None:
        obj.observations = (obj.observations + [observation])[-self.config.max_observations:]
        obj.missed, obj.last_seen_s = 0, max(obj.last_seen_s, observation.stamp_s)
        obj.cad_id = vote_cad(obj.observations)
        obj.alignment = fuse(obj.observations, self.symmetry_of(obj.cad_id), obj.alignment,
                             self.config.depth_uncertainty_ratio)
        obj.confidence = self._confidence(obj)

    def _confidence(self, obj: MapObject) -> float:
        """noisy_or of the observations' scores, times miss_confidence_factor per miss in its life."""
        return noisy_or(obj.observations) * self.config.miss_confidence_factor ** obj.misses_total


def noisy_or(observations: Sequence[Observation]) -> float:
    """1 - prod(1 - score): the chance that at least one observation was right, if independent."""
    return float(1.0 - np.prod([1.0 - o.score for o in observations]))


def vote_cad(observations: Sequence[Observation]) -> str:
    """The CAD id with the largest total score (ties: the one seen first)."""
    votes: Counter[str] = Counter()
    for o in observations:
        votes[o.cad_id] += o.score
    return max(votes, key=lambda cad_id: (votes[cad_id], -[o.cad_id for o in observations].index(cad_id)))


def _ray(alignment: Alignment9D, camera_to_map: RigidTransform) -> np.ndarray:
    """(3,) unit vector from the camera centre to the object's centre, map frame."""
    d = alignment.translation - camera_to_map.translation
    return d / max(np.linalg.norm(d), 1e-9)


def fuse(observations: Sequence[Observation], symmetry: str, reference: Alignment9D,
         depth_uncertainty_ratio: float = 1.0) -> Alignment9D:
    """Robust alignment of one object from its observations (map frame), weights = scores.

    Rotation: symmetry-aware robust average starting at the medoid observation (turned to the
    equivalent nearest the current estimate `reference`, so a symmetric object's estimate does not
    jump between equivalents). Scale:
    per-axis weighted median of log scales, an observation's x and z scales swapped when its
    nearest equivalent is a quarter turn (4-fold symmetry). Translation: robust mean weighted by
    the viewing rays (averaging.ray_weighted_mean; ratio 1 = isotropic).
    """
    weights = np.array([max(o.score, 1e-3) for o in observations])  # (N,)
    rotations = np.stack([o.alignment.rotation for o in observations])  # (N, 3, 3)
    start = medoid_rotation(rotations, weights, symmetry) if len(observations) > 1 else reference.rotation
    rotation = average_rotations(rotations, weights, symmetry, nearest_equivalent(start, reference.rotation, symmetry)[0])
    scales = []
    for o in observations:
        _, turn = nearest_equivalent(o.alignment.rotation, rotation, symmetry)
        s = o.alignment.scale
        scales.append(s[[2, 1, 0]] if turn % 2 == 1 and symmetry == "4fold" else s)
    log_scales = np.log(np.maximum(np.stack(scales), 1e-6))  # (N, 3)
    scale = np.exp([weighted_median(log_scales[:, k], weights) for k in range(3)])  # (3,)
    translation = ray_weighted_mean(np.stack([o.alignment.translation for o in observations]),
                                    np.stack([o.ray for o in observations]), weights, depth_uncertainty_ratio)
    return Alignment9D(rotation, translation, scale)
