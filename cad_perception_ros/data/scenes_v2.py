"""Data-v2 scenes: rooms with or without walls, furniture (much of it backed against a wall and
facing into the room), distractor objects of other kinds, per-part materials, and the cameras
robots have (fx 0.45-1.4 x width, principal points off centre, heights 0.3-2.0 m, pitch -45 to
+15 degrees, objects 0.7-6 m away).

Frames as in ``scenes.py``: world metres, +z up, floor z = 0, room [0, W] x [0, D]; canonical CAD
+y up / +z front stood upright by ``CANONICAL_TO_WORLD`` (so yaw 0 faces world -y); cameras are
OpenCV optical frames, ``camera_to_world`` (4, 4). A scene is a pure function of its generator.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cad_perception_ros.cad.primitives import make_primitive
from cad_perception_ros.data import materials as mats
from cad_perception_ros.data.render_materials import draw_light
from cad_perception_ros.data.scenes import (
    PlacedObject,
    Scene,
    _yaw_matrix,
    claim_footprint,
    look_at,
    sample_scale,
    standing_object,
)
from cad_perception_ros.types import SCAN2CAD_CLASSES

STYLE_SETS = ("seen", "unseen", "all")


@dataclass(frozen=True)
class SceneConfigV2:
    """Ranges of every random choice of a v2 scene. Ranges are (low, high), uniform unless said.
    image_size (height, width); focal_factor: fx = fy = factor * width; principal_jitter:
    |cx - W/2| <= jitter * W (same for cy); object_distance: horizontal camera-to-object metres
    (log-uniform); styles: which CAD styles appear ("seen": all but the held-out ones)."""

    image_size: tuple[int, int] = (480, 640)
    room_size: tuple[float, float] = (3.5, 9.0)
    wall_height: tuple[float, float] = (2.4, 3.0)
    walls_probability: float = 0.7
    objects_per_scene: tuple[int, int] = (2, 6)
    distractors: tuple[int, int] = (0, 3)
    against_wall_probability: float = 0.6
    scale_jitter: float = 0.15
    placement_margin: float = 0.05
    wall_margin: float = 0.04
    max_placement_tries: int = 300
    camera_height: tuple[float, float] = (0.3, 2.0)
    camera_pitch_deg: tuple[float, float] = (-45.0, 15.0)
    object_distance: tuple[float, float] = (0.7, 6.0)
    focal_factor: tuple[float, float] = (0.45, 1.4)
    principal_jitter: float = 0.1
    aim_jitter: float = 0.35  # yaw / pitch offset of the aim as a share of the half field of view
    classes: tuple[str, ...] = SCAN2CAD_CLASSES
    styles: str = "seen"
    min_visible_pixels: int = 300

    def __post_init__(self) -> None:
        for name in ("room_size", "wall_height", "objects_per_scene", "distractors", "camera_height",
                     "camera_pitch_deg", "object_distance", "focal_factor"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"SceneConfigV2.{name}: low {low} > high {high}")
        if self.styles not in STYLE_SETS:
            raise ValueError(f"SceneConfigV2.styles must be one of {STYLE_SETS}, got {self.styles!r}")
        unknown = [c for c in self.classes if c not in SCAN2CAD_CLASSES]
        if unknown:
            raise ValueError(f"SceneConfigV2.classes: unknown class(es) {unknown}")


def candidate_models(database, labels, config: SceneConfigV2) -> list:
    """The database models of config.classes whose style belongs to config.styles."""
    out = []
    for m in database.models:
        if m.class_name not in config.classes or m.cad_id not in labels.models:
            continue
        unseen = labels.unseen(m.cad_id)
        if config.styles == "all" or (config.styles == "unseen") == unseen:
            out.append(m)
    if not out:
        raise ValueError(f"CAD database {database.root} has no v2 model of classes {config.classes} "
                         f"and styles {config.styles!r}")
    return out


# Yaw that turns a model's front (world -y at yaw 0) away from each wall: y = D, y = 0, x = 0, x = W.
_WALL_YAWS = (0.0, np.pi, np.pi / 2, -np.pi / 2)


def _wall_pose(room, size, wall: int, rng, config: SceneConfigV2) -> tuple[np.ndarray, float]:
    """Centre (2,) and yaw of an object of metric size (3,) backed against wall 0-3."""
    width, depth, _ = room
    half_depth = size[2] / 2 + config.wall_margin + config.placement_margin
    half_width = size[0] / 2 + config.placement_margin + config.wall_margin
    along = (width, width, depth, depth)[wall]
    if along < 2 * half_width:
        return None, 0.0
    s = rng.uniform(half_width, along - half_width)
    centre = [np.array([s, depth - half_depth]), np.array([s, half_depth]),
              np.array([half_depth, s]), np.array([width - half_depth, s])][wall]
    return centre, _WALL_YAWS[wall] + float(rng.normal(0.0, np.radians(2)))


def place_objects_v2(models, room, walls: bool, rng, config: SceneConfigV2) -> list[PlacedObject]:
    count = int(rng.integers(config.objects_per_scene[0], config.objects_per_scene[1] + 1))
    placed, footprints = [], []
    for _ in range(config.max_placement_tries):
        if len(placed) == count:
            break
        model = models[int(rng.integers(len(models)))]
        extent = np.asarray(model.extent, dtype=np.float64)
        scale = sample_scale(model.class_name, extent, rng, config.scale_jitter)
        size = scale * extent
        half = np.array([size[0], size[2]]) / 2 + config.placement_margin
        if walls and rng.random() < config.against_wall_probability:
            centre, yaw = _wall_pose(room, size, int(rng.integers(4)), rng, config)
            if centre is None:
                continue
        else:
            yaw = float(rng.uniform(-np.pi, np.pi))
            reach = np.linalg.norm(half) + config.wall_margin
            if 2 * reach >= min(room[0], room[1]):
                continue
            centre = rng.uniform([reach, reach], [room[0] - reach, room[1] - reach])
        if not claim_footprint(footprints, centre, half, yaw):
            continue
        placed.append(standing_object(model, centre, yaw, size, scale, (0.5, 0.5, 0.5)))
    return placed


def _distractor(kind: int, centre: np.ndarray, rng) -> tuple[list, mats.Material, float]:
    """Primitives (world frame) of a non-Scan2CAD object, its material and footprint radius."""

    x, y = float(centre[0]), float(centre[1])
    if kind == 0:  # floor lamp: base, pole, shade
        h = rng.uniform(1.3, 1.8)
        parts = [make_primitive("prism", (x, y, 0.015), (0.3, 0.3, 0.03), axis=2),
                 make_primitive("prism", (x, y, h / 2), (0.03, 0.03, h), axis=2),
                 make_primitive("tube", (x, y, h + 0.1), (0.4, 0.4, 0.25), axis=2, wall=0.01)]
        return parts, mats.metal(rng), 0.2
    if kind == 1:  # potted plant: pot and a few leaf blocks
        pot = rng.uniform(0.25, 0.4)
        parts = [make_primitive("prism", (x, y, pot / 2), (0.3, 0.3, pot), axis=2)]
        for _ in range(4):
            o = rng.uniform(-0.15, 0.15, size=2)
            s = rng.uniform(0.15, 0.35)
            parts.append(make_primitive("box", (x + o[0], y + o[1], pot + rng.uniform(0.1, 0.5)), (s, s, s)))
        green = mats.make(rng, "fabric", mats._hsv(rng.uniform(0.25, 0.4), rng.uniform(0.5, 0.8),
                                                   rng.uniform(0.25, 0.6)), 0.3, 30.0, 0.1, 10.0)
        return parts, green, 0.3
    if kind == 2:  # cardboard boxes
        parts, z = [], 0.0
        for _ in range(int(rng.integers(1, 4))):
            s = rng.uniform(0.25, 0.5, size=3)
            parts.append(make_primitive("box", (x, y, z + s[2] / 2), s))
            z += s[2]
        brown = mats.make(rng, "plain", mats._hsv(rng.uniform(0.07, 0.1), rng.uniform(0.4, 0.6),
                                                  rng.uniform(0.5, 0.75)), 0.05, 4.0, 0.05, 10.0)
        return parts, brown, 0.35
    size = rng.uniform(1.0, 2.5, size=2)  # rug (thin, under everything; no footprint)
    return [make_primitive("box", (x, y, 0.004), (size[0], size[1], 0.008))], mats.fabric(rng), 0.0


def place_distractors(room, objects, rng, config: SceneConfigV2) -> list[dict]:
    count = int(rng.integers(config.distractors[0], config.distractors[1] + 1))
    out = []
    for _ in range(count * 20):
        if len(out) == count:
            break
        kind = int(rng.integers(4))
        centre = rng.uniform([0.4, 0.4], [room[0] - 0.4, room[1] - 0.4])
        parts, material, radius = _distractor(kind, centre, rng)
        if radius > 0 and any(np.linalg.norm(centre - o.translation[:2]) < radius + max(o.half_footprint) + 0.05
                              for o in objects):
            continue
        if radius > 0 and any(np.linalg.norm(centre - d["centre"]) < radius + d["radius"] for d in out):
            continue
        out.append({"parts": parts, "material": material, "centre": centre, "radius": radius})
    return out


def generate_scene_v2(database, labels, rng: np.random.Generator, config: SceneConfigV2, scene_id: str = "") -> Scene:
    """A random v2 room with objects (of config.styles) from `database` and its PartLabels."""
    models = candidate_models(database, labels, config)
    walls = bool(rng.random() < config.walls_probability)
    room = (float(rng.uniform(*config.room_size)), float(rng.uniform(*config.room_size)),
            float(rng.uniform(*config.wall_height)))
    objects = place_objects_v2(models, room, walls, rng, config)
    object_materials = [mats.draw_part_materials(labels.slots(o.cad_id), rng) for o in objects]
    objects = [replace(o, color=tuple(float(c) for c in m[0].color)) for o, m in zip(objects, object_materials)]
    distractors = place_distractors(room, objects, rng, config)
    floor = mats.floor_material(rng)
    wall_material = [mats.wall_material(rng)] * 4 if rng.random() < 0.7 else [mats.wall_material(rng) for _ in range(4)]
    top = mats._hsv(rng.uniform(0.5, 0.65), rng.uniform(0.0, 0.4), rng.uniform(0.5, 0.95))
    background = (top, top * rng.uniform(0.5, 0.9))

    extras = {"light": draw_light(rng), "walls": walls, "object_materials": object_materials, "distractors": distractors, "floor": floor,
              "walls_material": wall_material, "background": background}
    return Scene(scene_id=scene_id, room=room, objects=tuple(objects), floor_color=tuple(floor.color),
                 wall_colors=tuple(tuple(m.color) for m in wall_material), extras=extras)


def _clear(eye: np.ndarray, scene: Scene) -> bool:
    """Eye (3,) outside every object footprint (grown by 0.25 m) and every distractor."""
    for o in scene.objects:
        local = _yaw_matrix(o.yaw)[:2, :2].T @ (eye[:2] - o.translation[:2])
        if np.all(np.abs(local) < np.asarray(o.half_footprint) + 0.25):
            return False
    return all(np.linalg.norm(eye[:2] - d["centre"]) > d["radius"] + 0.25 for d in scene.extras["distractors"])


def sample_camera_v2(scene: Scene, K: np.ndarray, rng: np.random.Generator, config: SceneConfigV2) -> np.ndarray:
    """(4, 4) camera_to_world aimed near one object from 0.7-6 m, pitch within the config range."""
    width, depth, height = scene.room
    walls = scene.extras["walls"]
    target = scene.objects[int(rng.integers(len(scene.objects)))] if scene.objects else None
    centre = target.translation.copy() if target is not None else np.array([width / 2, depth / 2, 0.5])
    low, high = np.log(config.object_distance[0]), np.log(config.object_distance[1])
    eye = None
    for attempt in range(80):
        distance = float(np.exp(rng.uniform(low, high)))
        azimuth = rng.uniform(-np.pi, np.pi)
        candidate = np.array([centre[0] + distance * np.cos(azimuth), centre[1] + distance * np.sin(azimuth),
                              rng.uniform(*config.camera_height)])
        if walls and not (0.2 < candidate[0] < width - 0.2 and 0.2 < candidate[1] < depth - 0.2):
            continue
        if walls and candidate[2] > height - 0.2:
            continue
        if _clear(candidate, scene):
            eye = candidate
            break
    if eye is None:  # crowded room: the middle of the room
        eye = np.array([width / 2, depth / 2, rng.uniform(*config.camera_height)])
    offset = centre - eye
    yaw = np.arctan2(offset[1], offset[0])
    pitch = np.arctan2(offset[2], np.linalg.norm(offset[:2]))
    half_h = np.arctan(K[1, 2] / K[1, 1])
    half_w = np.arctan(K[0, 2] / K[0, 0])
    yaw += rng.uniform(-1, 1) * config.aim_jitter * half_w
    pitch += rng.uniform(-1, 1) * config.aim_jitter * half_h
    pitch = np.clip(pitch, *np.radians(config.camera_pitch_deg))
    forward = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    return look_at(eye, eye + forward)
