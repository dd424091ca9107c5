"""Pictures of annotated views: mask overlays, NOC colours and projected 3D boxes."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from cad_perception_ros.data.sample import SceneSample

PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [0, 128, 128]], np.float32)
# Edges of a box given by its 8 corners indexed by bits (x, y, z).
BOX_EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]


def box_corners(extent) -> np.ndarray:
    """(8, 3) corners of a centred canonical box of size extent (3,); corner i has bits (x, y, z)."""
    extent = np.asarray(extent, dtype=np.float64)
    bits = np.array([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)], dtype=np.float64)
    return (bits - 0.5) * extent


def project_points(points: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (u, v) (N, 2) of optical-frame points (N, 3) and whether each is in front (N,)."""
    z = points[:, 2]
    front = z > 1e-3
    uv = (points @ K.T)[:, :2] / np.where(front, z, 1.0)[:, None]
    return uv, front


def overlay_masks(sample: SceneSample, alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) uint8: the image with each instance tinted in its palette colour."""
    out = sample.image.astype(np.float32)
    for index in range(len(sample.objects)):
        mask = sample.instance_map == index
        out[mask] = (1 - alpha) * out[mask] + alpha * PALETTE[index % len(PALETTE)]
    return out.clip(0, 255).astype(np.uint8)


def noc_image(sample: SceneSample) -> np.ndarray:
    """(H, W, 3) uint8: NOC (x, y, z) in [-0.5, 0.5] as RGB on object pixels, a dim image elsewhere."""
    out = (sample.image.astype(np.float32) * 0.3)
    mask = sample.instance_map >= 0
    out[mask] = (sample.noc[mask] + 0.5).clip(0, 1) * 255
    return out.astype(np.uint8)


def draw_boxes(image: np.ndarray, sample: SceneSample, extents: dict | None = None) -> np.ndarray:
    """Project each object's 3D box (canonical extent from `extents[cad_id]`, else the unit cube)
    through its alignment and K; draw the edges and the 2D box."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for index, obj in enumerate(sample.objects):
        color = tuple(int(c) for c in PALETTE[index % len(PALETTE)])
        extent = (extents or {}).get(obj.cad_id, (1.0, 1.0, 1.0))
        uv, front = project_points(obj.alignment.transform_points(box_corners(extent)), sample.K)
        for a, b in BOX_EDGES:
            if front[a] and front[b]:
                draw.line([tuple(uv[a]), tuple(uv[b])], fill=color, width=2)
        x0, y0, x1, y1 = (float(v) for v in obj.box_xyxy)
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(255, 255, 255), width=1)
    return np.asarray(canvas)


def sample_panels(sample: SceneSample, extents: dict | None = None) -> np.ndarray:
    """(H, 2W, 3) uint8: [image + masks + 3D boxes | NOC colours]."""
    left = draw_boxes(overlay_masks(sample), sample, extents)
    return np.concatenate([left, noc_image(sample)], axis=1)


def make_grid(samples: list[SceneSample], extents: dict | None = None, columns: int = 2,
              panel_width: int = 480) -> np.ndarray:
    """(rows*h, columns*panel_width, 3) uint8 grid of sample_panels, each resized to panel_width."""
    if not samples:
        raise ValueError("make_grid: no samples")
    tiles = []
    for sample in samples:
        panel = Image.fromarray(sample_panels(sample, extents))
        height = round(panel.height * panel_width / panel.width)
        tiles.append(np.asarray(panel.resize((panel_width, height), Image.BILINEAR)))
    tile_h = max(t.shape[0] for t in tiles)
    rows = -(-len(tiles) // columns)
    grid = np.full((rows * tile_h, columns * panel_width, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        grid[r * tile_h:r * tile_h + tile.shape[0], c * panel_width:(c + 1) * panel_width] = tile
    return grid
