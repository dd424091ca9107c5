"""Random indoor scenes: a room, CAD objects on the floor, cameras looking at them.

World frame of a scene: metres, +z up, the floor is the plane z = 0 and the room spans
[0, width] x [0, depth] in x and y. A canonical CAD model (+y up, +z front, see
``cad_perception_ros.types``) is stood upright by ``CANONICAL_TO_WORLD`` (canonical +y -> world +z)
and turned by a yaw about world +z. Cameras are OpenCV optical frames (x right, y down,
z forward); ``camera_to_world`` (4, 4) maps optical-frame points to the world.

Everything is drawn from one ``numpy.random.Generator`` so a scene is a pure function of
its seed and the CAD database.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cad_perception_ros.types import SCAN2CAD_CLASSES, Alignment9D

# Canonical (x, y up, z front) -> world (z up): a +90 degree turn about x: y -> z, z -> -y.
CANONICAL_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# Typical metric size (width x, height y, depth z in the canonical frame) per class, metres.
CLASS_EXTENTS: dict[str, tuple[float, float, float]] = {
    "bathtub": (1.6, 0.6, 0.75),
    "bed": (1.6, 0.6, 2.1),
    "bin": (0.35, 0.5, 0.35),
    "bookshelf": (0.9, 1.8, 0.35),
    "cabinet": (0.9, 0.9, 0.5),
    "chair": (0.45, 0.9, 0.5),
    "display": (0.6, 0.45, 0.2),
    "sofa": (2.0, 0.85, 0.9),
    "table": (1.2, 0.75, 0.8),
}


@dataclass(frozen=True)
class SceneConfig:
    """Ranges of every random choice of the scene generator (the single place of defaults).

    Ranges are (low, high), sampled uniformly. image_size is (height, width) in pixels.
    focal_factor: fx = factor * width. principal_jitter: |cx - W/2| <= jitter * W (same for cy).
    scale_jitter: each metric axis is CLASS_EXTENTS * U(1 - j, 1 + j).
    """

    image_size: tuple[int, int] = (360, 480)
    room_size: tuple[float, float] = (3.0, 8.0)
    wall_height: tuple[float, float] = (2.4, 3.0)
    objects_per_scene: tuple[int, int] = (2, 6)
    scale_jitter: float = 0.2
    placement_margin: float = 0.05
    wall_margin: float = 0.1
    max_placement_tries: int = 200
    camera_height: tuple[float, float] = (0.5, 1.8)
    camera_wall_margin: float = 0.3
    camera_min_distance: float = 1.0
    camera_distance: tuple[float, float] = (1.8, 4.5)
    focal_factor: tuple[float, float] = (0.8, 1.3)
    principal_jitter: float = 0.05
    target_jitter: float = 0.4
    classes: tuple[str, ...] = SCAN2CAD_CLASSES
    min_visible_pixels: int = 200

    def __post_init__(self) -> None:
        for name in ("room_size", "wall_height", "camera_height", "focal_factor", "objects_per_scene",
                     "camera_distance"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"SceneConfig.{name}: low {low} > high {high}")
        unknown = [c for c in self.classes if c not in CLASS_EXTENTS]
        if unknown:
            raise ValueError(f"SceneConfig.classes: unknown class(es) {unknown}")


@dataclass(frozen=True)
class PlacedObject:
    """One CAD model in a scene. rotation (3, 3) and translation (3,) map canonical -> world
    together with scale (3,) (metres per canonical unit): x_world = R diag(s) x + t."""

    cad_id: str
    class_id: int
    symmetry: str
    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray
    color: tuple[float, float, float]
    half_footprint: tuple[float, float] = (0.0, 0.0)  # metric half sizes along the object's x and z
    yaw: float = 0.0

    def in_camera(self, camera_to_world: np.ndarray) -> Alignment9D:
        """This object's Alignment9D in the optical frame of a camera at camera_to_world (4, 4)."""
        world_to_camera = np.linalg.inv(camera_to_world)
        rot = world_to_camera[:3, :3] @ self.rotation
        trans = world_to_camera[:3, :3] @ self.translation + world_to_camera[:3, 3]
        return Alignment9D(rotation=rot, translation=trans, scale=self.scale)


