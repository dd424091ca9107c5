"""Render a ``Scene`` from any camera and intrinsics K: pybullet's CPU TinyRenderer, or the
pure-numpy backend of ``render_numpy.py`` (same images, no pybullet; ``renderers.make_renderer``).

Per view: RGB (random lighting, per-object colours with texture-like noise), metric depth
along the optical axis, the instance map (from the segmentation buffer) and NOC maps computed
from depth: for pixel i of object k, noc_i = diag(1/s_k) R_k^T (X_i - t_k), X_i the
back-projected pixel centre (optical frame). Output: a ``SceneSample``.

Pixel convention: K follows the project (pixel (row r, col c) has centre (u, v) = (c+0.5, r+0.5)).
TinyRenderer shades pixel (r, c) with the ray through (c, r+1) of the OpenGL projection
(measured; see test/test_data_render.py), so the projection is built from K shifted by
``RENDERER_PIXEL_OFFSET``; the test checks that a known 3D point lands where K predicts.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from cad_perception_ros.data.sample import ObjectAnnotation, SceneSample
from cad_perception_ros.data.scenes import Scene
from cad_perception_ros.geometry.camera import backproject

# (du, dv) added to (cx, cy) when building the OpenGL projection so that pixel centres match K.
RENDERER_PIXEL_OFFSET = (-0.5, 0.5)


def projection_from_intrinsics(K: np.ndarray, width: int, height: int, near: float, far: float,
                               pixel_offset: tuple[float, float] = RENDERER_PIXEL_OFFSET) -> list[float]:
    """16 floats (column-major OpenGL projection) equivalent to OpenCV K (3, 3) for a W x H image."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must have shape (3, 3), got {K.shape}")
    fx, fy = K[0, 0], K[1, 1]
    cx, cy = K[0, 2] + pixel_offset[0], K[1, 2] + pixel_offset[1]
    proj = np.zeros((4, 4))
    proj[0, 0] = 2 * fx / width
    proj[0, 2] = 1 - 2 * cx / width
    proj[1, 1] = 2 * fy / height
    proj[1, 2] = 2 * cy / height - 1
    proj[2, 2] = -(far + near) / (far - near)
    proj[2, 3] = -2 * far * near / (far - near)
    proj[3, 2] = -1.0
    return proj.T.reshape(-1).tolist()


def view_from_camera_to_world(camera_to_world: np.ndarray) -> list[float]:
    """16 floats (column-major OpenGL view matrix) of an optical-frame camera pose (4, 4)."""
    cv_to_gl = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenGL eye: x right, y up, z backwards
    view = cv_to_gl @ np.linalg.inv(np.asarray(camera_to_world, dtype=np.float64))
    return view.T.reshape(-1).tolist()


def _texture_noise(rng: np.random.Generator, labels: np.ndarray, count: int) -> np.ndarray:
    """(H, W) multiplicative noise around 1: per label (0..count-1) its own coarse random grid,
    bilinearly upsampled, with its own amplitude, plus fine grain."""
    height, width = labels.shape
    coarse = rng.normal(0.0, 1.0, size=(count, 6, 8))  # (B, 6, 8)
    amplitude = rng.uniform(0.05, 0.25, size=count)  # (B,)
    rows = np.linspace(0, 5, height)
    cols = np.linspace(0, 7, width)
    r0 = np.minimum(np.floor(rows).astype(int), 4)[:, None]  # (H, 1)
    c0 = np.minimum(np.floor(cols).astype(int), 6)[None, :]  # (1, W)
    fr, fc = rows[:, None] - r0, cols[None, :] - c0
    smooth = ((1 - fr) * (1 - fc) * coarse[labels, r0, c0] + (1 - fr) * fc * coarse[labels, r0, c0 + 1]
              + fr * (1 - fc) * coarse[labels, r0 + 1, c0] + fr * fc * coarse[labels, r0 + 1, c0 + 1])
    grain = rng.normal(0.0, 0.3, size=(height, width))
    return 1.0 + amplitude[labels] * (smooth + grain) / 2


RENDERERS = ("auto", "pybullet", "numpy")
# How meshes are shaded. "pybullet": as TinyRenderer shades a mesh given without normals (each
# vertex gets its direction from the object's centre, so every object is lit like a sphere);
# "flat": each face with its own normal (the numpy backend only).
SHADINGS = ("pybullet", "flat")


