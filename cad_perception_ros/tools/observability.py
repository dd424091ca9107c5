"""Can the pixels tell an object's heading? The observability check of data v2 (issue 24).

For each ground-truth object labelled asymmetric ("none"), its CAD model is rendered with the
true scale and translation at the true heading and at the 7 other headings in 45-degree steps
about its up axis, x_cam = R Ry(k 45 deg) diag(s) x + t, and the heading whose render best
explains the image inside the object is picked. Reported: the share picked within 20 degrees
(that is, the true heading), per class and over all objects.

The score is colour-agnostic, so it needs neither the scene's materials nor its light: a
candidate render splits the pixels into segments (one per CAD part and face orientation, the
six signed axes of the face normal in the model frame; v1 models are one part), and

    cost = (sum over segments of the squared RGB deviation of the image from the segment mean
            + P * (pixels of the object's mask the candidate does not cover)
            + sum over neighbouring pixel pairs across a candidate segment boundary of
              max(0, T - |RGB difference|^2)) / pixels of the mask

everything inside the object's visible mask (pixels the candidate covers outside the mask are
ignored, so the outline beyond the mask does not decide)

with P = 3 * 40^2 and T = 3 * 12^2: a heading wins when its parts fall on regions of uniform
colour and its part boundaries on real image edges (a phantom boundary on a flat surface pays
T per pixel pair). Lowest cost wins. Needs the instance images (synthetic data has them).

Example:
  cad-perception observability --data datasets/bench-v2-val --split val --limit 100 --json obs.json
  cad-perception observability --benchmark synthetic-val-v2 --limit 100
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.cad.procedural_v2 import PartLabels
from cad_perception_ros.data.benchmark_cache import ensure_benchmark
from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.data.raster import face_normals, rasterize
from cad_perception_ros.jsonio import refuses_overwrite, write_json_report
from cad_perception_ros.types import SCAN2CAD_CLASSES

HEADINGS = 8
MISS_PENALTY = 3 * 40.0 ** 2
BOUNDARY_THRESHOLD = 3 * 12.0 ** 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help="data root in the Scan2CAD image format")
    parser.add_argument("--split", default="val", help="split (default: val)")
    parser.add_argument("--benchmark", default=None, help="a named split instead of --data (rendered on first use)")
    parser.add_argument("--db", type=Path, default=None, help="CAD database (default: the one the data names)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N views")
    parser.add_argument("--min-pixels", type=int, default=300, help="skip objects with fewer visible pixels (300)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])  # about canonical +y


def _segments(face_parts: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(F,) segment id per face: part index x 6 + signed dominant axis of the model-frame normal."""
    axis = np.argmax(np.abs(normals), axis=1)
    sign = normals[np.arange(len(normals)), axis] > 0
    return face_parts * 6 + axis * 2 + sign


def heading_costs(image: np.ndarray, depth: np.ndarray, mask: np.ndarray, K: np.ndarray, alignment,
                  vertices: np.ndarray, faces: np.ndarray, face_parts: np.ndarray) -> np.ndarray:
    """(HEADINGS,) cost of each candidate heading (see the module docstring); index 0 = true."""

    rows, cols = np.nonzero(mask)
    r0, r1 = max(rows.min() - 40, 0), min(rows.max() + 41, mask.shape[0])
    c0, c1 = max(cols.min() - 40, 0), min(cols.max() + 41, mask.shape[1])
    crop = (slice(r0, r1), slice(c0, c1))
    Kc = K.copy()
    Kc[0, 2] -= c0
    Kc[1, 2] -= r0
    img = image[crop].astype(np.float64)
    m = mask[crop]
    seg_of_face = _segments(face_parts, face_normals(vertices[faces]))
    costs = np.zeros(HEADINGS)
    for k in range(HEADINGS):
        rotation = alignment.rotation @ _yaw(k * 2 * np.pi / HEADINGS)
        cam = (vertices * alignment.scale) @ rotation.T + alignment.translation  # (V, 3)
        z, index = rasterize(cam[faces], Kc, m.shape, cull_back_faces=True)
        cover = index >= 0
        both = m & cover
        miss = m & ~cover
        seg = np.where(both, seg_of_face[np.maximum(index, 0)], -1)
        residual = 0.0
        values, inverse = np.unique(seg[both], return_inverse=True)
        pix = img[both]  # (P, 3)
        if len(pix):
            counts = np.bincount(inverse, minlength=len(values))[:, None]
            means = np.stack([np.bincount(inverse, weights=pix[:, c], minlength=len(values)) for c in range(3)], 1) / counts
            residual = float(((pix - means[inverse]) ** 2).sum())
        boundary = 0.0
        for a, b, sa, sb in ((img[:, 1:], img[:, :-1], seg[:, 1:], seg[:, :-1]), (img[1:], img[:-1], seg[1:], seg[:-1])):
            pairs = (sa >= 0) & (sb >= 0) & (sa != sb)
            step = ((a[pairs] - b[pairs]) ** 2).sum(axis=1)
            boundary += float(np.maximum(0.0, BOUNDARY_THRESHOLD - step).sum())
        considered = max(int(m.sum()), 1)
        costs[k] = (residual + MISS_PENALTY * float(miss.sum()) + boundary) / considered
    return costs


