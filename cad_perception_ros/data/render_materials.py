"""The data-v2 renderer: per-part materials and solid textures, faces lit by their own normals
under a random directional light plus ambient, cast shadows (a shadow map) and Blinn-Phong
specular highlights. Pure numpy (``raster.py``), so instance masks are exact (one body per
pixel, no blending) and depth is metric along the optical axis.

Per pixel: albedo = material colour x solid texture (``materials.py``; texture coordinates are
metres in the object's own frame, R^T (X - t), or the world frame for the room), then

    rgb = light_colour * (albedo * (ambient * (0.85 + 0.15 n_z) + diffuse * max(0, n.l) * lit)
                          + specular * max(0, n.h)^shininess * lit)

n the face normal (world), l the unit direction to the light, h the half vector between l and
the direction to the camera, lit = 0 where the shadow map says a CAD object or a distractor
hides the light (walls and the ceiling cast no shadow: the light stands for the room's lamps and
windows). Then exposure jitter and sensor noise. Segmentation ids: room slabs 0-5, CAD object k
is 6 + k (annotated), distractors 1000 + j (not annotated: background in the instance map).
"""
from __future__ import annotations

import numpy as np

from cad_perception_ros.cad.primitives import primitive_mesh
from cad_perception_ros.cad.procedural_v2 import PartLabels
from cad_perception_ros.data.materials import Material, texture_factor
from cad_perception_ros.data.raster import box_triangles, face_normals, rasterize, rasterize_view
from cad_perception_ros.data.render import RendererBase, backproject, room_boxes
from cad_perception_ros.data.scenes import Scene, look_at

SHADOW_SIZE = 1024  # shadow map resolution (pixels per side)
DISTRACTOR_BODY = 1000


def draw_light(rng: np.random.Generator) -> dict:
    """A scene's light: unit direction to the light (world), ambient, diffuse, specular, colour.
    (Exposure and sensor noise are drawn per view.)"""
    azimuth, elevation = rng.uniform(-np.pi, np.pi), np.radians(rng.uniform(25, 75))
    direction = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    return {"direction": direction, "ambient": float(rng.uniform(0.25, 0.5)), "diffuse": float(rng.uniform(0.5, 0.85)),
            "specular": float(rng.uniform(0.4, 1.0)), "color": 1.0 + rng.uniform(-0.08, 0.08, size=3)}


def primitive_triangles(parts) -> np.ndarray:
    """(T, 3, 3) triangles of a list of primitives (their own frame)."""

    out = []
    for p in parts:
        v, f = primitive_mesh(p)
        out.append(v[f])
    return np.concatenate(out) if out else np.zeros((0, 3, 3))


