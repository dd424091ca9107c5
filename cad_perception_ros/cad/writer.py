"""Write a CAD database directory (the layout is documented in database.py)."""
from __future__ import annotations

import dataclasses
import json
import os
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np
import trimesh

from cad_perception_ros.cad.format import (
    FORMAT,
    GRIDS,
    MANIFEST,
    MESH_DIR,
    POINTS,
    VERSION,
    CadDatabaseConfig,
    CadDatabaseError,
    OPTIONAL_MODEL_KEYS,
    CadModel,
    check_model,
    remove_database_files,
)

from .sampling import occupancy_grid, surface_points


def _prepare_root(root: Path, overwrite: bool) -> None:
    existing = [n for n in (MANIFEST, GRIDS, POINTS, MESH_DIR) if (root / n).exists()]
    if existing and not overwrite:
        raise CadDatabaseError(f"{root}: already holds a CAD database ({', '.join(existing)}); pass overwrite=True "
                               "(--overwrite) to replace it")
    if root.exists() and not root.is_dir():
        raise CadDatabaseError(f"{root}: exists and is not a directory")
    remove_database_files(root)  # only runs when root is ours to replace (or empty of db files)
    (root / MESH_DIR).mkdir(parents=True, exist_ok=True)


def check_canonical(mesh: trimesh.Trimesh, where: str, tol: float) -> tuple[float, float, float]:
    """Return the mesh's bbox size (3,) or raise unless centred with longest side 1 (within tol)."""
    if len(mesh.vertices) == 0 or len(mesh.faces) == 0:
        raise CadDatabaseError(f"{where}: empty mesh")
    lo, hi = mesh.bounds
    centre, extent = (lo + hi) / 2, hi - lo
    if np.abs(centre).max() > tol or abs(extent.max() - 1) > tol:
        raise CadDatabaseError(f"{where}: mesh is not canonical (bbox centre {centre.round(5).tolist()}, "
                               f"longest side {extent.max():.5f}); centre it and scale its longest side to 1")
    return tuple(float(v) for v in extent)


def write_database(root: Path, entries: Iterable[tuple[CadModel, trimesh.Trimesh]], overwrite: bool,
                   config: CadDatabaseConfig) -> None:
    """Export meshes (binary STL), grids, points and finally the manifest under `root`."""
    _prepare_root(root, overwrite)
    models, grids, points, seen = [], [], [], set()
    for model, mesh in entries:
        where = f"entry {len(models)} ({getattr(model, 'cad_id', '?')})"
        model = dataclasses.replace(model, mesh_file=f"{MESH_DIR}/{model.cad_id}.stl",
                                    extent=check_canonical(mesh, where, config.canonical_tolerance))
        check_model(model, where)
        if model.cad_id in seen:
            raise CadDatabaseError(f"{where}: duplicate cad_id {model.cad_id!r}")
        seen.add(model.cad_id)
        mesh.export(root / model.mesh_file, file_type="stl")
        grids.append(np.packbits(occupancy_grid(mesh, config.grid_size).reshape(-1)))  # (G**3 / 8,)
        points.append(surface_points(mesh, config.num_points, seed=zlib.crc32(model.cad_id.encode())))
        models.append(model)
    g3 = config.grid_size ** 3
    np.savez_compressed(root / GRIDS, grids=np.stack(grids) if grids else np.zeros((0, g3 // 8), np.uint8))
    np.savez_compressed(root / POINTS, points=np.stack(points) if points else
                        np.zeros((0, config.num_points, 3), np.float32))
    manifest = {"format": FORMAT, "version": VERSION, "grid_size": config.grid_size,
                "num_points": config.num_points,
                "models": [_manifest_entry(m) for m in models]}
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, root / MANIFEST)


def _manifest_entry(model: CadModel) -> dict:
    """The manifest record of a model; the optional source keys only when set (older readers and
    byte-identical procedural databases)."""
    entry = {**dataclasses.asdict(model), "extent": [round(v, 7) for v in model.extent]}
    for key in OPTIONAL_MODEL_KEYS:
        if entry[key] in ("", None):
            del entry[key]
    if entry.get("source_to_canonical") is not None:
        entry["source_to_canonical"] = [float(v) for v in entry["source_to_canonical"]]
    return entry
