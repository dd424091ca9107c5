"""Training targets: a list of SceneSample -> one batch of tensors (``collate``).

Dense maps stay at the input resolution; per-object targets are padded to the largest
object count M of the batch with ``valid`` = 0. The detector's stride-4 heatmap uses an
elliptical Gaussian per object, sigma = gaussian_alpha * box side / 6 (TTFNet-style).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from cad_perception_ros.data.sample import SceneSample
from cad_perception_ros.data.transforms import resize_sample
from cad_perception_ros.model.detector import STRIDE  # noqa: F401 (re-exported)
from cad_perception_ros.model.roca.alignment_ops import SYMMETRY_FOLDS


class CadTable(NamedTuple):
    """The CAD database as arrays: cad_ids (N,), class_ids (N,) int, grids (N, G, G, G) bool."""

    cad_ids: list[str]
    class_ids: np.ndarray
    grids: np.ndarray

    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.cad_ids)}

    @classmethod
    def from_database(cls, database) -> "CadTable":
        """The arrays of a CadDatabase (cad/database.py)."""
        return cls([m.cad_id for m in database.models], np.array([m.class_id for m in database.models]),
                   np.asarray(database.grids))


def class_frequency_weights(class_ids: Sequence[int], num_classes: int) -> np.ndarray:
    """ROCA Sec. 3.5: weights inversely proportional to log class frequency, (C,) float32.

    Normalised so the instance-weighted mean is 1; unseen classes get the largest weight.
    """
    counts = np.bincount(np.asarray(class_ids, dtype=np.int64), minlength=num_classes).astype(np.float64)
    w = 1.0 / np.log(np.maximum(counts, 1.0) + 2.0)
    if counts.sum() > 0:
        w = w / ((w * counts).sum() / counts.sum())
    return w.astype(np.float32)


def draw_gaussian(heat: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> None:
    """Max-blend an elliptical Gaussian with its peak (= 1) at cell (round cx, round cy)."""
    h, w = heat.shape
    ix, iy = int(cx), int(cy)
    rx, ry = int(3 * sx) + 1, int(3 * sy) + 1
    x0, x1, y0, y1 = max(ix - rx, 0), min(ix + rx + 1, w), max(iy - ry, 0), min(iy + ry + 1, h)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    g = np.exp(-((xs - ix) ** 2) / (2 * sx ** 2) - ((ys - iy) ** 2) / (2 * sy ** 2))
    heat[y0:y1, x0:x1] = np.maximum(heat[y0:y1, x0:x1], g)


def _negative(pos: int, cad_classes: np.ndarray, rng: np.random.Generator) -> int:
    same = np.flatnonzero((cad_classes == cad_classes[pos]) & (np.arange(len(cad_classes)) != pos))
    if same.size == 0:
        same = np.flatnonzero(np.arange(len(cad_classes)) != pos)
    return int(rng.choice(same)) if same.size else pos


def collate(samples: Sequence[SceneSample], *, num_classes: int, input_size: tuple[int, int],
            cads: CadTable, class_weights: np.ndarray | None = None,
            gaussian_alpha: float = 0.54, rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
    """Batch samples (resized to input_size (H, W) when needed) into training tensors.

    cads: the CAD grids; each object gets its positive grid and a same-class negative
    (``grid_pos``, ``grid_neg`` (B, M, G, G, G)). Raises ValueError for an unknown cad_id.
    """
    rng = rng or np.random.default_rng(0)
    cad_index = cads.index()
    cad_classes = np.asarray(cads.class_ids)
    samples = [_resized(s, input_size) for s in samples]
    b, (height, width) = len(samples), input_size
    h, w = height // STRIDE, width // STRIDE
    objs = [[(k, o) for k, o in enumerate(s.objects) if _usable(o)] for s in samples]
    m = max(1, max(len(o) for o in objs))
    out = {
        "heatmap": np.zeros((b, num_classes, h, w), np.float32), "centre": np.zeros((b, m), np.int64),
        "size": np.zeros((b, m, 2), np.float32), "offset": np.zeros((b, m, 2), np.float32),
        "boxes": np.zeros((b, m, 4), np.float32), "valid": np.zeros((b, m), np.float32),
        "classes": np.zeros((b, m), np.int64), "rotation": np.tile(np.eye(3, dtype=np.float32), (b, m, 1, 1)),
        "translation": np.zeros((b, m, 3), np.float32), "scale": np.ones((b, m, 3), np.float32),
        "folds": np.ones((b, m), np.int64), "cad_pos": np.zeros((b, m), np.int64),
        "cad_neg": np.zeros((b, m), np.int64), "instance": np.full((b, m), -2, np.int64),
    }
    for i, objects in enumerate(objs):
        for j, (instance, obj) in enumerate(objects):
            if not 0 <= obj.class_id < num_classes:
                raise ValueError(f"object class_id {obj.class_id} is outside the model's {num_classes} classes "
                                 "(data set and model config disagree on class_names)")
            _object_targets(out, i, j, obj, instance, (h, w), gaussian_alpha,
                            cad_index, cad_classes, rng)
    cw = class_weights if class_weights is not None else np.ones(num_classes, np.float32)
    batch = {k: torch.from_numpy(v) for k, v in out.items()}
    batch["image"] = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).float() / 255
    batch["K"] = torch.from_numpy(np.stack([s.K for s in samples]).astype(np.float32))
    batch["depth"] = torch.from_numpy(np.stack([s.depth for s in samples]).astype(np.float32))[:, None]
    batch["instance_map"] = torch.from_numpy(np.stack([s.instance_map for s in samples]).astype(np.float32))[:, None]
    batch["noc"] = torch.from_numpy(np.stack([s.noc for s in samples]).astype(np.float32)).permute(0, 3, 1, 2)
    grids = torch.from_numpy(np.asarray(cads.grids, dtype=bool))
    batch["grid_pos"] = grids[batch["cad_pos"]].float()  # (B, M, G, G, G)
    batch["grid_neg"] = grids[batch["cad_neg"]].float()
    batch["class_weights"] = torch.as_tensor(cw, dtype=torch.float32)
    return batch


def _usable(obj) -> bool:
    x0, y0, x1, y1 = np.asarray(obj.box_xyxy, dtype=np.float64)
    return x1 - x0 >= 2 and y1 - y0 >= 2


def _object_targets(out, i, j, obj, instance, hw, alpha, cad_index, cad_classes, rng) -> None:
    box = np.asarray(obj.box_xyxy, dtype=np.float32)
    cx, cy = (box[0] + box[2]) / 2 / STRIDE, (box[1] + box[3]) / 2 / STRIDE
    cx, cy = min(max(cx, 0.0), hw[1] - 1e-3), min(max(cy, 0.0), hw[0] - 1e-3)
    bw, bh = (box[2] - box[0]) / STRIDE, (box[3] - box[1]) / STRIDE
    draw_gaussian(out["heatmap"][i, obj.class_id], cx, cy, max(alpha * bw / 6, 0.5), max(alpha * bh / 6, 0.5))
    out["centre"][i, j] = int(cy) * hw[1] + int(cx)
    out["size"][i, j] = (bw, bh)
    out["offset"][i, j] = (cx - int(cx), cy - int(cy))
    out["boxes"][i, j] = box
    out["valid"][i, j] = 1.0
    out["classes"][i, j] = obj.class_id
    out["rotation"][i, j] = obj.alignment.rotation
    out["translation"][i, j] = obj.alignment.translation
    out["scale"][i, j] = obj.alignment.scale
    out["folds"][i, j] = SYMMETRY_FOLDS.get(obj.symmetry, 1)
    out["instance"][i, j] = instance
    if obj.cad_id not in cad_index:
        raise ValueError(f"object cad_id {obj.cad_id!r} is not in the CAD database")
    pos = cad_index[obj.cad_id]
    out["cad_pos"][i, j] = pos
    out["cad_neg"][i, j] = _negative(pos, np.asarray(cad_classes), rng)


def _resized(sample: SceneSample, size: tuple[int, int]) -> SceneSample:
    if sample.size == tuple(size):
        return sample
    return resize_sample(sample, tuple(size))
