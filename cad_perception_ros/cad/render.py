"""Contact sheet of a CAD database: a grid of shaded renderings, one row per class.

A tiny orthographic z-buffer renderer in numpy (Lambert shading), enough for low-poly furniture
and fast (no GL). The view looks at the model's front (+z) from the right,
above: yaw 35 degrees about +y, then pitch 25 degrees down.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cad_perception_ros.cad.procedural_v2 import SLOT_COLORS, PartLabels
from cad_perception_ros.types import SCAN2CAD_CLASSES

_LIGHT = np.array([0.4, 0.8, 0.6]) / np.linalg.norm([0.4, 0.8, 0.6])


@dataclass(frozen=True)
class ContactSheetConfig:
    """Layout of `cad show`."""

    columns: int = 12  # models shown per class
    cell_px: int = 112  # size of one rendering
    yaw_deg: float = 35.0
    pitch_deg: float = 25.0


def view_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """(3, 3) canonical -> view rotation; view x right, y up, z towards the viewer."""
    a, b = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rx @ ry.T


def render_mesh(vertices: np.ndarray, faces: np.ndarray, size: int, rotation: np.ndarray,
                color: tuple[int, int, int] = (190, 150, 110), face_colors: np.ndarray | None = None) -> Image.Image:
    """RGB image (size, size) of a mesh: vertices (V, 3), faces (F, 3), rotation (3, 3) canonical -> view.

    Orthographic z-buffer rasterisation at 2x, fitted to the projected bbox, Lambert shading.
    face_colors (F, 3) RGB 0..255, if given, colours each face (the v2 models' parts).
    """
    ss = 2
    n = size * ss
    v = vertices @ rotation.T  # (V, 3) view frame, +z towards the viewer
    lo, hi = v[:, :2].min(0), v[:, :2].max(0)
    scale = 0.9 * n / max(float((hi - lo).max()), 1e-9)
    px = np.c_[n / 2 + scale * (v[:, 0] - (lo[0] + hi[0]) / 2), n / 2 - scale * (v[:, 1] - (lo[1] + hi[1]) / 2)]
    tri3 = v[faces]  # (F, 3, 3)
    normals = np.cross(tri3[:, 1] - tri3[:, 0], tri3[:, 2] - tri3[:, 0])
    norm = np.linalg.norm(normals, axis=1)
    keep = (norm > 1e-12) & (normals[:, 2] > 0)  # front faces only
    shade = 0.35 + 0.65 * np.clip((normals[keep] / norm[keep, None]) @ (rotation @ _LIGHT), 0, 1)
    depth = np.full((n, n), -np.inf)
    image = np.full((n, n), -1.0)  # shade per pixel, -1 = background
    for k, (tri, z) in enumerate(zip(px[faces[keep]], tri3[keep][:, :, 2])):  # (3, 2), (3,)
        _raster_triangle(tri, z, float(k), depth, image)  # image holds the index of the kept face
    colors = np.tile(np.array(color, dtype=float), (int(keep.sum()), 1)) if face_colors is None \
        else np.asarray(face_colors, dtype=float)[keep]
    index = np.maximum(image, 0).astype(int)
    lit = colors[index] * shade[index][..., None] if len(shade) else np.zeros((n, n, 3))
    rgb = np.where(image[..., None] < 0, 255.0, lit)
    return Image.fromarray(rgb.astype(np.uint8)).resize((size, size), Image.LANCZOS)


def _raster_triangle(tri: np.ndarray, z: np.ndarray, shade: float, depth: np.ndarray, image: np.ndarray) -> None:
    """Fill one screen triangle tri (3, 2) pixels with vertex depths z (3,) into depth/image (n, n)."""
    n = depth.shape[0]
    x0, y0 = np.maximum(np.floor(tri.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(tri.max(0)).astype(int) + 1, n)
    if x0 >= x1 or y0 >= y1:
        return
    xs, ys = np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5)  # (h, w)
    (ax, ay), (bx, by), (cx, cy) = tri
    den = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
    if abs(den) < 1e-12:
        return
    w0 = ((by - cy) * (xs - cx) + (cx - bx) * (ys - cy)) / den
    w1 = ((cy - ay) * (xs - cx) + (ax - cx) * (ys - cy)) / den
    w2 = 1 - w0 - w1
    inside = (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6)
    zz = w0 * z[0] + w1 * z[1] + w2 * z[2]
    block = depth[y0:y1, x0:x1]
    win = inside & (zz > block)
    block[win] = zz[win]
    image[y0:y1, x0:x1][win] = shade


def contact_sheet(db, out: str | Path, config: ContactSheetConfig | None = None, progress=None) -> Path:
    """Write a PNG grid (rows = classes present, columns = first models of each class)."""
    cfg = config or ContactSheetConfig()
    rows = [(c, db.by_class(c)[: cfg.columns]) for c in SCAN2CAD_CLASSES if db.by_class(c)]
    label_w, cell = 90, cfg.cell_px
    sheet = Image.new("RGB", (label_w + cell * cfg.columns, max(1, len(rows)) * (cell + 14)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    rot = view_rotation(cfg.yaw_deg, cfg.pitch_deg)
    jobs = [(r, k, m) for r, (_, models) in enumerate(rows) for k, m in enumerate(models)]
    part_colors = _part_colors(db)
    for r, k, model in (progress(jobs) if progress else jobs):
        mesh = db.mesh(model.cad_id)
        img = render_mesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), cell, rot,
                          face_colors=part_colors(model.cad_id) if part_colors else None)
        x, y = label_w + k * cell, r * (cell + 14)
        sheet.paste(img, (x, y))
        draw.text((x + 2, y + cell), f"{model.cad_id.split('_')[-1]} {model.symmetry}", fill=(90, 90, 90))
    for r, (name, _) in enumerate(rows):
        draw.text((6, r * (cell + 14) + cell // 2), name, fill=(0, 0, 0))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out


def _part_colors(db):
    """cad_id -> (F, 3) face colours 0..255 by material slot for a v2 database, else None."""
    if not (db.root / "parts.json").is_file():
        return None
    labels = PartLabels(db.root)

    def colors(cad_id: str) -> np.ndarray:
        slots = np.array([SLOT_COLORS[s] for s in labels.slots(cad_id)]) * 255
        return slots[labels.face_parts[cad_id]]

    return colors
