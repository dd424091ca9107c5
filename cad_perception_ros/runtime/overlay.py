"""Debug overlay: projected CAD wireframes, 2D boxes and labels drawn on an RGB image (numpy + Pillow).

ROS-free (image in -> image out) so the CLI and the node's debug image share it. Wireframes
are canonical-frame vertices (V, 3) and edges (E, 2); each is mapped to the camera with the
prediction's alignment (R diag(s) x + t), projected with K, and drawn where both ends lie in
front of the camera (z > near). Without a wireframe, the canonical unit cube's 12 edges are drawn.
"""
from __future__ import annotations

import functools
from typing import Mapping, NamedTuple, Sequence

import numpy as np
from PIL import Image, ImageDraw

from cad_perception_ros.types import CadPrediction

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
)


class Wireframe(NamedTuple):
    """vertices: (V, 3) canonical frame; edges: (E, 2) int vertex indices."""

    vertices: np.ndarray
    edges: np.ndarray


def unit_cube_wireframe() -> Wireframe:
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])  # (8, 3)
    edges = [(i, j) for i in range(8) for j in range(i + 1, 8) if np.abs(corners[i] - corners[j]).sum() == 1.0]
    return Wireframe(corners, np.array(edges))  # 12 edges


def mesh_wireframe(mesh, *, feature_angle_deg: float = 20.0, max_edges: int = 3000) -> Wireframe:
    """Feature edges of a trimesh mesh (dihedral angle above `feature_angle_deg`), at most `max_edges`."""
    edges = mesh.face_adjacency_edges[mesh.face_adjacency_angles > np.radians(feature_angle_deg)]  # (E, 2)
    if len(edges) == 0:
        edges = mesh.edges_unique
    if len(edges) > max_edges:
        edges = edges[np.linspace(0, len(edges) - 1, max_edges).astype(int)]
    return Wireframe(np.asarray(mesh.vertices, dtype=np.float64), np.asarray(edges, dtype=np.int64))


def project_segments(wire: Wireframe, prediction: CadPrediction, K: np.ndarray, near: float = 0.05) -> np.ndarray:
    """(E', 2, 2) pixel segments (u, v) of the wireframe edges in front of the camera."""
    cam = prediction.alignment.transform_points(wire.vertices)  # (V, 3) camera frame
    front = cam[:, 2] > near
    uvw = cam @ np.asarray(K, dtype=np.float64).T  # (V, 3)
    uv = uvw[:, :2] / np.where(front, uvw[:, 2], 1.0)[:, None]  # (V, 2)
    keep = front[wire.edges].all(1)
    return uv[wire.edges[keep]]  # (E', 2, 2)


def draw_overlay(image: np.ndarray, predictions: Sequence[CadPrediction], K: np.ndarray, *,
                 wireframes: Mapping[str, Wireframe] | None = None, line_width: int = 2) -> np.ndarray:
    """image (H, W, 3) uint8 RGB -> new (H, W, 3) uint8 with wireframes, boxes and labels drawn."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"draw_overlay: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    canvas = Image.fromarray(image.copy())
    draw = ImageDraw.Draw(canvas)
    cube = unit_cube_wireframe()
    for pred in predictions:
        colour = PALETTE[pred.class_id % len(PALETTE)]
        wire = (wireframes or {}).get(pred.cad_id, cube)
        for (u0, v0), (u1, v1) in project_segments(wire, pred, K):
            draw.line([(u0, v0), (u1, v1)], fill=colour, width=1)
        x0, y0, x1, y1 = (float(v) for v in pred.box_xyxy)
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=line_width)
        label = f"{pred.class_name} {pred.score:.2f}" + (f" {pred.cad_id}" if pred.cad_id else "")
        left, top, right, bottom = draw.textbbox((x0, y0), label)
        text_y = max(y0 - (bottom - top) - 2, 0)
        draw.rectangle([x0, text_y, x0 + (right - left) + 4, text_y + (bottom - top) + 2], fill=colour)
        draw.text((x0 + 2, text_y), label, fill=(0, 0, 0))
    return np.asarray(canvas)


def prediction_to_dict(pred: CadPrediction) -> dict:
    """JSON-ready dict of one prediction (mask as its pixel area only)."""
    a = pred.alignment
    return {"class_id": int(pred.class_id), "class_name": pred.class_name, "score": float(pred.score),
            "box_xyxy": [float(v) for v in pred.box_xyxy], "cad_id": pred.cad_id,
            "retrieval_distance": None if np.isnan(pred.retrieval_distance) else float(pred.retrieval_distance),
            "rotation": a.rotation.tolist(), "translation": a.translation.tolist(), "scale": a.scale.tolist(),
            "mask_pixels": None if pred.mask is None else int(np.count_nonzero(pred.mask))}


def wireframes_for(cad_database, cad_ids) -> dict:
    """cad id -> overlay Wireframe of its mesh (cached); ids the database lacks are skipped."""
    if cad_database is None:
        return {}
    return {cad_id: w for cad_id in set(cad_ids) if cad_id
            and (w := _wireframe(cad_database, cad_id)) is not None}



@functools.lru_cache(maxsize=512)
def _wireframe(cad_database, cad_id: str):
    try:
        return mesh_wireframe(cad_database.mesh(cad_id))
    except (KeyError, ValueError, OSError):
        return None
