"""Shared part constructors for the v2 furniture builders (metres, builder frame: +y up, +z front).

A ``PartList`` is a list of primitives with a parallel list ``slots`` naming each primitive's
material slot. Slots are drawn into colours and textures per object at scene time
(``data/materials.py``), so a model's look varies while its parts stay.
"""
from __future__ import annotations

import numpy as np

from ..primitives import Primitive, make_primitive

# Material slots: what a part is made of. The renderer maps each to a material family.
SLOTS: tuple[str, ...] = (
    "body",     # main carcass / frame: wood or paint
    "front",    # doors and drawer fronts
    "handle",   # handles and knobs: metal or dark plastic
    "back",     # back panels: raw board, darker or lighter than the body
    "legs",     # legs, bases, feet: wood or metal
    "fabric",   # upholstery of a sofa / chair body
    "cushion",  # seat and back cushions
    "pillow",   # pillows (bed, sofa throw pillows)
    "bedding",  # mattress sheet and duvet
    "screen",   # display screens: dark glossy glass
    "bezel",    # display bezel
    "housing",  # display back housing
    "ceramic",  # bathtub shell
    "metal",    # faucets, chrome parts
    "book",     # books: each part its own colour
    "glass",    # glass doors / tops: dark, glossy
    "top",      # table tops, counter tops
)


class PartList(list):
    """Primitives plus ``slots`` (one material slot name per primitive)."""

    def __init__(self) -> None:
        super().__init__()
        self.slots: list[str] = []

    def add(self, kind: str, center, size, slot: str, axis: int = 1, wall: float = 0.0) -> None:
        if slot not in SLOTS:
            raise ValueError(f"unknown material slot {slot!r}; expected one of {SLOTS}")
        self.append(make_primitive(kind, center, size, axis, wall))
        self.slots.append(slot)

    def box(self, c, s, slot: str) -> None:
        self.add("box", c, s, slot)

    def prism(self, c, s, slot: str, axis: int = 1) -> None:
        self.add("prism", c, s, slot, axis)

    def tube(self, c, s, wall: float, slot: str, axis: int = 1) -> None:
        self.add("tube", c, s, slot, axis, wall)

    def post(self, x: float, z: float, y0: float, y1: float, w: float, round_: bool, slot: str = "legs") -> None:
        """Vertical leg or column of width w from height y0 to y1 at (x, z)."""
        (self.prism if round_ else self.box)((x, 0.5 * (y0 + y1), z), (w, y1 - y0, w), slot)

    def four_legs(self, half_x: float, half_z: float, y1: float, w: float, round_: bool) -> None:
        for sx in (-1, 1):
            for sz in (-1, 1):
                self.post(sx * (half_x - w / 2), sz * (half_z - w / 2), 0.0, y1, w, round_)

    def handle(self, x: float, y: float, z: float, kind: int, length: float, vertical: bool) -> None:
        """A handle standing out of a front face at z (front plane): 0 bar, 1 knob, 2 long pull."""
        if kind == 1:
            self.prism((x, y, z + 0.015), (0.035, 0.035, 0.03), "handle", axis=2)
            return
        length = length * (1.6 if kind == 2 else 1.0)
        size = (0.022, length, 0.03) if vertical else (length, 0.022, 0.03)
        self.box((x, y, z + 0.015), size, "handle")

    def back_panel(self, w: float, y0: float, y1: float, z: float, border: float = 0.03) -> None:
        """A board on the back face (z = back plane), inset by `border`, 1 cm thick, standing out
        behind it: seen from behind it reads as a framed panel, never as a door front."""
        self.box((0, 0.5 * (y0 + y1), z - 0.005), (w - 2 * border, y1 - y0 - 2 * border, 0.01), "back")


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def as_primitives(parts: PartList) -> list[Primitive]:
    return list(parts)
