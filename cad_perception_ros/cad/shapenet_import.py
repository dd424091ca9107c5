"""Import ShapeNet models as Scan2CAD uses them into CAD database entries.

Layout read (ShapeNetCore v2, what ROCA's renderer/create_cad_db.py reads)::

    ROOT/{catid_cad}/{id_cad}/models/model_normalized.obj

Each model keeps its identity: cad_id = id_cad (``{catid_cad}_{id_cad}`` if the id occurs in two
synsets), catid_cad and id_cad recorded, so Scan2CAD keys resolve (cad/identity.py). The mesh is
stored canonical (bbox centred, longest side 1, axes as they come: ShapeNet is +y up) and the
similarity that did it is recorded as source_to_canonical, with which every Scan2CAD pose is
converted when it is read (`identity.pose_to_canonical`).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import trimesh

from cad_perception_ros.cad.format import CadDatabaseError, CadModel
from cad_perception_ros.cad.identity import CLASS_OF_SYNSET, SYMMETRY_FROM_ROCA, normalise_catid, similarity_matrix
from cad_perception_ros.cad.mesh_import import bounds_frame
from cad_perception_ros.types import SCAN2CAD_CLASSES

SHAPENET_MESH = ("models", "model_normalized.obj")


def shapenet_mesh_path(root: str | Path, catid_cad: str, id_cad: str) -> Path:
    """ROOT/catid/id/models/model_normalized.obj."""
    return Path(root, normalise_catid(catid_cad), str(id_cad), *SHAPENET_MESH)


def canonical_with_transform(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, np.ndarray]:
    """(canonical copy of `mesh`, its (4, 4) source -> canonical similarity). ValueError if flat."""
    centre, longest = bounds_frame(mesh)
    matrix = similarity_matrix(longest, centre)
    out = mesh.copy()
    out.apply_transform(matrix)
    return out, matrix


def shapenet_entries(root: str | Path, models: Iterable[tuple[str, str, str]]
                     ) -> Iterator[tuple[CadModel, trimesh.Trimesh]]:
    """(CadModel, canonical mesh) per (catid_cad, id_cad, Scan2CAD sym) of the nine classes.

    Models of other synsets are skipped; a missing or unreadable mesh raises CadDatabaseError.
    """
    root = Path(root)
    if not root.is_dir():
        raise CadDatabaseError(f"{root}: ShapeNet folder not found")
    seen_keys, used_ids = set(), set()
    for catid, id_cad, sym in models:
        catid = normalise_catid(catid)
        if catid not in CLASS_OF_SYNSET or (catid, id_cad) in seen_keys:
            continue
        seen_keys.add((catid, id_cad))
        path = shapenet_mesh_path(root, catid, id_cad)
        if not path.is_file():
            raise CadDatabaseError(f"{path}: ShapeNet mesh named by the annotations is missing")
        try:
            mesh, matrix = canonical_with_transform(trimesh.load(path, force="mesh"))
        except Exception as exc:  # trimesh raises many types on bad files
            raise CadDatabaseError(f"{path}: cannot load mesh: {exc}") from None
        cad_id = id_cad if id_cad not in used_ids else f"{catid}_{id_cad}"
        used_ids.add(cad_id)
        name = CLASS_OF_SYNSET[catid]
        yield CadModel(cad_id, name, SCAN2CAD_CLASSES.index(name), SYMMETRY_FROM_ROCA.get(sym, "none"),
                       f"meshes/{cad_id}.stl", tuple(float(v) for v in mesh.extents), catid_cad=catid,
                       id_cad=str(id_cad), source_to_canonical=tuple(float(v) for v in matrix.reshape(-1))), mesh
