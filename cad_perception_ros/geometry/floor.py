"""The floor plane as a metric cue: an object standing on a known floor fixes its own scale.

A crop (or a whole image) sees an object's shape and apparent size; its metric size and depth are
known only up to one common factor k (a chair twice as large, twice as far, looks the same). With
the floor plane in the camera frame (a robot has it from TF: the camera's pose above its base), an
object standing on the floor has its centre at its own half height above the floor, and that
fixes k (``floor_factor``). Depth and size are not equally sure, and an object need not stand
exactly on the floor, so ``floor_correction`` solves for a depth factor and a size factor by least
squares under priors on both (``FloorPrior``). The projected centre does not change; an object
tilted a little off the floor's up is stood upright.

Frames: camera optical frame (x right, y down, z forward, metres). ``FloorPlane.normal`` (3,) is
the unit up direction of the floor in that frame, ``height`` the camera's height above the floor;
a camera point x lies height(x) = normal . x + height above the floor.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from cad_perception_ros.types import Alignment9D, CadPrediction

UNIT_EXTENT = (1.0, 1.0, 1.0)


class FloorPlane(NamedTuple):
    """normal: (3,) unit up vector, camera frame; height: camera height above the floor, metres (> 0)."""

    normal: np.ndarray
    height: float


def make_floor(normal, height: float) -> FloorPlane:
    """A checked FloorPlane; ValueError naming the problem (not finite, zero normal, height <= 0)."""
    n = np.asarray(normal, dtype=np.float64).reshape(-1)
    if n.shape != (3,) or not np.all(np.isfinite(n)) or np.linalg.norm(n) < 1e-9:
        raise ValueError(f"floor normal must be a finite non-zero 3-vector, got {normal!r}")
    if not np.isfinite(height) or height <= 0:
        raise ValueError(f"camera height above the floor must be > 0 metres, got {height!r}")
    return FloorPlane(n / np.linalg.norm(n), float(height))


def floor_from_camera_pose(camera_to_world: np.ndarray, floor_z: float = 0.0) -> FloorPlane:
    """The floor z = floor_z of a +z-up world frame seen from a camera at camera_to_world (4, 4)
    (optical frame -> world), e.g. a data view's pose or TF's camera -> base_footprint."""
    pose = np.asarray(camera_to_world, dtype=np.float64)
    if pose.shape != (4, 4):
        raise ValueError(f"camera_to_world must have shape (4, 4), got {pose.shape}")
    return make_floor(pose[2, :3], float(pose[2, 3] - floor_z))  # R^T e_z is row 2 of R


def floor_from_height_pitch(height: float, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> FloorPlane:
    """The floor of a camera `height` metres above it whose optical axis points pitch_deg below the
    horizon (negative: above) and is rolled by roll_deg about that axis (clockwise in the image)."""
    pitch, roll = np.deg2rad(pitch_deg), np.deg2rad(roll_deg)
    up = np.array([0.0, -np.cos(pitch), -np.sin(pitch)])  # level roll: up is image-up, tilted back by the pitch
    c, s = np.cos(roll), np.sin(roll)
    up = np.array([c * up[0] - s * up[1], s * up[0] + c * up[1], up[2]])
    return make_floor(up, height)


def half_height(alignment: Alignment9D, normal: np.ndarray, extent=UNIT_EXTENT) -> float:
    """Half the size along `normal` (3,) of the CAD's box: canonical extent (3,) (centred; the CAD
    database's ``CadModel.extent``, longest side 1) x scale, turned by the rotation."""
    axes = alignment.rotation * (alignment.scale * np.asarray(extent, dtype=np.float64))  # (3, 3): metres
    return 0.5 * float(np.abs(normal @ axes).sum())


def floor_factor(alignment: Alignment9D, floor: FloorPlane, extent=UNIT_EXTENT) -> float:
    """The k for which k x (translation, scale) puts the box's lowest point on the floor
    (nan where the geometry gives none: the camera would have to be at or below the floor)."""
    implied_height = half_height(alignment, floor.normal, extent) - float(floor.normal @ alignment.translation)
    return floor.height / implied_height if implied_height > 1e-6 else float("nan")


