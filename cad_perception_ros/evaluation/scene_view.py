"""3D view of a reconstructed scene: the predicted CAD meshes placed with their 9-DoF alignments
next to the ground-truth ones, seen from above and from the side (matplotlib, Agg, PNG).

Frames: everything is in one camera's optical frame (x right, y down, z forward); the plots show
it with "up" = -y: top view = (x, z) plane, side view = (z, -y) plane. A mesh vertex x of the
canonical CAD frame is placed at R diag(s) x + t.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import trimesh

from cad_perception_ros.data.sample import ObjectAnnotation
from cad_perception_ros.types import Alignment9D, CadPrediction

PRED_COLOUR, GT_COLOUR = (0.90, 0.20, 0.20), (0.20, 0.45, 0.90)
MAX_FACES = 400  # per mesh, enough for the outline of low-poly furniture


def place(vertices: np.ndarray, alignment: Alignment9D) -> np.ndarray:
    """Canonical vertices (V, 3) -> optical frame (V, 3): R diag(s) x + t."""
    vertices = np.asarray(vertices, np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {vertices.shape}")
    R, t, s = (np.asarray(a, np.float64) for a in (alignment.rotation, alignment.translation, alignment.scale))
    return vertices * s[None] @ R.T + t[None]  # (V, 3)


def _unit_box() -> tuple[np.ndarray, np.ndarray]:
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    return np.asarray(box.vertices), np.asarray(box.faces)


def _mesh(database, cad_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) vertices and (F, 3) faces of the CAD model (a unit box when unknown)."""
    if database is not None and cad_id:
        try:
            mesh = database.mesh(cad_id)
            faces = np.asarray(mesh.faces)
            step = max(1, len(faces) // MAX_FACES)
            return np.asarray(mesh.vertices), faces[::step]
        except (KeyError, ValueError, OSError):
            pass
    return _unit_box()


def _draw(ax, triangles: list[np.ndarray], colour, axes: tuple[int, int], signs: tuple[float, float], label: str,
          filled: bool):
    """Project triangles (F, 3, 3) onto two axes: filled (predictions) or outlined (ground truth)."""
    from matplotlib.collections import PolyCollection
    polys = [np.stack([tri[:, axes[0]] * signs[0], tri[:, axes[1]] * signs[1]], 1) for tri in triangles]
    if polys:
        ax.add_collection(PolyCollection(polys, facecolors=(*colour, 0.15 if filled else 0.0),
                                         edgecolors=(*colour, 0.35 if filled else 0.8),
                                         linewidths=0.3 if filled else 0.6, label=label))


def render_scene_view(out: str | Path, predictions: Sequence[CadPrediction], objects: Sequence[ObjectAnnotation],
                      database=None, *, prediction_database=None, title: str = "") -> Path:
    """Write a PNG with top and side views: predicted meshes (red) and ground truth (blue).

    predictions / objects: one frame's, both in the same optical frame. database: CadDatabase for
    the ground-truth meshes (None: unit boxes scaled by s); prediction_database: the one the model
    retrieves from (default: `database`). Returns the PNG path.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {"prediction": [], "ground truth": []}
    pred_db = database if prediction_database is None else prediction_database
    for name, items, db in (("prediction", predictions, pred_db), ("ground truth", objects, database)):
        for item in items:
            vertices, faces = _mesh(db, item.cad_id)
            groups[name].extend(place(vertices, item.alignment)[faces])  # (F, 3, 3) triangles
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    views = (("top view (x right, z forward)", (0, 2), (1.0, 1.0), "x [m]", "z [m]"),
             ("side view (z forward, up)", (2, 1), (1.0, -1.0), "z [m]", "up [m]"))
    for ax, (name, axis_ids, signs, xlabel, ylabel) in zip(axes, views):
        _draw(ax, groups["prediction"], PRED_COLOUR, axis_ids, signs, f"prediction ({len(predictions)})", True)
        _draw(ax, groups["ground truth"], GT_COLOUR, axis_ids, signs, f"ground truth ({len(objects)})", False)
        camera = (0.0, 0.0)
        ax.plot(*camera, marker="^" if axis_ids == (0, 2) else ">", color="k", markersize=9, label="camera")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_aspect("equal", adjustable="datalim")
        ax.autoscale_view()
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(title or "reconstructed scene: predicted CAD models vs ground truth", fontsize=11)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