def room_boxes(scene: Scene) -> list[tuple[tuple, tuple, tuple]]:
    """(half extents, centre, RGB colour) of the room's six 2 cm slabs in world metres, in body
    order: floor, ceiling, then the walls at x = 0, x = width, y = 0, y = depth."""
    width, depth, height = scene.room
    t = 0.02
    halves_and_centres = [
        ((width / 2, depth / 2, t), (width / 2, depth / 2, -t)),
        ((width / 2, depth / 2, t), (width / 2, depth / 2, height + t)),
        ((t, depth / 2, height / 2), (-t, depth / 2, height / 2)),
        ((t, depth / 2, height / 2), (width + t, depth / 2, height / 2)),
        ((width / 2, t, height / 2), (width / 2, -t, height / 2)),
        ((width / 2, t, height / 2), (width / 2, depth + t, height / 2))]
    colors = [scene.floor_color, scene.wall_colors[0], *scene.wall_colors]
    return [(half, centre, color) for (half, centre), color in zip(halves_and_centres, colors)]


def draw_lighting(rng: np.random.Generator) -> tuple[np.ndarray, float, float, float]:
    """A view's random light: direction (3,) in the world frame (not normalised, +z half-space)
    and the ambient, diffuse and specular coefficients. Both backends draw it the same way, so
    one seed gives the same scene, cameras and light whichever renders it."""
    light = rng.normal(size=3)
    light[2] = abs(light[2]) + 0.5
    ambient = float(rng.uniform(0.4, 0.7))
    diffuse = float(rng.uniform(0.3, 0.6))
    specular = float(rng.uniform(0.0, 0.2))
    return light, ambient, diffuse, specular


def pybullet_available() -> bool:
    try:
        import pybullet  # noqa: F401
    except ImportError:
        return False
    return True


def check_shading(shading: str) -> str:
    """`shading` if it is one of SHADINGS, else ValueError naming them."""
    if shading not in SHADINGS:
        raise ValueError(f"shading must be one of {SHADINGS}, got {shading!r}")
    return shading


def resolve_renderer(name: str = "auto", shading: str = "pybullet") -> str:
    """The backend that `make_renderer` would use: "auto" is pybullet when it is installed and
    the shading allows it, else numpy. ValueError for unknown names or a backend that cannot
    give the shading."""
    if name not in RENDERERS:
        raise ValueError(f"renderer must be one of {RENDERERS}, got {name!r}")
    check_shading(shading)
    if name == "auto":
        return "pybullet" if shading == "pybullet" and pybullet_available() else "numpy"
    if name == "pybullet" and shading != "pybullet":
        raise ValueError(f"shading {shading!r} needs the numpy renderer (pybullet shades meshes its own way)")
    return name