@dataclass(frozen=True)
class FloorPrior:
    """How far the floor may move an object. depth_sigma, scale_sigma: the spread of the network's
    log depth and log size errors (about 0.12 each for ROCA v2 on val-v2, docs/roca_v2.md);
    floor_sigma_m: how far an object's centre may sit off its half height above the floor (an
    uneven floor, a rug, a CAD box that is not the object's); max_ratio: larger corrections of depth
    or size are not applied, nor is any correction of an object whose centre lies more than
    max_offset_m off its height on the floor (it stands on a table or a shelf); upright_deg: an object whose up
    axis (canonical +y) lies within this angle of the floor's is stood upright (0 = never)."""

    depth_sigma: float = 0.12
    scale_sigma: float = 0.12
    floor_sigma_m: float = 0.05
    max_ratio: float = 2.0
    max_offset_m: float = 0.6
    upright_deg: float = 45.0

    def __post_init__(self) -> None:
        if min(self.depth_sigma, self.scale_sigma) <= 0 or self.floor_sigma_m < 0:
            raise ValueError("FloorPrior: depth_sigma and scale_sigma must be > 0, floor_sigma_m >= 0")
        if self.max_ratio < 1 or self.max_offset_m <= 0:
            raise ValueError(f"FloorPrior: max_ratio must be >= 1 and max_offset_m > 0, got {self.max_ratio}, "
                             f"{self.max_offset_m}")
        if not 0 <= self.upright_deg <= 180:
            raise ValueError(f"FloorPrior: upright_deg must be in [0, 180], got {self.upright_deg}")


def stand_upright(rotation: np.ndarray, normal: np.ndarray, max_deg: float) -> np.ndarray:
    """rotation (3, 3) canonical -> camera turned by the smallest rotation that takes its up axis
    (column 1) onto normal (3,), where they lie within max_deg of each other; else unchanged."""
    up = rotation[:, 1]
    axis, cos = np.cross(up, normal), float(np.clip(up @ normal, -1.0, 1.0))
    sin = float(np.linalg.norm(axis))
    if sin < 1e-12 or np.degrees(np.arctan2(sin, cos)) > max_deg:
        return rotation
    k = axis / sin
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return (np.eye(3) + sin * cross + (1 - cos) * cross @ cross) @ rotation  # Rodrigues


def floor_correction(alignment: Alignment9D, floor: FloorPlane, extent=UNIT_EXTENT,
                     prior: FloorPrior = FloorPrior(), iterations: int = 4) -> tuple[float, float]:
    """(a, b): log factors of the depth (translation along its ray) and of the size that make the
    object stand on the floor, least squares with the priors a ~ N(0, depth_sigma^2), b ~ N(0,
    scale_sigma^2) and the constraint h(a, b) = hc e^b - height - (n . t) e^a = 0 +- floor_sigma_m
    (hc: half height, n . t + height: the centre's height above the floor), linearised and
    iterated (Gauss-Newton). (0, 0) where the correction would exceed max_ratio or the centre lies
    more than max_offset_m off its height on the floor."""
    hc0 = half_height(alignment, floor.normal, extent)
    nt0 = float(floor.normal @ alignment.translation)
    if abs(nt0 + floor.height - hc0) > prior.max_offset_m:
        return 0.0, 0.0
    sz2, ss2 = prior.depth_sigma ** 2, prior.scale_sigma ** 2
    a = b = 0.0
    for _ in range(iterations):
        hc, nt = hc0 * np.exp(b), nt0 * np.exp(a)
        da, db = -nt, hc  # dh/da, dh/db at (a, b)
        residual_at_prior = hc - floor.height - nt - da * a - db * b  # the linearised h at (0, 0)
        gain = -residual_at_prior / (da * da * sz2 + db * db * ss2 + prior.floor_sigma_m ** 2)
        a, b = gain * da * sz2, gain * db * ss2
    limit = np.log(prior.max_ratio)
    return (a, b) if abs(a) <= limit and abs(b) <= limit else (0.0, 0.0)


def rest_on_floor(predictions: list[CadPrediction], floor: FloorPlane, extent_of: Callable[[str], object] | None = None,
                  prior: FloorPrior = FloorPrior()) -> list[CadPrediction]:
    """Each prediction stood upright (``stand_upright``, prior.upright_deg), then its translation
    times e^a (along its ray: the image does not move) and its scale times e^b (floor_correction).
    extent_of(cad_id): the retrieved CAD's canonical extent (3,), or None where unknown (the unit box)."""
    out = []
    for p in predictions:
        extent = (extent_of(p.cad_id) if extent_of is not None else None) or UNIT_EXTENT
        al = p.alignment
        if prior.upright_deg > 0:
            al = Alignment9D(stand_upright(al.rotation, floor.normal, prior.upright_deg), al.translation, al.scale)
        a, b = floor_correction(al, floor, extent, prior)
        al = Alignment9D(al.rotation, al.translation * np.exp(a), al.scale * np.exp(b))
        out.append(dataclasses.replace(p, alignment=al))
    return out
