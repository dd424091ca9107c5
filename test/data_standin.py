"""A tiny in-memory stand-in for cad_perception_ros.cad.database.CadDatabase (tests only)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from cad_perception_ros.types import SCAN2CAD_CLASSES


@dataclass(frozen=True)
class StandinModel:
    cad_id: str
    class_name: str
    class_id: int
    symmetry: str
    mesh_file: str
    extent: tuple[float, float, float]


class StandinDatabase:
    """Boxes and cylinders in the canonical frame (centred, longest side 1), two per class."""

    def __init__(self, classes=SCAN2CAD_CLASSES) -> None:
        self.models = []
        self._meshes = {}
        rng = np.random.default_rng(0)
        for name in classes:
            for k in range(2):
                if k == 0:
                    size = rng.uniform(0.4, 1.0, size=3)
                    size = size / size.max()
                    mesh = trimesh.creation.box(extents=size)
                    sym = "2fold"
                else:
                    mesh = trimesh.creation.cylinder(radius=0.5, height=0.6, sections=24)
                    mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
                    sym = "inf"
                extent = tuple(float(e) for e in mesh.extents)
                cad_id = f"{name}_{k:03d}"
                self._meshes[cad_id] = mesh
                self.models.append(StandinModel(cad_id, name, SCAN2CAD_CLASSES.index(name), sym,
                                                f"meshes/{cad_id}.stl", extent))

    def __len__(self):
        return len(self.models)

    def __getitem__(self, cad_id):
        return next(m for m in self.models if m.cad_id == cad_id)

    def mesh(self, cad_id):
        return self._meshes[cad_id].copy()