class RendererBase:
    """What both backends share: ``load(scene, database)`` then ``render(...)`` per view.

    A backend implements ``load`` (setting ``_scene`` and ``_body_to_object``: segmentation id ->
    index in scene.objects) and ``_raw`` (RGB before texture, depth, segmentation). Not
    thread-safe; make one per process. near/far are the clipping planes in metres.
    """

    name = ""

    def __init__(self, *, near: float = 0.05, far: float = 30.0, min_visible_pixels: int = 200) -> None:
        self.near, self.far = near, far
        self.min_visible_pixels = min_visible_pixels
        self._scene: Scene | None = None
        self._body_to_object: dict[int, int] = {}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def load(self, scene: Scene, database) -> None:
        raise NotImplementedError

    def _raw(self, camera_to_world, K, width, height, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def render(self, camera_to_world: np.ndarray, K: np.ndarray, size: tuple[int, int],
               rng: np.random.Generator, image_id: str = "") -> SceneSample:
        """One view of the loaded scene. size = (height, width). Objects with fewer than
        min_visible_pixels visible pixels are dropped (their pixels become background)."""
        if self._scene is None:
            raise RuntimeError(f"{type(self).__name__}.render: call load(scene, database) first")
        height, width = size
        K = np.asarray(K, dtype=np.float64)
        rgb, depth, seg = self._raw(camera_to_world, K, width, height, rng)
        image = self._texture(rgb, seg, rng)
        points = backproject(depth.astype(np.float64), K)  # (H, W, 3)
        instance_map = np.full((height, width), -1, dtype=np.int32)
        noc = np.zeros((height, width, 3), dtype=np.float32)
        objects: list[ObjectAnnotation] = []
        for body, index in self._body_to_object.items():
            mask = seg == body
            area = int(mask.sum())
            if area < self.min_visible_pixels:
                continue
            obj = self._scene.objects[index]
            alignment = obj.in_camera(camera_to_world)
            local = (points[mask] - alignment.translation) @ alignment.rotation / alignment.scale  # (P, 3)
            noc[mask] = local.astype(np.float32)
            instance_map[mask] = len(objects)
            rows, cols = np.nonzero(mask)
            box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64)
            objects.append(ObjectAnnotation(class_id=obj.class_id, cad_id=obj.cad_id, alignment=alignment,
                                            box_xyxy=box, symmetry=obj.symmetry, visible_pixels=area))
        return SceneSample(image=image, depth=depth, K=K.copy(), instance_map=instance_map, noc=noc,
                           objects=objects, image_id=image_id, scene_id=self._scene.scene_id,
                           camera_to_world=np.asarray(camera_to_world, dtype=np.float64).copy())

    def _texture(self, rgb: np.ndarray, seg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Multiply each segment by its own smooth noise field; a global brightness change."""
        labels = seg - seg.min()  # (H, W) small non-negative body labels
        noise = _texture_noise(rng, labels, int(labels.max()) + 1)  # (H, W)
        out = rgb.astype(np.float32) * noise[..., None].astype(np.float32)
        out *= float(rng.uniform(0.85, 1.15))
        return np.clip(out, 0, 255).astype(np.uint8)


class SceneRenderer(RendererBase):
    """The pybullet backend: one DIRECT client, CPU TinyRenderer."""

    name = "pybullet"

    def __init__(self, *, near: float = 0.05, far: float = 30.0, min_visible_pixels: int = 200) -> None:
        import pybullet

        super().__init__(near=near, far=far, min_visible_pixels=min_visible_pixels)
        self._p = pybullet
        self._client = pybullet.connect(pybullet.DIRECT)
        self._mesh_cache: dict[str, tuple[list, list]] = {}

    def close(self) -> None:
        if self._client is not None:
            self._p.disconnect(self._client)
            self._client = None

    def _mesh_arrays(self, database, cad_id: str) -> tuple[list, list]:
        if cad_id not in self._mesh_cache:
            mesh = database.mesh(cad_id)
            self._mesh_cache[cad_id] = (np.asarray(mesh.vertices, dtype=np.float64).tolist(),
                                        np.asarray(mesh.faces, dtype=np.int64).reshape(-1).tolist())
        return self._mesh_cache[cad_id]

    def _box(self, half: tuple[float, float, float], center: tuple[float, float, float], color) -> int:
        p = self._p
        shape = p.createVisualShape(p.GEOM_BOX, halfExtents=list(half), rgbaColor=[*color, 1.0],
                                    physicsClientId=self._client)
        return p.createMultiBody(baseMass=0, baseVisualShapeIndex=shape, basePosition=list(center),
                                 physicsClientId=self._client)

    def load(self, scene: Scene, database) -> None:
        """Create the room (floor, ceiling, 4 walls) and the objects of `scene`."""
        p = self._p
        p.resetSimulation(physicsClientId=self._client)
        for half, center, color in room_boxes(scene):
            self._box(half, center, color)
        self._body_to_object = {}
        for index, obj in enumerate(scene.objects):
            vertices, indices = self._mesh_arrays(database, obj.cad_id)
            shape = p.createVisualShape(p.GEOM_MESH, vertices=vertices, indices=indices,
                                        meshScale=obj.scale.tolist(), rgbaColor=[*obj.color, 1.0],
                                        physicsClientId=self._client)
            quat = _quaternion_xyzw(obj.rotation)
            body = p.createMultiBody(baseMass=0, baseVisualShapeIndex=shape,
                                     basePosition=obj.translation.tolist(), baseOrientation=quat,
                                     physicsClientId=self._client)
            self._body_to_object[body] = index
        self._scene = scene

    def _raw(self, camera_to_world, K, width, height, rng):
        p = self._p
        light, ambient, diffuse, specular = draw_lighting(rng)
        _, _, rgba, zbuf, seg = p.getCameraImage(
            width, height, view_from_camera_to_world(camera_to_world),
            projection_from_intrinsics(K, width, height, self.near, self.far),
            renderer=p.ER_TINY_RENDERER, lightDirection=(light * 10).tolist(),
            lightAmbientCoeff=ambient, lightDiffuseCoeff=diffuse,
            lightSpecularCoeff=specular, shadow=0, physicsClientId=self._client)
        rgb = np.reshape(np.asarray(rgba, dtype=np.uint8), (height, width, 4))[..., :3]
        zbuf = np.reshape(np.asarray(zbuf, dtype=np.float64), (height, width))
        seg = np.reshape(np.asarray(seg, dtype=np.int64), (height, width))
        depth = self.far * self.near / (self.far - (self.far - self.near) * zbuf)
        depth[seg < 0] = 0.0
        return rgb, depth.astype(np.float32), seg


def _quaternion_xyzw(rotation: np.ndarray) -> list[float]:
    """pybullet (x, y, z, w) quaternion of a rotation matrix (3, 3)."""
    return Rotation.from_matrix(rotation).as_quat().tolist()
