"""One annotated view: the contract between data sets, the renderer and the models.

All arrays are numpy. Frames follow ``cad_perception_ros.types`` (optical camera frame,
canonical CAD frame in the unit cube).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from cad_perception_ros.types import SCAN2CAD_CLASSES, Alignment9D


@dataclass
class ObjectAnnotation:
    """Ground truth of one object in one view.

    class_id: index into SCAN2CAD_CLASSES. cad_id: id in the CAD database.
    alignment: canonical -> camera (R diag(s) x + t). box_xyxy: (4,) float pixels, tight
    box of the visible mask. symmetry: one of SYMMETRIES. visible_pixels: mask area.
    """

    class_id: int
    cad_id: str
    alignment: Alignment9D
    box_xyxy: np.ndarray
    symmetry: str = "none"
    visible_pixels: int = 0


@dataclass
class SceneSample:
    """One view with full ground truth.

    image: (H, W, 3) uint8 RGB.            depth: (H, W) float32 metres along the optical axis,
    K: (3, 3) float64 intrinsics.           0 where unknown.
    instance_map: (H, W) int32, index into `objects`, -1 for background (floor, walls).
    noc: (H, W, 3) float32 canonical coordinates of the surface seen at each object pixel
         (0 on background).
    camera_to_world: (4, 4) float64 pose of the camera in its scene (for per-scene evaluation).
    """

    image: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    instance_map: np.ndarray
    noc: np.ndarray
    objects: list[ObjectAnnotation] = field(default_factory=list)
    image_id: str = ""
    scene_id: str = ""
    camera_to_world: np.ndarray = field(default_factory=lambda: np.eye(4))

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.image.shape[0], self.image.shape[1]


def objects_in_model_classes(objects, class_names) -> list:
    """Ground truth (class ids in SCAN2CAD_CLASSES order) re-indexed to the model's class list by
    name; objects of classes the model does not predict are left out of its evaluation."""

    names = list(class_names)
    out = []
    for obj in objects:
        name = SCAN2CAD_CLASSES[obj.class_id] if 0 <= obj.class_id < len(SCAN2CAD_CLASSES) else None
        if name in names:
            out.append(replace(obj, class_id=names.index(name)))
    return out
