"""Scan2CAD's full annotations (``full_annotations.json``): every CAD object of every scan.

Format (skanti/Scan2CAD; what ROCA's Vid2CAD evaluation reads)::

    [{"id_scan": "scene0000_00",
      "trs": {"translation": [3], "rotation": [w, x, y, z], "scale": [3]},      scan -> Scan2CAD
      "aligned_models": [{"catid_cad": "03001627", "id_cad": "...", "sym": "__SYM_NONE",
                          "trs": {translation, rotation, scale}, ...}]}, ...]             CAD -> Scan2CAD

An object's pose in the scan's frame (ScanNet's camera poses' world frame) is
inv(M(scan trs)) @ M(model trs), M(t, q, s) = T(t) R(q) S(s) (Scan2CAD's make_M_from_tqs), split
back into t, R, s by column norms (decompose_mat4). Objects of synsets outside the nine classes
are left out, as ROCA leaves them out.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from cad_perception_ros.cad.identity import SHAPENET_SYNSETS, SYMMETRY_FROM_ROCA, CadKeyIndex, normalise_catid
from cad_perception_ros.data.sample import ObjectAnnotation
from cad_perception_ros.types import SYMMETRIES, Alignment9D



def matrix_from_trs(trs: Mapping) -> np.ndarray:
    """(4, 4) T(t) R(q) S(s) of a Scan2CAD trs {translation, rotation (w, x, y, z), scale}."""
    w, x, y, z = (float(v) for v in trs["rotation"])
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix() * np.asarray(trs["scale"], np.float64)
    matrix[:3, 3] = np.asarray(trs["translation"], np.float64)
    return matrix


def alignment_from_matrix(matrix: np.ndarray) -> Alignment9D:
    """t, R, s of a (4, 4) T R S matrix: s = column norms of the 3x3 block (decompose_mat4)."""
    block = np.asarray(matrix, np.float64)[:3, :3]
    scale = np.linalg.norm(block, axis=0)
    return Alignment9D(rotation=block / scale, translation=np.asarray(matrix, np.float64)[:3, 3].copy(), scale=scale)


def read_full_annotations(path) -> list[dict]:
    """The list of scans of a full-annotations file, checked for the keys used here."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the Scan2CAD full annotations: {exc}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: Scan2CAD full annotations must be a JSON list of scans")
    for i, scan in enumerate(data):
        if not isinstance(scan, dict) or not {"id_scan", "trs", "aligned_models"} <= set(scan):
            raise ValueError(f"{path}: scan {i} lacks id_scan, trs or aligned_models")
    return data


def scene_objects(scans: Iterable[dict], *, keys: CadKeyIndex | None = None,
                  scenes: Iterable[str] | None = None) -> dict[str, list[ObjectAnnotation]]:
    """Scene id -> its objects of the nine classes, scan (world) frame, as ObjectAnnotations.

    keys: resolves (catid_cad, id_cad) to the database's cad_id and converts each pose into its
    canonical frame; without it cad_id = id_cad and poses stay in the ShapeNet frame. scenes: keep
    only these (every listed scene is present, empty if the file has no objects for it).
    """
    wanted = None if scenes is None else set(scenes)
    out: dict[str, list[ObjectAnnotation]] = {s: [] for s in (wanted or ())}
    for scan in scans:
        scene = str(scan["id_scan"])
        if wanted is not None and scene not in wanted:
            continue
        to_scan = np.linalg.inv(matrix_from_trs(scan["trs"]))
        objects = out.setdefault(scene, [])
        for model in scan["aligned_models"]:
            catid = normalise_catid(model["catid_cad"])
            if catid not in SHAPENET_SYNSETS:
                continue
            alignment = alignment_from_matrix(to_scan @ matrix_from_trs(model["trs"]))
            cad_id = str(model["id_cad"])
            if keys is not None and (resolved := keys.resolve(catid, cad_id, alignment)) is not None:
                cad_id, alignment = resolved
            symmetry = SYMMETRY_FROM_ROCA.get(model.get("sym", "__SYM_NONE"), "none")
            objects.append(ObjectAnnotation(class_id=SHAPENET_SYNSETS.index(catid), cad_id=cad_id,
                                            alignment=alignment, box_xyxy=np.zeros(4),
                                            symmetry=symmetry if symmetry in SYMMETRIES else "none"))
    return out


def full_annotations_from_scenes(scene_alignments: Mapping[str, list[dict]]) -> list[dict]:
    """Full annotations of {scene: [{t, q, s, catid_cad, id_cad, sym}]} in the scene frame (the scan
    trs is the identity, so the objects' trs are their scene poses)."""
    identity = {"translation": [0.0, 0.0, 0.0], "rotation": [1.0, 0.0, 0.0, 0.0], "scale": [1.0, 1.0, 1.0]}
    return [{"id_scan": scene, "trs": identity,
             "aligned_models": [{"catid_cad": a["catid_cad"], "id_cad": a["id_cad"], "sym": a["sym"],
                                 "trs": {"translation": list(a["t"]), "rotation": list(a["q"]), "scale": list(a["s"])}}
                                for a in alignments]}
            for scene, alignments in sorted(scene_alignments.items())]


def annotated_models(path) -> list[tuple[str, str, str]]:
    """(catid_cad, id_cad, sym) of every CAD model named by a full-annotations file (a list of scans)
    or a COCO instances file (its annotations' model), in first-seen order, without repeats."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read annotations: {exc}") from None
    if isinstance(data, list):
        items = [(m.get("catid_cad"), m.get("id_cad"), m.get("sym", "__SYM_NONE"))
                 for scan in data if isinstance(scan, dict) for m in scan.get("aligned_models", [])]
    elif isinstance(data, dict) and isinstance(data.get("annotations"), list):
        items = [(a["model"].get("catid_cad"), a["model"].get("id_cad"), a.get("sym", "__SYM_NONE"))
                 for a in data["annotations"] if isinstance(a, dict) and isinstance(a.get("model"), dict)]
    else:
        raise ValueError(f"{path}: neither Scan2CAD full annotations (a list of scans) nor COCO instances")
    seen, out = set(), []
    for catid, id_cad, sym in items:
        if catid is None or id_cad is None:
            continue
        key = (normalise_catid(catid), str(id_cad))
        if key not in seen:
            seen.add(key)
            out.append((*key, str(sym)))
    return out