class _Models:
    """Meshes and face part labels of a CAD database (v2 sidecars, or one part per model for v1)."""

    def __init__(self, db_dir: Path) -> None:

        self.database = CadDatabase.load(db_dir)
        try:

            self.labels = PartLabels(db_dir).face_parts
        except Exception:  # a v1 database: no part labels
            self.labels = None
        self._cache: dict = {}

    def get(self, cad_id: str):
        if cad_id not in self._cache:
            mesh = self.database.mesh(cad_id)
            faces = np.asarray(mesh.faces, dtype=np.int64)
            parts = self.labels[cad_id] if self.labels is not None else np.zeros(len(faces), dtype=np.int64)
            self._cache[cad_id] = (np.asarray(mesh.vertices, dtype=np.float64), faces, parts)
        return self._cache[cad_id]


def _database_of(root: Path) -> Path:
    pool = json.loads((root / "scan2cad_cad_pool.json").read_text())
    if not pool.get("cad_database"):
        raise ValueError(f"{root}/scan2cad_cad_pool.json names no CAD database; pass --db")
    return (root / pool["cad_database"]).resolve()


def measure(dataset, models: _Models, *, limit: int | None = None, min_pixels: int = 300,
            progress: bool = True) -> dict:
    """{"per_class": {name: {"objects", "within_20deg"}}, "objects", "within_20deg", ...}."""


    hits: dict[str, list[bool]] = {}
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for i in tqdm(range(count), desc="observability", unit="view", disable=not progress):
        sample = dataset[i]
        for index, obj in enumerate(sample.objects):
            mask = sample.instance_map == index
            if obj.symmetry != "none" or mask.sum() < min_pixels or obj.cad_id not in models.database:
                continue
            vertices, faces, parts = models.get(obj.cad_id)
            costs = heading_costs(sample.image, sample.depth, mask, sample.K, obj.alignment, vertices, faces, parts)
            hits.setdefault(SCAN2CAD_CLASSES[obj.class_id], []).append(int(np.argmin(costs)) == 0)
    per_class = {name: {"objects": len(v), "within_20deg": 100.0 * float(np.mean(v))} for name, v in sorted(hits.items())}
    every = [h for v in hits.values() for h in v]
    total = 100.0 * float(np.mean(every)) if every else float("nan")
    class_mean = float(np.mean([c["within_20deg"] for c in per_class.values()])) if per_class else float("nan")
    return {"views": count, "objects": len(every), "within_20deg": total, "class_average": class_mean,
            "per_class": per_class}


def format_table(result: dict) -> str:
    lines = ["| class | asymmetric objects | heading picked within 20 deg |", "|---|---:|---:|"]
    for name, row in result["per_class"].items():
        lines.append(f"| {name} | {row['objects']} | {row['within_20deg']:.1f} % |")
    lines.append(f"| **all** (class average {result['class_average']:.1f} %) | {result['objects']} | "
                 f"**{result['within_20deg']:.1f} %** |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.json is not None and refuses_overwrite(args.json, args.overwrite, "observability"):
        return 2  # before the measurement, so no work is done for nothing
    try:
        if args.benchmark:
            root, split = ensure_benchmark(args.benchmark)
        elif args.data is not None:
            root, split = args.data, args.split
        else:
            print("observability: pass --data DIR or --benchmark NAME", file=sys.stderr)
            return 2
        dataset = SyntheticDataset(root, split)
        models = _Models(args.db or _database_of(Path(root)))
    except (OSError, ValueError) as exc:
        print(f"observability: {exc}", file=sys.stderr)
        return 2
    result = measure(dataset, models, limit=args.limit, min_pixels=args.min_pixels)
    result.update(data=str(root), split=split)
    print(format_table(result))
    if args.json is not None:
        write_json_report(args.json, result)
    return 0