class ShadowMap:
    """Depth of the shadow casters seen from the light (a far pinhole camera ~ parallel light)."""

    def __init__(self, casters: np.ndarray, direction: np.ndarray, centre: np.ndarray, radius: float,
                 size: int = SHADOW_SIZE, distance: float = 200.0) -> None:
        self.pose = look_at(centre + direction * distance, centre)  # optical frame of the light
        focal = 0.5 * size * distance / max(radius, 1e-3)
        self.K = np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1.0]])
        self.size = size
        self.depth_per_texel = distance / focal  # metres of the scene per shadow-map pixel
        rot, eye = self.pose[:3, :3], self.pose[:3, 3]
        in_light = (casters - eye) @ rot if len(casters) else np.zeros((0, 3, 3))
        self.depth, _ = rasterize(in_light, self.K, (size, size), near=1.0, far=2 * distance) if len(casters) \
            else (np.zeros((size, size)), None)

    def lit(self, points: np.ndarray, normals: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """(P,) 1.0 where world points (P, 3) with normals (P, 3) see the light, else 0."""
        rot, eye = self.pose[:3, :3], self.pose[:3, 3]
        local = (points - eye) @ rot  # (P, 3)
        u = np.floor(self.K[0, 0] * local[:, 0] / local[:, 2] + self.K[0, 2]).astype(int)
        v = np.floor(self.K[1, 1] * local[:, 1] / local[:, 2] + self.K[1, 2]).astype(int)
        inside = (u >= 0) & (u < self.size) & (v >= 0) & (v < self.size)
        blocker = np.zeros(len(points))
        blocker[inside] = self.depth[v[inside], u[inside]]
        cosine = np.clip(normals @ direction, 0.05, 1.0)
        texel = 2 * self.depth_per_texel
        bias = 0.01 + texel * np.sqrt(1 - cosine ** 2) / cosine
        shadowed = (blocker > 0) & (local[:, 2] > blocker + np.minimum(bias, 0.1))
        return (~shadowed).astype(np.float64)


class MaterialSceneRenderer(RendererBase):
    """Numpy renderer of data-v2 scenes (``scenes_v2.generate_scene_v2``); see the module docstring."""

    name = "materials"

    def __init__(self, *, near: float = 0.05, far: float = 40.0, min_visible_pixels: int = 200) -> None:
        super().__init__(near=near, far=far, min_visible_pixels=min_visible_pixels)
        self._labels: dict[str, object] = {}
        self._mesh_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _part_labels(self, database):

        key = str(database.root)
        if key not in self._labels:
            self._labels[key] = PartLabels(database.root)
        return self._labels[key]

    def _mesh(self, database, cad_id: str) -> tuple[np.ndarray, np.ndarray]:
        if cad_id not in self._mesh_cache:
            mesh = database.mesh(cad_id)
            self._mesh_cache[cad_id] = (np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64))
        return self._mesh_cache[cad_id]

    def load(self, scene: Scene, database) -> None:
        """World-frame triangles, bodies, materials and texture frames of a v2 scene."""
        extras = scene.extras
        labels = self._part_labels(database)
        tris, body, mat, frame = [], [], [], []
        materials: list[Material] = []
        frames: list[tuple[np.ndarray, np.ndarray]] = [(np.eye(3), np.zeros(3))]  # 0: world
        room = room_boxes(scene)
        room_mats = [extras["floor"], extras["walls_material"][0], *extras["walls_material"]]
        slabs = range(6) if extras["walls"] else range(1)
        for index in slabs:
            half, centre, _ = room[index]
            if index == 0 and not extras["walls"]:
                half, centre = (30.0, 30.0, 0.02), (scene.room[0] / 2, scene.room[1] / 2, -0.02)
            box = box_triangles(half, centre)
            tris.append(box)
            body.append(np.full(len(box), index))
            mat.append(np.full(len(box), len(materials)))
            frame.append(np.zeros(len(box), dtype=np.int64))
            materials.append(room_mats[index])
        self._body_to_object = {}
        for index, obj in enumerate(scene.objects):
            vertices, faces = self._mesh(database, obj.cad_id)
            face_parts = labels.face_parts[obj.cad_id]
            if len(face_parts) != len(faces):
                raise ValueError(f"{obj.cad_id}: {len(faces)} mesh faces but {len(face_parts)} face part labels")
            world = (vertices * obj.scale) @ obj.rotation.T + obj.translation  # (V, 3)
            tris.append(world[faces])
            body.append(np.full(len(faces), 6 + index))
            mat.append(len(materials) + face_parts)
            frame.append(np.full(len(faces), len(frames)))
            frames.append((obj.rotation, obj.translation))
            materials.extend(extras["object_materials"][index])
            self._body_to_object[6 + index] = index
        casters = [t for t in tris[len(slabs):]]
        for j, item in enumerate(extras.get("distractors", [])):
            box = primitive_triangles(item["parts"])
            tris.append(box)
            casters.append(box)
            body.append(np.full(len(box), DISTRACTOR_BODY + j))
            mat.append(np.full(len(box), len(materials)))
            frame.append(np.zeros(len(box), dtype=np.int64))
            materials.append(item["material"])
        self._triangles = np.concatenate(tris)
        self._normals = face_normals(self._triangles)
        self._body, self._material = np.concatenate(body), np.concatenate(mat).astype(np.int64)
        self._frame = np.concatenate(frame).astype(np.int64)
        self._materials, self._frames = materials, frames
        self._casters = np.concatenate(casters) if casters else np.zeros((0, 3, 3))
        self._scene = scene
        self._light = extras["light"]
        self._shadow_map = self._shadow(self._light["direction"])

    def _raw(self, camera_to_world, K, width, height, rng):
        light = self._light
        exposure, noise = float(rng.uniform(0.85, 1.15)), float(rng.uniform(1.0, 3.0))
        rotation, eye, in_camera, depth, index = rasterize_view(self._triangles, camera_to_world, K, (height, width),
                                                                self.near, self.far)
        hit = index >= 0
        faces = index[hit]
        points = backproject(depth, K)[hit] @ rotation.T + eye  # (P, 3) world
        normal = self._normals[faces]  # (P, 3)
        albedo = self._albedo(faces, points)  # (P, 3)
        direction = light["direction"]
        lit = self._shadow_map.lit(points, normal, direction)
        to_eye = eye - points
        to_eye /= np.maximum(np.linalg.norm(to_eye, axis=1, keepdims=True), 1e-9)
        half = to_eye + direction
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-9)
        spec_weight = np.array([m.specular for m in self._materials])[self._material[faces]]
        shininess = np.array([m.shininess for m in self._materials])[self._material[faces]]
        diffuse = light["ambient"] * (0.85 + 0.15 * normal[:, 2]) + light["diffuse"] * np.maximum(normal @ direction, 0) * lit
        specular = light["specular"] * spec_weight * np.maximum((normal * half).sum(1), 0) ** shininess * lit
        color = (albedo * diffuse[:, None] + specular[:, None]) * light["color"] * exposure
        rgb = self._background(height, width, rng)
        rgb[hit] = 255 * color
        rgb += rng.normal(0.0, noise, size=rgb.shape)
        seg = np.full((height, width), -1, dtype=np.int64)
        seg[hit] = self._body[faces]
        return np.clip(rgb, 0, 255).astype(np.uint8), depth.astype(np.float32), seg

    def _albedo(self, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(P, 3) textured colour of the surface points (P, 3) on triangles faces (P,)."""
        local = points.copy()
        owner = self._frame[faces]
        for k in np.unique(owner):
            if k == 0:
                continue
            rot, trans = self._frames[int(k)]
            sel = owner == k
            local[sel] = (points[sel] - trans) @ rot
        material = self._material[faces]
        base = np.stack([m.color for m in self._materials])[material]  # (P, 3)
        return base * texture_factor(self._materials, material, local)[:, None]

    def _shadow(self, direction: np.ndarray) -> ShadowMap:
        width, depth, height = self._scene.room
        centre = np.array([width / 2, depth / 2, 0.5])
        return ShadowMap(self._casters, direction, centre, radius=0.55 * float(np.hypot(width, depth)) + 0.5)

    def _background(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        top, bottom = (np.asarray(c, dtype=np.float64) * 255 for c in self._scene.extras["background"])
        t = np.linspace(0, 1, height)[:, None, None]
        return np.broadcast_to((1 - t) * top + t * bottom, (height, width, 3)).copy()

    def _texture(self, rgb: np.ndarray, seg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rgb  # textures and noise are part of _raw