@dataclass(frozen=True)
class Scene:
    """A room (width x, depth y, height z in metres), its objects and surface colours (RGB 0..1)."""

    scene_id: str
    room: tuple[float, float, float]
    objects: tuple[PlacedObject, ...]
    floor_color: tuple[float, float, float]
    wall_colors: tuple[tuple[float, float, float], ...]
    extras: dict[str, Any] = field(default_factory=dict)


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def footprint_corners(center_xy: np.ndarray, half_xy: np.ndarray, yaw: float) -> np.ndarray:
    """(4, 2) corners of a rectangle of half sizes half_xy turned by yaw about its centre."""
    signs = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)
    rot = _yaw_matrix(yaw)[:2, :2]
    return center_xy + (signs * half_xy) @ rot.T


def rectangles_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test for two convex quads a, b (4, 2)."""
    for poly in (a, b):
        edges = np.roll(poly, -1, axis=0) - poly
        for edge in edges:
            axis = np.array([-edge[1], edge[0]])
            pa, pb = a @ axis, b @ axis
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


def claim_footprint(footprints: list[np.ndarray], center_xy: np.ndarray, half_xy: np.ndarray, yaw: float) -> bool:
    """Add the floor rectangle (center_xy (2,), half extents half_xy (2,), turned by yaw) to
    `footprints` and return True, unless it overlaps one of them (then False, nothing added)."""
    corners = footprint_corners(center_xy, half_xy, yaw)
    if any(rectangles_overlap(corners, other) for other in footprints):
        return False
    footprints.append(corners)
    return True


def standing_object(model, center_xy: np.ndarray, yaw: float, size: np.ndarray, scale: np.ndarray,
                    color: tuple[float, float, float]) -> PlacedObject:
    """CAD `model` of metric size (3,) (x, y up, z front) standing on the floor at center_xy,
    turned by yaw about the world's vertical."""
    return PlacedObject(cad_id=model.cad_id, class_id=model.class_id, symmetry=model.symmetry,
                        rotation=_yaw_matrix(yaw) @ CANONICAL_TO_WORLD,
                        translation=np.array([center_xy[0], center_xy[1], size[1] / 2]), scale=scale,
                        color=color, half_footprint=(float(size[0] / 2), float(size[2] / 2)), yaw=yaw)


def _random_color(rng: np.random.Generator, low: float = 0.15, high: float = 0.95) -> tuple[float, float, float]:
    return tuple(float(c) for c in rng.uniform(low, high, size=3))


def sample_scale(class_name: str, canonical_extent: np.ndarray, rng: np.random.Generator,
                 jitter: float) -> np.ndarray:
    """(3,) metres per canonical unit so the model's metric extent is near CLASS_EXTENTS."""
    metric = np.asarray(CLASS_EXTENTS[class_name]) * rng.uniform(1 - jitter, 1 + jitter, size=3)
    return metric / np.maximum(np.asarray(canonical_extent, dtype=np.float64), 1e-6)


def place_objects(database, room: tuple[float, float, float], rng: np.random.Generator,
                  config: SceneConfig) -> list[PlacedObject]:
    """Rejection-sample non-intersecting footprints of random CAD models on the floor."""
    models = [m for m in database.models if m.class_name in config.classes]
    if not models:
        raise ValueError(f"CAD database has no model of classes {config.classes}")
    count = int(rng.integers(config.objects_per_scene[0], config.objects_per_scene[1] + 1))
    placed: list[PlacedObject] = []
    footprints: list[np.ndarray] = []
    for _ in range(config.max_placement_tries):
        if len(placed) == count:
            break
        model = models[int(rng.integers(len(models)))]
        extent = np.asarray(model.extent, dtype=np.float64)
        scale = sample_scale(model.class_name, extent, rng, config.scale_jitter)
        size = scale * extent  # metric (x, y up, z front)
        yaw = float(rng.uniform(-np.pi, np.pi))
        half = np.array([size[0], size[2]]) / 2 + config.placement_margin
        reach = np.linalg.norm(half) + config.wall_margin
        if 2 * reach >= min(room[0], room[1]):
            continue
        center = rng.uniform([reach, reach], [room[0] - reach, room[1] - reach])
        if not claim_footprint(footprints, center, half, yaw):
            continue
        placed.append(standing_object(model, center, yaw, size, scale, _random_color(rng)))
    return placed


