"""CAD identity and source frame as Scan2CAD names them.

Identity: Scan2CAD (and ROCA's loader and evaluation) key a CAD model by (catid_cad, id_cad), the
ShapeNet synset and model id, as strings ("03001627", "1a2b..."). A database model's key is its
recorded (catid_cad, id_cad) when it was imported from ShapeNet, else (synset of its class,
cad_id), which is what `data generate` writes for our own models.

Frame: Scan2CAD poses refer to ShapeNet's ``model_normalized.obj`` as it is. The database holds
each mesh in its canonical frame (centred bbox, longest side 1, +y up), reached by the similarity
x_canon = A x_src + b with A = k U (k > 0, U a signed axis permutation with det +1: the up-axis
turn). A source pose x_cam = R diag(s) x_src + t is the same placement of the canonical mesh as
x_cam = R' diag(s') x_canon + t' with R' = R U^T, s' = |U| s / k, t' = t - R' diag(s') b
(`pose_to_canonical`); |U| permutes s like U permutes the axes.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cad_perception_ros.types import SCAN2CAD_CLASSES, Alignment9D

# ShapeNet synset of each class, in SCAN2CAD_CLASSES order (ROCA's CAD_TAXONOMY, zero-padded).
SHAPENET_SYNSETS = ("02808440", "02818832", "02747177", "02871439", "02933112", "03001627", "03211117",
                    "04256520", "04379243")
CLASS_OF_SYNSET = {synset: SCAN2CAD_CLASSES[i] for i, synset in enumerate(SHAPENET_SYNSETS)}
# Our symmetry labels <-> Scan2CAD's "sym" strings.
ROCA_SYMMETRY = {"none": "__SYM_NONE", "2fold": "__SYM_ROTATE_UP_2", "4fold": "__SYM_ROTATE_UP_4",
                 "inf": "__SYM_ROTATE_UP_INF"}
SYMMETRY_FROM_ROCA = {v: k for k, v in ROCA_SYMMETRY.items()}


def normalise_catid(catid) -> str:
    """'3001627', 3001627 or '03001627' -> '03001627' (ROCA drops the leading zero via int())."""
    text = str(catid).strip()
    return text.zfill(8) if text.isdigit() else text


def model_key(model) -> tuple[str, str]:
    """(catid_cad, id_cad) of a CadModel (see the module docstring)."""
    catid = model.catid_cad or SHAPENET_SYNSETS[model.class_id]
    return normalise_catid(catid), model.id_cad or model.cad_id


def similarity_matrix(scale: float, centre: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """(4, 4) source -> canonical similarity x_canon = (U x_src - centre) / scale, U (3, 3) or identity."""
    u = np.eye(3) if up is None else np.asarray(up, dtype=np.float64)
    matrix = np.eye(4)
    matrix[:3, :3] = u / float(scale)
    matrix[:3, 3] = -np.asarray(centre, dtype=np.float64) / float(scale)
    return matrix


def _split_similarity(matrix: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(k, U (3, 3), b (3,)) of a source -> canonical similarity (4, 4); ValueError otherwise."""
    matrix = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
    a, b = matrix[:3, :3], matrix[:3, 3]
    k = float(np.cbrt(np.linalg.det(a)))
    u = a / k if k > 0 else a
    perm = np.abs(u)
    if k <= 0 or not np.allclose(perm, np.round(perm), atol=1e-6) or not np.allclose(perm.sum(0), 1, atol=1e-6):
        raise ValueError("source_to_canonical must be a positive scale times a signed axis permutation "
                         f"with det +1, got {matrix[:3, :3].round(6).tolist()}")
    return k, np.round(u), b


def pose_to_canonical(alignment: Alignment9D, source_to_canonical) -> Alignment9D:
    """The pose of the canonical mesh that places it where `alignment` placed the source mesh.

    alignment: source model -> camera (or world). source_to_canonical: (4, 4) or 16 floats.
    """
    if source_to_canonical is None:
        return alignment
    k, u, b = _split_similarity(np.asarray(source_to_canonical, dtype=np.float64))
    rotation = np.asarray(alignment.rotation, np.float64) @ u.T
    scale = np.abs(u) @ np.asarray(alignment.scale, np.float64) / k
    translation = np.asarray(alignment.translation, np.float64) - rotation @ (scale * b)
    return Alignment9D(rotation=rotation, translation=translation, scale=scale)


class CadKeyIndex:
    """(catid_cad, id_cad) -> the database model, for resolving Scan2CAD annotations.

    database: a CadDatabase (or any iterable of CadModel). Unknown keys resolve to None.
    """

    def __init__(self, models: Iterable) -> None:
        self._by_key = {}
        for model in models:
            key = model_key(model)
            if key in self._by_key:
                raise ValueError(f"two CAD models share the Scan2CAD key {key}: "
                                 f"{self._by_key[key].cad_id!r} and {model.cad_id!r}")
            self._by_key[key] = model

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, catid_cad, id_cad):
        """The CadModel of a key, or None."""
        return self._by_key.get((normalise_catid(catid_cad), str(id_cad)))

    def source_transform(self, catid_cad, id_cad) -> tuple[float, ...] | None:
        """The (4, 4) source -> canonical similarity (16 floats) of a key's model, None if none."""
        model = self.get(catid_cad, id_cad)
        return None if model is None else model.source_to_canonical

    def resolve(self, catid_cad, id_cad, alignment: Alignment9D) -> tuple[str, Alignment9D] | None:
        """(database cad_id, pose in its canonical frame) of an annotated source pose, or None."""
        model = self.get(catid_cad, id_cad)
        if model is None:
            return None
        return model.cad_id, pose_to_canonical(alignment, model.source_to_canonical)
