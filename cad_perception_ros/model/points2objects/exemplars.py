"""The shape-exemplar database Z of Points2Objects (Sec. 3.2, "Building the shape database").

Per class, the CAD models' signed distance grids (canonical frame, G^3) are flattened and
clustered with k-means++; each cluster is represented by the real CAD model nearest its centre
(L2 over the SDF). The set stores, per exemplar, its SDF (for the collision loss), its surface
points (for losses and display) and its cad_id (the CAD model shown at run time), and, per CAD
model of the database, the L2 SDF distance to every exemplar (for the hard / soft labels).

Files: `<name>.npz` (arrays, loaded with allow_pickle=False) and `<name>.json` (ids, settings).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cad_perception_ros.jsonio import read_json_object
from cad_perception_ros.model.points2objects.config import P2OConfig
from cad_perception_ros.model.points2objects.kmeans import kmeans, squared_distances
from cad_perception_ros.model.points2objects.sdf import occupancy_to_sdf

FORMAT_VERSION = 1
_ARRAYS = ("sdf", "class_ids", "points", "model_class_ids", "model_distances")


def fill_empty_grids(grids: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Occupancy grids (N, G, G, G) bool where an empty grid (a model thinner than a cell, whose
    cell centres all lie outside) is replaced by the cells holding its surface points (N, P, 3)."""
    grids = np.asarray(grids).astype(bool)
    size = grids.shape[1]
    empty = np.flatnonzero(~grids.reshape(len(grids), -1).any(1))
    if empty.size:
        grids = grids.copy()
        for n in empty:
            idx = np.clip(np.floor((points[n] + 0.5) * size).astype(np.int64), 0, size - 1)  # (P, 3)
            grids[n, idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return grids


@dataclass(frozen=True)
class ExemplarSet:
    """Shape exemplars of all classes, E in total, and the distance table of the N CAD models.

    sdf: (E, G, G, G) float32 canonical units, + outside, index [ix, iy, iz] (see sdf.py).
    class_ids: (E,) int64; cad_ids: E ids of the CAD models chosen as exemplars.
    points: (E, P, 3) float32 canonical surface points of the exemplars.
    model_cad_ids: N ids of all CAD models; model_class_ids (N,) int64;
    model_distances: (N, E) float32, L2 norm of the SDF difference (inf across classes).
    """

    sdf: np.ndarray
    class_ids: np.ndarray
    cad_ids: tuple[str, ...]
    points: np.ndarray
    model_cad_ids: tuple[str, ...]
    model_class_ids: np.ndarray
    model_distances: np.ndarray
    seed: int = 0

    def __post_init__(self) -> None:
        e = self.sdf.shape[0]
        if self.sdf.ndim != 4 or len(set(self.sdf.shape[1:])) != 1:
            raise ValueError(f"ExemplarSet.sdf must have shape (E, G, G, G), got {self.sdf.shape}")
        checks = (("class_ids", self.class_ids.shape, (e,)), ("cad_ids", (len(self.cad_ids),), (e,)),
                  ("points", self.points.shape[:1] + self.points.shape[2:], (e, 3)),
                  ("model_class_ids", self.model_class_ids.shape, (len(self.model_cad_ids),)),
                  ("model_distances", self.model_distances.shape, (len(self.model_cad_ids), e)))
        for name, got, want in checks:
            if tuple(got) != want:
                raise ValueError(f"ExemplarSet.{name}: expected leading shape {want}, got {tuple(got)}")

    def __len__(self) -> int:
        return int(self.sdf.shape[0])

    @property
    def grid(self) -> int:
        return int(self.sdf.shape[1])

    def model_rows(self, cad_ids: Sequence[str]) -> np.ndarray:
        """Row (M,) of each CAD id in the model table; KeyError naming an unknown id."""
        index = {cad_id: i for i, cad_id in enumerate(self.model_cad_ids)}
        missing = [c for c in cad_ids if c not in index]
        if missing:
            raise KeyError(f"CAD ids not in the exemplar set's model table: {missing[:5]}")
        return np.asarray([index[c] for c in cad_ids], dtype=np.int64)

    def nearest_exemplar(self, cad_ids: Sequence[str]) -> np.ndarray:
        """Index (M,) of the exemplar nearest (L2 over SDF, same class) to each CAD model."""
        return self.model_distances[self.model_rows(cad_ids)].argmin(axis=1)

    def penetration_grids(self) -> np.ndarray:
        """(E, G, G, G) float32 phi~ = max(-phi, 0): depth inside the exemplar, 0 outside (Eq. 8)."""
        return np.maximum(-self.sdf, 0.0).astype(np.float32)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, *, grids: np.ndarray, points: np.ndarray, class_ids: Sequence[int],
              cad_ids: Sequence[str], k: int, sdf_grid: int = 32, seed: int = 0,
              iterations: int = 100) -> "ExemplarSet":
        """Cluster N models given by occupancy grids (N, G0, G0, G0) bool and surface points
        (N, P, 3), per class, into min(k, number of distinct SDFs of the class) exemplars."""
        grids = np.asarray(grids)
        points = np.asarray(points, dtype=np.float32)
        class_ids = np.asarray(class_ids, dtype=np.int64)
        n = grids.shape[0]
        if points.shape[0] != n or class_ids.shape != (n,) or len(cad_ids) != n:
            raise ValueError(f"build: grids ({n}), points ({points.shape[0]}), class_ids "
                             f"({class_ids.shape}) and cad_ids ({len(cad_ids)}) disagree")
        sdf = occupancy_to_sdf(fill_empty_grids(grids, points), sdf_grid)  # (N, G, G, G)
        flat = sdf.reshape(n, -1).astype(np.float64)
        chosen: list[int] = []
        for c in np.unique(class_ids):  # sorted: deterministic exemplar order
            members = np.flatnonzero(class_ids == c)
            # identical SDFs are clustered once, so k is clamped to the number of distinct shapes
            first: dict[bytes, int] = {}
            for m in members:
                first.setdefault(flat[m].tobytes(), int(m))
            members = np.asarray(sorted(first.values()), dtype=np.int64)
            result = kmeans(flat[members], k, seed=seed + int(c), iterations=iterations)
            chosen.extend(int(members[m]) for m in sorted(result.medoids))
        chosen_arr = np.asarray(chosen, dtype=np.int64)
        dist = np.sqrt(squared_distances(flat, flat[chosen_arr]))  # (N, E)
        dist[class_ids[:, None] != class_ids[None, chosen_arr]] = np.inf
        return cls(sdf=sdf[chosen_arr], class_ids=class_ids[chosen_arr],
                   cad_ids=tuple(str(cad_ids[i]) for i in chosen_arr), points=points[chosen_arr],
                   model_cad_ids=tuple(str(c) for c in cad_ids), model_class_ids=class_ids,
                   model_distances=dist.astype(np.float32), seed=seed)

    @classmethod
    def from_database(cls, database: Any, config: P2OConfig) -> "ExemplarSet":
        """Build from a CadDatabase (uses .models[i].cad_id / .class_id, .grids, .points)."""
        models = list(database.models)
        return cls.build(grids=np.asarray(database.grids), points=np.asarray(database.points),
                         class_ids=[m.class_id for m in models], cad_ids=[m.cad_id for m in models],
                         k=config.exemplars_per_class, sdf_grid=config.sdf_grid,
                         seed=config.kmeans_seed, iterations=config.kmeans_iterations)

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write `path` (.npz) and its sidecar .json; refuses to replace files unless overwrite."""
        npz = Path(path).with_suffix(".npz")
        meta = npz.with_suffix(".json")
        for target in (npz, meta):
            if target.exists() and not overwrite:
                raise FileExistsError(f"{target} exists; refusing to overwrite it")
        npz.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(npz, **{name: getattr(self, name) for name in _ARRAYS})
        info = {"format_version": FORMAT_VERSION, "seed": self.seed, "grid": self.grid,
                "cad_ids": list(self.cad_ids), "model_cad_ids": list(self.model_cad_ids)}
        meta.write_text(json.dumps(info, indent=1), encoding="utf-8")
        return npz

    @classmethod
    def load(cls, path: str | Path) -> "ExemplarSet":
        """Read a set written by save(); ValueError naming the file on a bad or missing entry."""
        npz = Path(path).with_suffix(".npz")
        meta_path = npz.with_suffix(".json")
        for target in (npz, meta_path):
            if not target.is_file():
                raise ValueError(f"exemplar set file not found: {target}")
        meta = read_json_object(meta_path, what="exemplar metadata")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{meta_path}: format_version {meta.get('format_version')!r}, "
                             f"expected {FORMAT_VERSION}")
        with np.load(npz, allow_pickle=False) as data:
            missing = [name for name in _ARRAYS if name not in data.files]
            if missing:
                raise ValueError(f"{npz}: missing arrays {missing}")
            arrays = {name: np.asarray(data[name]) for name in _ARRAYS}
        try:
            return cls(cad_ids=tuple(meta["cad_ids"]), model_cad_ids=tuple(meta["model_cad_ids"]),
                       seed=int(meta.get("seed", 0)), **arrays)
        except KeyError as exc:
            raise ValueError(f"{meta_path}: missing key {exc}") from None