def generate_scene(database, rng: np.random.Generator, config: SceneConfig, scene_id: str = "") -> Scene:
    """A random room with objects from `database` (a CadDatabase or any object with .models)."""
    room = (float(rng.uniform(*config.room_size)), float(rng.uniform(*config.room_size)),
            float(rng.uniform(*config.wall_height)))
    objects = place_objects(database, room, rng, config)
    return Scene(scene_id=scene_id, room=room, objects=tuple(objects),
                 floor_color=_random_color(rng, 0.2, 0.8),
                 wall_colors=tuple(_random_color(rng, 0.4, 0.95) for _ in range(4)))


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(4, 4) camera_to_world of an optical frame at eye looking at target, image up = world +z."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-6:
        raise ValueError("look_at: viewing direction is vertical")
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    out = np.eye(4)
    out[:3, :3] = np.stack([right, down, forward], axis=1)
    out[:3, 3] = eye
    return out


def sample_intrinsics(rng: np.random.Generator, config: SceneConfig) -> np.ndarray:
    """(3, 3) K for config.image_size: fx = fy = U(focal_factor) * W, principal point up to
    principal_jitter off centre. config: a SceneConfig or a SceneConfigV2 (data v2)."""
    height, width = config.image_size
    focal = rng.uniform(*config.focal_factor) * width
    cx = width / 2 + rng.uniform(-1, 1) * config.principal_jitter * width
    cy = height / 2 + rng.uniform(-1, 1) * config.principal_jitter * height
    return np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])


def _camera_clear(eye: np.ndarray, obj: PlacedObject, config: SceneConfig) -> bool:
    """True if eye (3,) is outside obj's footprint grown by 0.3 m and far enough from its centre."""
    offset = eye[:2] - obj.translation[:2]
    if np.linalg.norm(offset) < config.camera_min_distance:
        return False
    local = _yaw_matrix(obj.yaw)[:2, :2].T @ offset
    return bool(np.any(np.abs(local) > np.asarray(obj.half_footprint) + 0.3))


def sample_camera(scene: Scene, rng: np.random.Generator, config: SceneConfig) -> np.ndarray:
    """(4, 4) camera_to_world inside the room, clear of the objects, looking at one of them from
    camera_distance metres (horizontally) when the room allows it."""
    margin = config.camera_wall_margin
    width, depth, _ = scene.room
    if scene.objects:
        obj = scene.objects[int(rng.integers(len(scene.objects)))]
        target = obj.translation.copy()
        target[2] = obj.translation[2] * rng.uniform(0.4, 1.6)
    else:
        target = np.array([width / 2, depth / 2, 0.5])
    target[:2] += rng.uniform(-1, 1, size=2) * config.target_jitter
    best, best_score = None, -np.inf
    for _ in range(60):
        eye = np.array([rng.uniform(margin, width - margin), rng.uniform(margin, depth - margin),
                        rng.uniform(*config.camera_height)])
        distance = np.linalg.norm((target - eye)[:2])
        clear = all(_camera_clear(eye, o, config) for o in scene.objects)
        low, high = config.camera_distance
        score = (2.0 if clear else 0.0) - max(0.0, low - distance) - max(0.0, distance - high)
        if score > best_score:
            best, best_score = eye, score
        if clear and low <= distance <= high:
            break
    if np.linalg.norm((target - best)[:2]) < 1e-3:
        target[0] += 0.1
    return look_at(best, target)
