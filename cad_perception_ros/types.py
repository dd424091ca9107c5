"""Core value types shared by the model, the runtime and the ROS layer.

Frames and conventions (used everywhere in the project):
  * Camera / optical frame: x right, y down, z forward (OpenCV), metres.
  * Intrinsics K (3, 3): pixel (u, v) = (fx X/Z + cx, fy Y/Z + cy); u = column, v = row;
    the centre of pixel (row r, col c) is (u, v) = (c + 0.5, r + 0.5).
  * Canonical CAD frame (ROCA's NOC frame): the model fits the unit cube [-0.5, 0.5]^3,
    +y is up, +z is the object's front.
  * A 9-DoF alignment maps a canonical point x to the camera frame: R diag(s) x + t.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The nine Scan2CAD benchmark classes, in the order of the class ids used by the project.
SCAN2CAD_CLASSES: tuple[str, ...] = (
    "bathtub", "bed", "bin", "bookshelf", "cabinet", "chair", "display", "sofa", "table",
)
# ROCA's "benchmark" classes (roca/data/constants.py BENCHMARK_CLASSES): the nine without bed.
BENCHMARK_CLASSES: tuple[str, ...] = tuple(c for c in SCAN2CAD_CLASSES if c != "bed")

# Scan2CAD symmetry labels: how many rotations about the canonical up (+y) axis map the
# model onto itself. "inf" means rotationally symmetric about the up axis.
SYMMETRIES: tuple[str, ...] = ("none", "2fold", "4fold", "inf")

# Detections are kept when score >= threshold: the one comparison rule of the runtime, the node
# and the evaluation; 0.5 is ROCA's threshold for the alignment metrics and every default.
SCORE_THRESHOLD = 0.5


def passes_score(score, threshold: float):
    """score >= threshold (a float, or elementwise for a numpy array / torch tensor of scores)."""
    return score >= threshold


@dataclass(frozen=True)
class Alignment9D:
    """Pose and anisotropic scale of a canonical CAD model in the camera frame.

    rotation: (3, 3) float64, det = +1, canonical -> camera.
    translation: (3,) float64 metres, camera frame.
    scale: (3,) float64 metres per canonical unit along the canonical x, y, z axes.
    """

    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        for name, shape in (("rotation", (3, 3)), ("translation", (3,)), ("scale", (3,))):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"Alignment9D.{name} must have shape {shape}, got {value.shape}")
            object.__setattr__(self, name, value)

    def transform_points(self, points: np.ndarray) -> np.ndarray:
        """Map canonical points (N, 3) to the camera frame (N, 3)."""
        points = np.asarray(points, dtype=np.float64)
        return (points * self.scale) @ self.rotation.T + self.translation

    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous transform canonical -> camera, scale folded into the 3x3 block."""
        out = np.eye(4)
        out[:3, :3] = self.rotation * self.scale[None, :]
        out[:3, 3] = self.translation
        return out


@dataclass(frozen=True)
class CadPrediction:
    """One detected object with its retrieved and aligned CAD model.

    box_xyxy: (4,) float pixels of the input image (x_min, y_min, x_max, y_max).
    mask: (H, W) bool at the input image resolution, or None when the model has no mask head.
    cad_id: id in the CAD database ("" when retrieval did not run).
    retrieval_distance: embedding distance to the retrieved model (NaN when not run).
    """

    class_id: int
    class_name: str
    score: float
    box_xyxy: np.ndarray
    alignment: Alignment9D
    cad_id: str = ""
    retrieval_distance: float = float("nan")
    mask: np.ndarray | None = field(default=None, repr=False)
