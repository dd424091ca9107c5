"""The data-v2 CAD database: part-based procedural furniture with material slots per part.

``generate_part_model(class_name, style, index)`` is deterministic. ``build_v2_database(root)``
writes a CadDatabase (manifest, STL meshes, grids, points; see database.py) plus two sidecar
files that only v2 readers use:

    parts.json      {"format": PARTS_FORMAT, "recipe": V2_RECIPE, "models": {cad_id:
                     {"style": k, "unseen": bool, "slots": [slot of part 0, ...]}}}
    face_parts.npz  cad_id -> int16 (F,) part index of every mesh face (STL face order)
    meshes/<cad_id>.glb   the same mesh with per-face colours by slot (RViz, `cad show`)

Canonical frame as every CAD model: centred bbox, longest side 1, +y up, +z front.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np
import trimesh
from tqdm import tqdm

from ..types import SCAN2CAD_CLASSES
from .database import CadDatabase, CadDatabaseError, CadModel
from .parts import SLOTS, STYLES, UNSEEN_STYLES, build_part_model
from .primitives import union_mesh
from .procedural import canonicalize_parts

PARTS_FORMAT = "cad_perception_ros.cad_parts/1"
PARTS_FILE = "parts.json"
FACE_PARTS_FILE = "face_parts.npz"
# Bump when a builder changes: databases and data sets built by another recipe are rebuilt.
V2_RECIPE = "cad-v2.1"

# Display colours (RGB 0..1) of the slots in exported GLB meshes (the renderer draws its own).
SLOT_COLORS: dict[str, tuple[float, float, float]] = {
    "body": (0.62, 0.45, 0.3), "front": (0.78, 0.66, 0.5), "handle": (0.75, 0.75, 0.78), "back": (0.45, 0.4, 0.35),
    "legs": (0.35, 0.25, 0.18), "fabric": (0.35, 0.45, 0.6), "cushion": (0.55, 0.62, 0.75),
    "pillow": (0.92, 0.9, 0.85), "bedding": (0.88, 0.88, 0.9), "screen": (0.05, 0.06, 0.08),
    "bezel": (0.15, 0.15, 0.16), "housing": (0.6, 0.6, 0.62), "ceramic": (0.95, 0.95, 0.93),
    "metal": (0.8, 0.8, 0.82), "book": (0.7, 0.2, 0.2), "glass": (0.2, 0.3, 0.35), "top": (0.7, 0.55, 0.38),
}


@dataclass(frozen=True)
class V2DatabaseConfig:
    """How many models of each style the v2 database holds."""

    per_style: int = 6

    def __post_init__(self) -> None:
        if self.per_style < 1:
            raise ValueError(f"per_style must be >= 1, got {self.per_style}")


class PartModel(NamedTuple):
    """One v2 model: canonical mesh, the part index of each face (F,), slots per part."""

    cad_id: str
    class_name: str
    class_id: int
    symmetry: str
    style: int
    mesh: trimesh.Trimesh
    face_parts: np.ndarray
    slots: list[str]

    @property
    def unseen(self) -> bool:
        return self.style in UNSEEN_STYLES[self.class_name]


def v2_cad_id(class_name: str, style: int, index: int) -> str:
    return f"v2_{class_name}_st{style}_{index:02d}"


def generate_part_model(class_name: str, style: int, index: int) -> PartModel:
    """Deterministic v2 model of a class, style and index (ValueError on bad arguments)."""
    if class_name not in SCAN2CAD_CLASSES:
        raise ValueError(f"unknown class {class_name!r}; expected one of {SCAN2CAD_CLASSES}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    class_id = SCAN2CAD_CLASSES.index(class_name)
    rng = np.random.default_rng([2, class_id, style, index])
    parts, symmetry = build_part_model(class_name, style, rng)
    _, owner = union_mesh(list(parts))
    _, mesh = canonicalize_parts(list(parts))
    return PartModel(v2_cad_id(class_name, style, index), class_name, class_id, symmetry, style, mesh,
                     owner.astype(np.int16), list(parts.slots))


def iter_part_models(config: V2DatabaseConfig = V2DatabaseConfig()) -> Iterator[PartModel]:
    for class_name in SCAN2CAD_CLASSES:
        for style in range(STYLES[class_name]):
            for index in range(config.per_style):
                yield generate_part_model(class_name, style, index)


def colored_mesh(model: PartModel) -> trimesh.Trimesh:
    """The model's mesh with per-face RGBA colours by slot (for GLB export)."""
    colors = np.array([SLOT_COLORS[s] for s in model.slots])[model.face_parts]  # (F, 3)
    mesh = trimesh.Trimesh(model.mesh.vertices, model.mesh.faces, process=False)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=np.c_[np.round(colors * 255), np.full(len(colors), 255)]
                                              .astype(np.uint8))
    return mesh


