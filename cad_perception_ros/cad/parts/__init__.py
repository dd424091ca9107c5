"""Data v2 furniture: CAD models made of parts, each part with its own material slot.

Every builder takes ``(rng, style)`` and returns ``(PartList, symmetry)``: primitives in metres
in the builder frame (floor at y = 0, +y up, +z front, centred in x and z) with one material
slot per primitive (``common.SLOTS``), and the Scan2CAD symmetry label the parts really have
(a part or material that tells front from back makes the model "none"). ``STYLES[class]`` is
the number of styles of a class; the styles in ``UNSEEN_STYLES[class]`` are never used in
training (the ``synthetic-unseen-v2`` benchmark).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .common import SLOTS, PartList
from .other import bathtub, bin_, display, table
from .seating import bed, chair, sofa
from .storage import bookshelf, cabinet

Builder = Callable[[np.random.Generator, int], tuple[PartList, str]]

BUILDERS: dict[str, tuple[Builder, int]] = {  # class -> (builder, number of styles)
    "bathtub": (bathtub, 4), "bed": (bed, 5), "bin": (bin_, 5), "bookshelf": (bookshelf, 4),
    "cabinet": (cabinet, 6), "chair": (chair, 5), "display": (display, 5), "sofa": (sofa, 5),
    "table": (table, 5),
}
STYLES: dict[str, int] = {name: count for name, (_, count) in BUILDERS.items()}
# The last style of every class is held out (never in train/val/holdout scenes).
UNSEEN_STYLES: dict[str, frozenset[int]] = {name: frozenset({count - 1}) for name, count in STYLES.items()}

__all__ = ["BUILDERS", "SLOTS", "STYLES", "UNSEEN_STYLES", "PartList", "build_part_model"]


def build_part_model(class_name: str, style: int, rng: np.random.Generator) -> tuple[PartList, str]:
    """(parts with slots, symmetry) of one class and style. ValueError on an unknown class/style."""
    if class_name not in BUILDERS:
        raise ValueError(f"no v2 builder for class {class_name!r}; known: {sorted(BUILDERS)}")
    builder, count = BUILDERS[class_name]
    if not 0 <= style < count:
        raise ValueError(f"{class_name}: style must be in [0, {count}), got {style}")
    parts, symmetry = builder(rng, style)
    if len(parts.slots) != len(parts) or not parts:
        raise ValueError(f"{class_name} style {style}: builder returned {len(parts)} parts, {len(parts.slots)} slots")
    return parts, symmetry
