"""Object identity across frames: a small per-class tracker on 3D centre distance (ROS-free).

Each frame's predictions are matched to the live tracks of their class by minimum total
distance between centres (the alignment's translation, metres, camera optical frame), with
the Hungarian method (scipy ``linear_sum_assignment``) and a gate ``max_distance_m``. A matched
prediction keeps its track's id; an unmatched one opens a new track with the next free number of its class; a
track not seen for more than ``max_missed`` frames is dropped and its id never comes back.

Ids name the object, not the CAD model (two chairs with one CAD model get two ids) nor the list
position (an object keeps its id when another leaves). The tracker assumes a camera that moves
little between frames (centres in the optical frame); the object map builds on it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from cad_perception_ros.types import CadPrediction


@dataclass
class Track:
    """One object: track_id (unique over the tracker's life, all classes), number (unique within
    its class), class, last centre (3,) in the optical frame, frames missed."""

    track_id: int
    number: int
    class_name: str
    centre: np.ndarray
    missed: int = 0

    @property
    def name(self) -> str:
        """Stable object name, e.g. "chair_3" (Detection3D.id; TF child frame after the prefix)."""
        return f"{self.class_name}_{self.number}"


class ObjectTracker:
    """Per-class Hungarian matching of predictions to tracks by centre distance."""

    def __init__(self, *, max_distance_m: float = 0.5, max_missed: int = 5):
        if not (max_distance_m > 0 and np.isfinite(max_distance_m)):
            raise ValueError(f"max_distance_m must be positive and finite, got {max_distance_m!r}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed!r}")
        self.max_distance_m, self.max_missed = float(max_distance_m), int(max_missed)
        self.tracks: list[Track] = []
        self._next_id = 0
        self._next_number: dict[str, int] = {}

    def reset(self) -> None:
        """Forget every track (ids keep counting up, so an old id is never reused)."""
        self.tracks = []

    def update(self, predictions: Sequence[CadPrediction]) -> list[Track]:
        """Match one frame; returns the track of each prediction, in the predictions' order."""
        assigned: list[Track | None] = [None] * len(predictions)
        matched_tracks: set[int] = set()
        for class_name in sorted({p.class_name for p in predictions}):
            rows = [i for i, p in enumerate(predictions) if p.class_name == class_name]
            cols = [j for j, t in enumerate(self.tracks) if t.class_name == class_name]
            for i, j in self._match([predictions[i] for i in rows], [self.tracks[j] for j in cols]):
                assigned[rows[i]] = self.tracks[cols[j]]
                matched_tracks.add(cols[j])
        for j, track in enumerate(self.tracks):
            if j not in matched_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for i, p in enumerate(predictions):
            track = assigned[i]
            if track is None:
                number = self._next_number.get(p.class_name, 0)
                track = Track(self._next_id, number, p.class_name, _centre(p))
                self._next_id, self._next_number[p.class_name] = self._next_id + 1, number + 1
                self.tracks.append(track)
                assigned[i] = track
            track.centre, track.missed = _centre(p), 0
        return [t for t in assigned if t is not None]

    def _match(self, predictions: list[CadPrediction], tracks: list[Track]) -> list[tuple[int, int]]:
        """(prediction index, track index) pairs within the gate, minimum total distance."""
        if not predictions or not tracks:
            return []
        centres = np.stack([_centre(p) for p in predictions])  # (P, 3)
        previous = np.stack([t.centre for t in tracks])  # (T, 3)
        cost = np.linalg.norm(centres[:, None, :] - previous[None, :, :], axis=-1)  # (P, T) metres
        gated = np.where(cost <= self.max_distance_m, cost, 1e6)
        rows, cols = linear_sum_assignment(gated)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] <= self.max_distance_m]


def _centre(p: CadPrediction) -> np.ndarray:
    return np.asarray(p.alignment.translation, dtype=np.float64).reshape(3)  # (3,) optical frame
