"""A scene renderer by name: pybullet's TinyRenderer (``render.py``), the pure-numpy one
(``render_numpy.py``), the same images either way, or data v2's part-material renderer
(``render_materials.py``)."""
from __future__ import annotations

from cad_perception_ros.data.render import SceneRenderer, resolve_renderer
from cad_perception_ros.data.render_materials import MaterialSceneRenderer
from cad_perception_ros.data.render_numpy import NumpySceneRenderer


def make_renderer(name: str = "auto", *, shading: str = "pybullet", near: float = 0.05,
                  min_visible_pixels: int = 200):
    """A renderer by name ("pybullet", "numpy", "auto" (see `resolve_renderer`), or "materials":
    data v2, which ignores `shading`)."""
    if name == "materials":
        return MaterialSceneRenderer(near=near, min_visible_pixels=min_visible_pixels)
    if resolve_renderer(name, shading) == "pybullet":
        return SceneRenderer(near=near, min_visible_pixels=min_visible_pixels)
    return NumpySceneRenderer(near=near, min_visible_pixels=min_visible_pixels, shading=shading)