def build_v2_database(root: str | Path, config: V2DatabaseConfig = V2DatabaseConfig(), overwrite: bool = False,
                      progress: Callable | None = None):
    """Write the v2 database (CadDatabase + sidecars) to root and return the loaded CadDatabase."""

    root = Path(root)
    kept: list[PartModel] = []

    def entries():
        for m in iter_part_models(config):
            kept.append(m)
            yield CadModel(m.cad_id, m.class_name, m.class_id, m.symmetry, "", (1.0, 1.0, 1.0)), m.mesh

    stream = entries()
    if progress is not None:
        stream = progress(stream)
    for name in (PARTS_FILE, FACE_PARTS_FILE):
        if (root / name).exists() and not overwrite:

            raise CadDatabaseError(f"{root}: already holds {name}; pass overwrite=True (--overwrite)")
        (root / name).unlink(missing_ok=True)
    database = CadDatabase.build(root, stream, overwrite=overwrite)
    for m in kept:
        colored_mesh(m).export(root / "meshes" / f"{m.cad_id}.glb")
    np.savez_compressed(root / FACE_PARTS_FILE, **{m.cad_id: m.face_parts for m in kept})
    info = {"format": PARTS_FORMAT, "recipe": V2_RECIPE, "per_style": config.per_style,
            "models": {m.cad_id: {"style": m.style, "unseen": m.unseen, "slots": m.slots} for m in kept}}
    tmp = root / (PARTS_FILE + ".tmp")
    tmp.write_text(json.dumps(info), encoding="utf-8")
    os.replace(tmp, root / PARTS_FILE)
    return database


class PartLabels:
    """The sidecars of a v2 database: per model its style, unseen flag, slots and face parts."""

    def __init__(self, root: str | Path) -> None:

        self.root = Path(root)
        path = self.root / PARTS_FILE
        if not path.is_file():
            raise CadDatabaseError(f"{self.root}: no {PARTS_FILE}; not a v2 database (cad build --data-version 2)")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != PARTS_FORMAT:
            raise CadDatabaseError(f"{path}: not a {PARTS_FORMAT} file")
        self.recipe = data.get("recipe")
        self.models: dict[str, dict] = data["models"]
        for cad_id, item in self.models.items():
            if not set(item.get("slots", [])) <= set(SLOTS):
                raise CadDatabaseError(f"{path}: {cad_id}: unknown slot(s) in {item.get('slots')}")
        with np.load(self.root / FACE_PARTS_FILE, allow_pickle=False) as npz:
            self.face_parts = {k: npz[k].astype(np.int64) for k in npz.files}

    def slots(self, cad_id: str) -> list[str]:
        return self.models[cad_id]["slots"]

    def unseen(self, cad_id: str) -> bool:
        return bool(self.models[cad_id]["unseen"])


def ensure_v2_database(root: str | Path, progress: bool = True):
    """Load the v2 database at root, (re)building it when missing or of another recipe.
    Returns (CadDatabase, PartLabels)."""

    root = Path(root)
    try:
        labels = PartLabels(root)
        current = labels.recipe == V2_RECIPE
    except Exception:  # missing or unreadable: rebuild
        current = False
    if not current:

        total = sum(STYLES.values()) * V2DatabaseConfig().per_style
        bar = (lambda it: tqdm(it, total=total, unit="model", desc="CAD v2")) if progress else None
        root.mkdir(parents=True, exist_ok=True)
        build_v2_database(root, overwrite=True, progress=bar)
        labels = PartLabels(root)
    return CadDatabase.load(root), labels
