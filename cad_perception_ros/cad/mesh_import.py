"""Turn a folder of meshes (OBJ, GLB/GLTF, STL, PLY, OFF) into canonical CAD database entries.

``class_of`` maps a file name relative to the folder to either a class name or a mapping
``{"class": name, "symmetry": label}``; it is a dict or a .json / .yaml / .yml file holding one.
Symmetry is "none" unless given. Canonicalisation: with ``up_axis="z"`` the mesh is first rotated
-90 degrees about x (old +z becomes +y, old +y becomes -z); then its bbox is centred and scaled
uniformly so the longest side is 1. The front (+z) is taken as it comes.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import trimesh
import yaml

from cad_perception_ros.cad.format import CadDatabaseError, CadModel, safe_path

from ..types import SCAN2CAD_CLASSES

MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".stl", ".ply", ".off")
_Z_UP_TO_Y_UP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=float)


def read_class_map(class_of: dict | str | Path) -> dict[str, dict]:
    """Normalise the mapping to {relative file: {"class": name, "symmetry": label}}."""
    if isinstance(class_of, (str, Path)):
        path = Path(class_of)
        if not path.is_file():
            raise CadDatabaseError(f"{path}: class map file not found")
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise CadDatabaseError(f"{path}: cannot parse class map: {exc}") from None
    else:
        data = class_of
    if not isinstance(data, dict) or not data:
        raise CadDatabaseError(f"class map must be a non-empty mapping file -> class, got {type(data).__name__}")
    out = {}
    for name, value in data.items():
        entry = {"class": value} if isinstance(value, str) else value
        if not isinstance(entry, dict) or set(entry) - {"class", "symmetry"} or "class" not in entry:
            raise CadDatabaseError(f"class map entry {name!r}: expected a class name or {{class, symmetry}}, got {value!r}")
        out[str(name)] = {"class": entry["class"], "symmetry": entry.get("symmetry", "none")}
    return out


def canonicalize_mesh(mesh: trimesh.Trimesh, up_axis: str = "y") -> trimesh.Trimesh:
    """Copy of `mesh` rotated to +y up, bbox-centred, longest side 1. Raises ValueError on a flat/empty mesh."""
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    out = mesh.copy()
    if up_axis == "z":
        out.apply_transform(_Z_UP_TO_Y_UP)
    centre, longest = bounds_frame(out)
    out.vertices = (out.vertices - centre) / longest
    return out


def bounds_frame(mesh: trimesh.Trimesh) -> tuple[np.ndarray, float]:
    """(bounding-box centre (3,), longest side) of `mesh`; ValueError on an empty or zero-size mesh."""
    if len(mesh.vertices) == 0:
        raise ValueError("empty mesh")
    lo, hi = mesh.bounds
    longest = float(np.max(hi - lo))
    if longest <= 0:
        raise ValueError("degenerate mesh (zero size)")
    return (lo + hi) / 2, longest


def _cad_id(relative: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(Path(relative).with_suffix("")))
    return stem.lstrip("._-")[:128] or "model"


def mesh_folder_entries(folder: str | Path, class_of: dict | str | Path, up_axis: str = "y"
                        ) -> Iterator[tuple[CadModel, trimesh.Trimesh]]:
    """Yield (CadModel, canonical mesh) for every file named in the class map."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CadDatabaseError(f"{folder}: mesh folder not found")
    for relative, entry in sorted(read_class_map(class_of).items()):
        path = safe_path(folder, relative, f"class map entry {relative!r}")
        if path.suffix.lower() not in MESH_SUFFIXES:
            raise CadDatabaseError(f"{path}: unsupported mesh type; expected one of {MESH_SUFFIXES}")
        if not path.is_file():
            raise CadDatabaseError(f"{path}: mesh file named in the class map is missing")
        if entry["class"] not in SCAN2CAD_CLASSES:
            raise CadDatabaseError(f"{path}: unknown class {entry['class']!r}; expected one of {SCAN2CAD_CLASSES}")
        try:
            mesh = canonicalize_mesh(trimesh.load(path, force="mesh"), up_axis)
        except Exception as exc:  # trimesh raises many types on bad files
            raise CadDatabaseError(f"{path}: cannot load mesh: {exc}") from None
        cad_id = _cad_id(relative)
        model = CadModel(cad_id, entry["class"], SCAN2CAD_CLASSES.index(entry["class"]), entry["symmetry"],
                         f"meshes/{cad_id}.stl", tuple(float(v) for v in mesh.extents))
        yield model, mesh
