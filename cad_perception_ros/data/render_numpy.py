"""The pybullet-free render backend: the same views as ``SceneRenderer`` in pure numpy.

It rasterises the room slabs and the scaled, posed CAD meshes (``raster.py``) and shades them the
way pybullet's TinyRenderer shades them (measured against it; test/test_data_render_numpy.py):

    rgb = floor(min(255, 255 c (ambient + diffuse max(0, n.l) + specular max(0, r_z)^2)))

c the body colour, l the unit light direction (world), r = 2 (n.l) n - l and r_z its world z
(TinyRenderer's specular term), n the unit normal. The room slabs have their faces' normals.
Meshes given to pybullet without normals get per-vertex normals from the vertex positions,
n_v = R v / |v| (v in the canonical frame, R the object rotation, scale ignored), interpolated
across each triangle and normalised; this backend does the same, so meshes look alike in both.
With ``shading="flat"`` every mesh face gets its own normal instead, so faces turned different
ways differ in brightness, as on real furniture. Back faces are culled and nothing hit is white,
as in TinyRenderer.
"""
from __future__ import annotations

import numpy as np

from cad_perception_ros.data.raster import barycentric, box_triangles, face_normals, rasterize_view
from cad_perception_ros.data.render import RendererBase, backproject, check_shading, draw_lighting, room_boxes
from cad_perception_ros.data.scenes import Scene

BACKGROUND = 255  # TinyRenderer's clear colour


def _direction_normals(vertices: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(V, 3) TinyRenderer's normals of a mesh given without any: the directions of the canonical
    vertices (V, 3) from the origin, turned by the object's rotation (3, 3) into the world."""
    length = np.linalg.norm(vertices, axis=1, keepdims=True)
    return np.divide(vertices, length, out=np.zeros_like(vertices), where=length > 0) @ rotation.T


class NumpySceneRenderer(RendererBase):
    """Numpy z-buffer backend. Segmentation ids follow pybullet's body order: the six room
    slabs are 0-5 (``room_boxes``), object k of the scene is 6 + k."""

    name = "numpy"

    def __init__(self, *, near: float = 0.05, far: float = 30.0, min_visible_pixels: int = 200,
                 shading: str = "pybullet") -> None:
        super().__init__(near=near, far=far, min_visible_pixels=min_visible_pixels)
        self.shading = check_shading(shading)
        self._mesh_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._triangles = np.zeros((0, 3, 3))  # (T, 3, 3) world frame
        self._body = np.zeros(0, dtype=np.int64)  # (T,) segmentation id
        self._color = np.zeros((0, 3))  # (T, 3) RGB 0..1
        self._normals = np.zeros((0, 3, 3))  # (T, 3, 3) world shading normal at each corner

    def _mesh(self, database, cad_id: str) -> tuple[np.ndarray, np.ndarray]:
        if cad_id not in self._mesh_cache:
            mesh = database.mesh(cad_id)
            self._mesh_cache[cad_id] = (np.asarray(mesh.vertices, dtype=np.float64),
                                        np.asarray(mesh.faces, dtype=np.int64))
        return self._mesh_cache[cad_id]

    def load(self, scene: Scene, database) -> None:
        """Build the world-frame triangle soup of the room and the objects of `scene`."""
        triangles, body, color, normals = [], [], [], []
        for index, (half, center, rgb) in enumerate(room_boxes(scene)):
            box = box_triangles(half, center)
            triangles.append(box)
            normals.append(np.repeat(face_normals(box)[:, None], 3, axis=1))
            body.append(np.full(len(box), index))
            color.append(np.tile(rgb, (len(box), 1)))
        self._body_to_object = {}
        for index, obj in enumerate(scene.objects):
            vertices, faces = self._mesh(database, obj.cad_id)
            world = (vertices * obj.scale) @ obj.rotation.T + obj.translation  # (V, 3)
            triangles.append(world[faces])
            if self.shading == "pybullet":
                normals.append(_direction_normals(vertices, obj.rotation)[faces])
            else:
                normals.append(np.repeat(face_normals(world[faces])[:, None], 3, axis=1))
            body.append(np.full(len(faces), 6 + index))
            color.append(np.tile(obj.color, (len(faces), 1)))
            self._body_to_object[6 + index] = index
        self._triangles = np.concatenate(triangles)
        self._normals = np.concatenate(normals)
        self._body = np.concatenate(body)
        self._color = np.concatenate(color).astype(np.float64)
        self._scene = scene

    def _raw(self, camera_to_world, K, width, height, rng):
        light, ambient, diffuse, specular = draw_lighting(rng)
        _, _, in_camera, depth, index = rasterize_view(self._triangles, camera_to_world, K, (height, width),
                                                       self.near, self.far)
        hit = index >= 0
        faces = index[hit]
        points = backproject(depth, K)[hit]  # (P, 3) optical frame
        weights = barycentric(points, in_camera[faces])  # (P, 3)
        normal = np.einsum("pk,pkj->pj", weights, self._normals[faces])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        unit_light = light / np.linalg.norm(light)
        cosine = normal @ unit_light
        reflected_z = 2 * cosine * normal[:, 2] - unit_light[2]
        shade = ambient + diffuse * np.maximum(cosine, 0) + specular * np.maximum(reflected_z, 0) ** 2
        rgb = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
        rgb[hit] = np.floor(np.minimum(255 * self._color[faces] * shade[:, None], 255)).astype(np.uint8)
        seg = np.full((height, width), -1, dtype=np.int64)
        seg[hit] = self._body[faces]
        return rgb, depth.astype(np.float32), seg
