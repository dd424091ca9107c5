"""On-disk CAD database: canonical meshes, 32^3 occupancy grids, surface samples, symmetry, class.

Layout of a database directory ``root``::

    manifest.json   {"format": FORMAT, "version": VERSION, "grid_size": G, "num_points": P,
                     "models": [{cad_id, class_name, class_id, symmetry, mesh_file, extent}, ...]}
    meshes/<cad_id>.stl   binary STL in the canonical frame (RViz and Foxglove load it)
    grids.npz       "grids": uint8 (N, G**3 / 8), np.packbits of the (N, G, G, G) occupancy
    points.npz      "points": float32 (N, P, 3) surface samples, canonical frame

Canonical frame: centred bbox, longest side 1 (inside [-0.5, 0.5]^3), +y up, +z front. Grid
convention in `sampling.py`. Files are read with json and np.load(allow_pickle=False) only.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import trimesh

# CadDatabaseConfig, CadDatabaseError, CadModel and safe_path are re-exported (their home is format.py)
from cad_perception_ros.cad.format import (  # noqa: F401
    FORMAT,
    GRIDS,
    MANIFEST,
    MESH_DIR,
    OPTIONAL_MODEL_KEYS,
    POINTS,
    VERSION,
    CadDatabaseConfig,
    CadDatabaseError,
    CadModel,
    check_mesh_file,
    check_model,
    remove_database_files,
    safe_path,
)
from cad_perception_ros.cad.mesh_import import mesh_folder_entries
from cad_perception_ros.cad.writer import write_database
from cad_perception_ros.jsonio import read_json_object

_HEADER_KEYS = {"format", "version", "grid_size", "num_points", "models"}
_MODEL_KEYS = {"cad_id", "class_name", "class_id", "symmetry", "mesh_file", "extent"}


def _read_manifest(root: Path) -> tuple[dict, list[CadModel]]:
    path = root / MANIFEST
    data = read_json_object(path, what="CAD database manifest", error=CadDatabaseError)
    _check_keys(data, _HEADER_KEYS, str(path))
    if data["format"] != FORMAT or data["version"] != VERSION:
        raise CadDatabaseError(f"{path}: unsupported format/version {data['format']!r} {data['version']!r}; "
                               f"this code reads {FORMAT!r} version {VERSION}")
    for key in ("grid_size", "num_points"):
        if isinstance(data[key], bool) or not isinstance(data[key], int) or data[key] < 1:
            raise CadDatabaseError(f"{path}: {key} must be a positive integer, got {data[key]!r}")
    if data["grid_size"] % 2 or not isinstance(data["models"], list):
        raise CadDatabaseError(f"{path}: grid_size must be even and models a list")
    models, seen = [], set()
    for i, item in enumerate(data["models"]):
        where = f"{path}: models[{i}]"
        if not isinstance(item, dict):
            raise CadDatabaseError(f"{where}: expected an object, got {type(item).__name__}")
        _check_keys(item, _MODEL_KEYS, where, optional=set(OPTIONAL_MODEL_KEYS))
        ext, matrix = item["extent"], item.get("source_to_canonical")
        model = CadModel(**{**item, "extent": tuple(ext) if isinstance(ext, list) else ext,
                            **({"source_to_canonical": tuple(matrix)} if isinstance(matrix, list) else {})})
        check_model(model, where)
        if model.cad_id in seen:
            raise CadDatabaseError(f"{where}: duplicate cad_id {model.cad_id!r}")
        seen.add(model.cad_id)
        mesh = safe_path(root, model.mesh_file, where)
        if not mesh.is_file():
            raise CadDatabaseError(f"{where}: mesh file {mesh} is missing")
        check_mesh_file(mesh, where)
        models.append(model)
    return data, models


def _check_keys(item: dict, allowed: set[str], where: str, optional: set[str] = frozenset()) -> None:
    unknown, missing = sorted(set(item) - allowed - optional), sorted(allowed - set(item))
    if unknown:
        raise CadDatabaseError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    if missing:
        raise CadDatabaseError(f"{where}: missing key(s) {missing}")


def _read_array(path: Path, key: str, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """Array `key` of npz `path` checked against dtype and shape (None = any size)."""
    if not path.is_file():
        raise CadDatabaseError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if key not in npz.files:
                raise CadDatabaseError(f"{path}: missing array {key!r} (has {npz.files})")
            arr = npz[key]
    except (ValueError, OSError, zlib.error) as exc:
        raise CadDatabaseError(f"{path}: unreadable npz: {exc}") from None
    if arr.dtype != dtype or arr.ndim != len(shape):
        raise CadDatabaseError(f"{path}: {key} must be {np.dtype(dtype)} with {len(shape)} dims, got {arr.dtype} {arr.shape}")
    if arr.shape[0] != shape[0]:
        raise CadDatabaseError(f"{path}: {key} holds {arr.shape[0]} models but the manifest lists {shape[0]}")
    if any(s is not None and a != s for a, s in zip(arr.shape[1:], shape[1:])):
        raise CadDatabaseError(f"{path}: {key} has shape {arr.shape}, expected {shape}")
    return arr


class CadDatabase:
    """A loaded CAD database (see the module docstring for the layout). Meshes load lazily."""

    def __init__(self, *, root: Path, models: list[CadModel], packed_grids: np.ndarray, points: np.ndarray,
                 grid_size: int) -> None:
        self.root = Path(root)
        self.models = list(models)
        self.grid_size = grid_size
        self._packed = packed_grids  # (N, G**3 / 8) uint8
        self._points = points  # (N, P, 3) float32
        self._grids: np.ndarray | None = None
        self._index = {m.cad_id: i for i, m in enumerate(self.models)}
        self._meshes: dict[str, trimesh.Trimesh] = {}

    @classmethod
    def load(cls, root: str | Path) -> "CadDatabase":
        """Read and validate a database directory. Raises CadDatabaseError naming the problem."""
        root = Path(root)
        if not root.is_dir():
            raise CadDatabaseError(f"{root}: CAD database directory not found")
        header, models = _read_manifest(root)
        n, g = len(models), header["grid_size"]
        packed = _read_array(root / GRIDS, "grids", np.dtype(np.uint8), (n, g ** 3 // 8))
        points = _read_array(root / POINTS, "points", np.dtype(np.float32), (n, header["num_points"], 3))
        return cls(root=root, models=models, packed_grids=packed, points=points, grid_size=g)

    @classmethod
    def build(cls, root: str | Path, entries: Iterable[tuple[CadModel, trimesh.Trimesh]], overwrite: bool = False,
              config: CadDatabaseConfig | None = None) -> "CadDatabase":
        """Write a database from (model, canonical mesh) pairs and load it back.

        mesh_file is set to meshes/<cad_id>.stl and extent to the mesh's bbox size. Each mesh must
        already be canonical (centred, longest side 1, within config.canonical_tolerance). Refuses to
        replace an existing database unless overwrite=True (only the database's own files are removed).
        """
        write_database(Path(root), entries, overwrite, config or CadDatabaseConfig())
        return cls.load(root)

    @classmethod
    def from_mesh_folder(cls, root: str | Path, folder: str | Path, class_of: dict | str | Path,
                         up_axis: str = "y", overwrite: bool = False) -> "CadDatabase":
        """Build a database at `root` from a folder of OBJ/GLB/STL/PLY meshes (see mesh_import.py)."""
        return cls.build(root, mesh_folder_entries(folder, class_of, up_axis), overwrite=overwrite)

    def __len__(self) -> int:
        return len(self.models)

    def __iter__(self) -> Iterator[CadModel]:
        return iter(self.models)

    def __getitem__(self, cad_id: str) -> CadModel:
        return self.models[self.index_of(cad_id)]

    def __contains__(self, cad_id: object) -> bool:
        return cad_id in self._index

    def index_of(self, cad_id: str) -> int:
        try:
            return self._index[cad_id]
        except KeyError:
            raise KeyError(f"cad_id {cad_id!r} is not in the database at {self.root}") from None

    def by_class(self, name: str) -> list[CadModel]:
        return [m for m in self.models if m.class_name == name]

    def mesh_path(self, cad_id: str) -> Path:
        """Absolute path of the model's mesh, checked to lie inside the root."""
        return safe_path(self.root, self[cad_id].mesh_file, f"{self.root}: {cad_id}").resolve()

    def mesh_uri(self, cad_id: str) -> str:
        """file:// URI of the mesh (for RViz / Foxglove mesh markers)."""
        return self.mesh_path(cad_id).as_uri()

    def mesh(self, cad_id: str) -> trimesh.Trimesh:
        """The canonical-frame mesh (loaded on first use, then cached)."""
        if cad_id not in self._meshes:
            path = self.mesh_path(cad_id)
            try:
                self._meshes[cad_id] = trimesh.load(path, force="mesh")
            except Exception as exc:  # trimesh raises many types on corrupt files
                raise CadDatabaseError(f"{path}: cannot read mesh: {exc}") from None
        return self._meshes[cad_id]

    @property
    def grids(self) -> np.ndarray:
        """(N, G, G, G) bool occupancy (axis order x, y, z; see sampling.py)."""
        if self._grids is None:
            g = self.grid_size
            self._grids = np.unpackbits(self._packed, axis=1, count=g ** 3).astype(bool).reshape(-1, g, g, g)
        return self._grids

    @property
    def points(self) -> np.ndarray:
        """(N, P, 3) float32 surface samples in the canonical frame."""
        return self._points
