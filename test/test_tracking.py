"""ObjectTracker: ids belong to objects, stay stable while in view, survive another object leaving."""
from __future__ import annotations

import numpy as np
import pytest

from cad_perception_ros.tracking import ObjectTracker
from cad_perception_ros.types import Alignment9D, CadPrediction


def pred(class_name: str, xyz, cad_id: str = "chair_a", score: float = 0.9) -> CadPrediction:
    return CadPrediction(class_id=1, class_name=class_name, score=score, box_xyxy=np.zeros(4),
                         alignment=Alignment9D(np.eye(3), np.asarray(xyz, float), np.ones(3)), cad_id=cad_id)


def names(tracks) -> list[str]:
    return [t.name for t in tracks]


def test_two_objects_of_one_cad_model_get_two_stable_ids():
    tracker = ObjectTracker(max_distance_m=0.5)
    first = names(tracker.update([pred("chair", [0, 0, 2]), pred("chair", [1, 0, 2])]))
    assert len(set(first)) == 2  # one CAD model, two objects
    # Next frame: list order swapped, small motion: each object keeps its own id.
    second = names(tracker.update([pred("chair", [1.05, 0, 2]), pred("chair", [0.02, 0, 2.03])]))
    assert second == [first[1], first[0]]


def test_object_leaving_does_not_rename_the_other():
    tracker = ObjectTracker(max_distance_m=0.5, max_missed=2)
    a, b = names(tracker.update([pred("chair", [0, 0, 2]), pred("chair", [1, 0, 2])]))
    (only,) = names(tracker.update([pred("chair", [1.0, 0, 2])]))  # the first chair left the view
    assert only == b
    for _ in range(3):  # gone longer than max_missed: its track is dropped
        tracker.update([pred("chair", [1.0, 0, 2])])
    assert [t.name for t in tracker.tracks] == [b]
    # An object appearing where the first was gets a new id, never the old one back.
    back = names(tracker.update([pred("chair", [1.0, 0, 2]), pred("chair", [0, 0, 2])]))
    assert back[0] == b and back[1] not in (a, b)


def test_classes_are_matched_apart_and_gate_applies():
    tracker = ObjectTracker(max_distance_m=0.3)
    chair, table = names(tracker.update([pred("chair", [0, 0, 2]), pred("table", [0.1, 0, 2])]))
    # A table at the chair's place does not inherit the chair's id; a jump beyond the gate is a new object.
    t2 = names(tracker.update([pred("table", [0.0, 0, 2]), pred("chair", [2.0, 0, 2])]))
    assert t2[0] == table and t2[1] != chair


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="max_distance_m"):
        ObjectTracker(max_distance_m=0.0)
    with pytest.raises(ValueError, match="max_missed"):
        ObjectTracker(max_missed=-1)
