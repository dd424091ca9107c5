"""Procedural furniture CAD models for the nine Scan2CAD classes, in the canonical CAD frame.

``generate_model(class_name, variant, seed)`` is deterministic for its arguments and returns the
mesh (a union of low-poly boxes and prisms, a few hundred faces, built in a few milliseconds), the
primitives it is made of (for exact occupancy and surface samples) and its symmetry label.
Canonical frame: centred bbox, longest bbox side 1 (fits [-0.5, 0.5]^3), +y up, +z front.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np
import trimesh

from cad_perception_ros.cad.database import CadDatabase, CadModel
from cad_perception_ros.cad.furniture import build_parts
from cad_perception_ros.cad.primitives import Primitive, union_mesh
from cad_perception_ros.cad.sampling import (
    PRIMITIVES_KEY,  # trimesh metadata key holding the canonical primitives
)
from cad_perception_ros.types import SCAN2CAD_CLASSES


@dataclass(frozen=True)
class ProceduralConfig:
    """Settings of the bundled procedural database (the defaults used by `cad build`)."""

    per_class: int = 24
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {self.per_class}")


class ProceduralModel(NamedTuple):
    """One generated model. mesh: canonical-frame trimesh (metadata[PRIMITIVES_KEY] = parts)."""

    cad_id: str
    class_name: str
    class_id: int
    symmetry: str
    mesh: trimesh.Trimesh
    parts: list[Primitive]


def procedural_cad_id(class_name: str, variant: int, seed: int) -> str:
    return f"{class_name}_s{seed}_{variant:03d}"


def canonicalize_parts(parts: list[Primitive]) -> tuple[list[Primitive], trimesh.Trimesh]:
    """Move and uniformly scale parts so the union mesh bbox is centred with longest side 1."""
    mesh, _ = union_mesh(parts)
    lo, hi = mesh.bounds
    offset, scale = -(lo + hi) / 2, 1.0 / float(np.max(hi - lo))
    canon = [p.transformed(offset, scale) for p in parts]
    vertices = (mesh.vertices + offset) * scale  # (V, 3) identical to union_mesh(canon)
    out = trimesh.Trimesh(vertices, mesh.faces, process=False)
    out.metadata[PRIMITIVES_KEY] = canon
    return canon, out


def generate_model(class_name: str, variant: int, seed: int = 0) -> ProceduralModel:
    """Deterministic procedural model of `class_name` (one of SCAN2CAD_CLASSES) for (variant, seed)."""
    if class_name not in SCAN2CAD_CLASSES:
        raise ValueError(f"unknown class {class_name!r}; expected one of {SCAN2CAD_CLASSES}")
    if variant < 0 or seed < 0:
        raise ValueError(f"variant and seed must be >= 0, got {variant}, {seed}")
    class_id = SCAN2CAD_CLASSES.index(class_name)
    rng = np.random.default_rng([seed, class_id, variant])
    parts, symmetry = build_parts(class_name, variant, rng)
    canon, mesh = canonicalize_parts(parts)
    return ProceduralModel(procedural_cad_id(class_name, variant, seed), class_name, class_id, symmetry, mesh, canon)


def iter_procedural(per_class: int, seed: int = 0) -> Iterator[ProceduralModel]:
    """All models of a procedural database: `per_class` variants of each class, in class order."""
    for class_name in SCAN2CAD_CLASSES:
        for variant in range(per_class):
            yield generate_model(class_name, variant, seed)


def build_procedural_database(root: str | Path, per_class: int | None = None, seed: int | None = None,
                              overwrite: bool = False, progress: Callable | None = None):
    """Generate `per_class` models of each class and write a CadDatabase to `root`.

    per_class / seed default to ProceduralConfig. `progress` wraps the entry iterator (e.g. tqdm
    with total=per_class * 9). Returns the loaded CadDatabase.
    """
    cfg = ProceduralConfig(per_class=ProceduralConfig.per_class if per_class is None else per_class,
                           seed=ProceduralConfig.seed if seed is None else seed)

    def entries():
        for m in iter_procedural(cfg.per_class, cfg.seed):
            extent = tuple(float(v) for v in m.mesh.extents)
            yield CadModel(m.cad_id, m.class_name, m.class_id, m.symmetry, f"meshes/{m.cad_id}.stl", extent), m.mesh

    stream = entries()
    if progress is not None:
        stream = progress(stream)
    return CadDatabase.build(root, stream, overwrite=overwrite)
