"""The CAD database's on-disk format: file names, version, the model record and its checks (shared by
the reader in database.py, the writer and the mesh importer)."""
from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cad_perception_ros.types import SCAN2CAD_CLASSES, SYMMETRIES

FORMAT = "cad_perception_ros.cad_db"



VERSION = 1



MANIFEST = "manifest.json"



GRIDS = "grids.npz"



POINTS = "points.npz"



MESH_DIR = "meshes"



_CAD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")



class CadDatabaseError(ValueError):
    """A CAD database on disk (or an entry given to build) is invalid; the message names the problem."""



@dataclass(frozen=True)
class CadDatabaseConfig:
    """Per-model data stored by `CadDatabase.build`."""

    grid_size: int = 32
    num_points: int = 1024
    canonical_tolerance: float = 1e-4  # allowed bbox-centre / longest-side error of built meshes



@dataclass(frozen=True)
class CadModel:
    """One CAD model. mesh_file: relative to the db root; extent: canonical bbox size (3,).

    Optional (models imported from a source such as ShapeNet, see cad/identity.py): catid_cad and
    id_cad, the Scan2CAD key of the source model; source_to_canonical, the 4x4 similarity (16
    floats, row-major) that took the source mesh to the canonical one (x_canon = A x_src + b).
    """

    cad_id: str
    class_name: str
    class_id: int
    symmetry: str
    mesh_file: str
    extent: tuple[float, float, float]
    catid_cad: str = ""
    id_cad: str = ""
    source_to_canonical: tuple[float, ...] | None = None


OPTIONAL_MODEL_KEYS = ("catid_cad", "id_cad", "source_to_canonical")



def check_model(model: CadModel, where: str) -> None:
    """Raise CadDatabaseError unless the model's fields are well formed."""
    if not isinstance(model.cad_id, str) or not _CAD_ID.match(model.cad_id):
        raise CadDatabaseError(f"{where}: cad_id {model.cad_id!r} must match {_CAD_ID.pattern}")
    if model.class_name not in SCAN2CAD_CLASSES:
        raise CadDatabaseError(f"{where}: unknown class_name {model.class_name!r}; expected one of {SCAN2CAD_CLASSES}")
    if isinstance(model.class_id, bool) or model.class_id != SCAN2CAD_CLASSES.index(model.class_name):
        raise CadDatabaseError(f"{where}: class_id {model.class_id!r} does not match class_name {model.class_name!r}")
    if model.symmetry not in SYMMETRIES:
        raise CadDatabaseError(f"{where}: symmetry {model.symmetry!r} is not one of {SYMMETRIES}")
    ext = model.extent
    if (not isinstance(ext, (list, tuple)) or len(ext) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 + 1e-6 for v in ext)):
        raise CadDatabaseError(f"{where}: extent {ext!r} must be 3 numbers in [0, 1]")
    if not isinstance(model.mesh_file, str):
        raise CadDatabaseError(f"{where}: mesh_file must be a string, got {model.mesh_file!r}")
    if not isinstance(model.catid_cad, str) or not isinstance(model.id_cad, str):
        raise CadDatabaseError(f"{where}: catid_cad and id_cad must be strings")
    matrix = model.source_to_canonical
    if matrix is not None and (not isinstance(matrix, (list, tuple)) or len(matrix) != 16 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in matrix)):
        raise CadDatabaseError(f"{where}: source_to_canonical must be 16 finite numbers (a row-major 4x4)")



MESH_SUFFIXES = (".stl", ".obj", ".glb", ".ply")


def check_mesh_file(path: Path, where: str) -> None:
    """Cheap parse check of a mesh file (header and size, not the whole mesh): a binary STL must be
    84 + 50 n bytes for its n triangles, an ASCII STL start with "solid" and hold a facet, a GLB start
    with the glTF magic, a PLY with "ply", an OBJ hold vertex lines. CadDatabaseError otherwise, so
    the node never points RViz markers at garbage."""
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise CadDatabaseError(f"{where}: mesh file {path.name} is not one of {MESH_SUFFIXES}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(65536)
    ok = False
    if suffix == ".stl":
        if len(head) >= 84:
            triangles = int.from_bytes(head[80:84], "little")
            ok = triangles > 0 and size == 84 + 50 * triangles
        ok = ok or (head.lstrip().startswith(b"solid") and b"facet" in head)
    elif suffix == ".glb":
        ok = head[:4] == b"glTF" and size >= 20
    elif suffix == ".ply":
        ok = head[:3] == b"ply" and b"end_header" in head
    elif suffix == ".obj":
        ok = b"\nv " in b"\n" + head and b"\x00" not in head
    if not ok:
        raise CadDatabaseError(f"{where}: mesh file {path} does not parse as {suffix[1:].upper()} "
                               f"({size} bytes)")


def safe_path(root: Path, relative: str, where: str) -> Path:
    """root / relative, refusing absolute paths, '..' and symlinks that leave root."""
    pure = PurePosixPath(relative)
    if not relative or pure.is_absolute() or "\\" in relative or re.match(r"^[A-Za-z]:", relative):
        raise CadDatabaseError(f"{where}: mesh_file {relative!r} must be a relative POSIX path inside the database")
    if ".." in pure.parts:
        raise CadDatabaseError(f"{where}: mesh_file {relative!r} escapes the database root ('..')")
    path = root / pure
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise CadDatabaseError(f"{where}: mesh_file {relative!r} resolves to {resolved}, outside the database root")
    return path



def remove_database_files(root: Path) -> None:
    """Delete the files a database consists of (never anything else in root)."""
    for name in (MANIFEST, GRIDS, POINTS):
        (root / name).unlink(missing_ok=True)
    if (root / MESH_DIR).is_dir() and not (root / MESH_DIR).is_symlink():
        shutil.rmtree(root / MESH_DIR)
