"""Procedural materials of data v2: wood, fabric, brushed metal, paint / plastic noise, glossy
screens and glass, ceramic, floor planks and tiles.

A ``Material`` is a base colour (RGB 0..1), a texture family and its parameters. Textures are
solid (functions of a 3D point in metres in the surface's own frame: the object frame for CAD
parts, the world frame for the room), so they stick to the object from every view. The colour
of a pixel is ``albedo(point) = color * texture_factor(point)``; the renderer adds the light.
Everything is drawn from the generator it is given, so a scene's materials are a pure function
of its seed.
"""
from __future__ import annotations

import colorsys
from typing import NamedTuple

import numpy as np

FAMILIES = ("plain", "wood", "fabric", "metal", "gloss", "planks", "tiles")
_F = {name: i for i, name in enumerate(FAMILIES)}


class Material(NamedTuple):
    """color (3,) RGB 0..1; family index into FAMILIES; amplitude of the texture; frequency
    (1/m); axis (3,) unit grain / plank direction; phase (3,) random offsets; specular weight
    (0..1) and shininess (Blinn-Phong exponent)."""

    color: np.ndarray
    family: int
    amplitude: float
    frequency: float
    axis: np.ndarray
    phase: np.ndarray
    specular: float
    shininess: float


def _hsv(h: float, s: float, v: float) -> np.ndarray:

    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))))


def _axis(rng: np.random.Generator) -> np.ndarray:
    axis = np.zeros(3)
    axis[int(rng.integers(3))] = 1.0
    return axis


def make(rng: np.random.Generator, family: str, color, amplitude: float, frequency: float,
         specular: float, shininess: float) -> Material:
    return Material(np.asarray(color, dtype=np.float64), _F[family], amplitude, frequency, _axis(rng),
                    rng.uniform(0, 2 * np.pi, size=3), specular, shininess)


def wood(rng: np.random.Generator, dark: bool | None = None) -> Material:
    dark = bool(rng.random() < 0.35) if dark is None else dark
    color = _hsv(rng.uniform(0.05, 0.11), rng.uniform(0.35, 0.7), rng.uniform(0.2, 0.4) if dark else rng.uniform(0.5, 0.85))
    return make(rng, "wood", color, rng.uniform(0.12, 0.3), rng.uniform(15, 40), rng.uniform(0.05, 0.25), 20.0)


def paint(rng: np.random.Generator, value: tuple[float, float] = (0.3, 0.95)) -> Material:
    color = _hsv(rng.random(), rng.uniform(0.0, 0.6), rng.uniform(*value))
    return make(rng, "plain", color, rng.uniform(0.02, 0.08), rng.uniform(2, 8), rng.uniform(0.1, 0.4), 30.0)


def fabric(rng: np.random.Generator, light: bool = False) -> Material:
    v = rng.uniform(0.7, 0.95) if light else rng.uniform(0.2, 0.85)
    color = _hsv(rng.random(), rng.uniform(0.0, 0.25) if light else rng.uniform(0.1, 0.7), v)
    return make(rng, "fabric", color, rng.uniform(0.06, 0.16), rng.uniform(60, 120), rng.uniform(0.0, 0.05), 8.0)


def metal(rng: np.random.Generator) -> Material:
    grey = rng.uniform(0.55, 0.9) if rng.random() < 0.7 else rng.uniform(0.08, 0.2)
    color = np.clip(np.full(3, grey) + rng.uniform(-0.04, 0.04, size=3), 0, 1)
    return make(rng, "metal", color, rng.uniform(0.04, 0.1), rng.uniform(150, 300), rng.uniform(0.5, 0.9), 60.0)


def gloss(rng: np.random.Generator, value: tuple[float, float]) -> Material:
    color = _hsv(rng.uniform(0.5, 0.7), rng.uniform(0.0, 0.3), rng.uniform(*value))
    return make(rng, "gloss", color, rng.uniform(0.02, 0.06), rng.uniform(1, 3), rng.uniform(0.5, 0.9), 80.0)


def _contrast(rng: np.random.Generator, base: Material, family) -> Material:
    """A material that differs from `base` in lightness by at least 0.2 (fronts, backs)."""
    for _ in range(10):
        m = family(rng)
        if abs(float(m.color.mean()) - float(base.color.mean())) >= 0.2:
            return m
    return m._replace(color=np.clip(base.color * (0.45 if base.color.mean() > 0.5 else 1.9), 0, 1))


def draw_part_materials(slots: list[str], rng: np.random.Generator) -> list[Material]:
    """One material per part of a model (parts of one slot share it; every book has its own)."""
    body = wood(rng) if rng.random() < 0.6 else paint(rng)
    by_slot: dict[str, Material] = {"body": body}

    def of(slot: str) -> Material:
        if slot in by_slot:
            return by_slot[slot]
        if slot == "front":
            m = _contrast(rng, body, wood if rng.random() < 0.5 else paint)
        elif slot == "back":
            m = _contrast(rng, body, lambda r: paint(r, (0.25, 0.9))._replace(family=_F["wood"], amplitude=0.08))
        elif slot == "top":
            m = wood(rng) if rng.random() < 0.7 else paint(rng)
        elif slot == "legs":
            m = metal(rng) if rng.random() < 0.4 else wood(rng)
        elif slot in ("handle", "metal"):
            m = metal(rng)
        elif slot == "fabric":
            m = fabric(rng)
        elif slot == "cushion":
            m = _contrast(rng, of("fabric"), fabric) if rng.random() < 0.6 else of("fabric")
        elif slot in ("pillow", "bedding"):
            m = fabric(rng, light=slot == "bedding" or rng.random() < 0.5)
        elif slot == "screen":
            m = gloss(rng, (0.02, 0.1))
        elif slot == "glass":
            m = gloss(rng, (0.1, 0.3))
        elif slot == "bezel":
            m = paint(rng, (0.05, 0.2)) if rng.random() < 0.7 else metal(rng)
        elif slot == "housing":
            m = paint(rng, (0.3, 0.9))
        elif slot == "ceramic":
            m = gloss(rng, (0.85, 0.98))._replace(color=_hsv(rng.uniform(0, 1), rng.uniform(0, 0.08), rng.uniform(0.85, 0.98)))
        else:  # book
            m = paint(rng, (0.15, 0.9))._replace(color=_hsv(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.2, 0.9)))
        by_slot[slot] = m
        return m

    return [paint(rng, (0.15, 0.9))._replace(color=_hsv(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.2, 0.9)))
            if slot == "book" else of(slot) for slot in slots]


def floor_material(rng: np.random.Generator) -> Material:
    kind = rng.random()
    if kind < 0.45:
        m = wood(rng)
        return m._replace(family=_F["planks"], frequency=float(rng.uniform(5, 8)))  # planks 12-20 cm wide
    if kind < 0.75:
        return make(rng, "tiles", _hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.4, 0.9)), 0.25,
                    float(rng.uniform(2, 4)), rng.uniform(0.1, 0.4), 40.0)
    return fabric(rng)._replace(frequency=float(rng.uniform(150, 250)))  # carpet


def wall_material(rng: np.random.Generator) -> Material:
    return paint(rng, (0.5, 0.95))


def _noise(points: np.ndarray, phase: np.ndarray, frequency: float) -> np.ndarray:
    """(P,) smooth noise in [-1, 1] of points (P, 3): three sines along fixed skew directions."""
    dirs = np.array([[0.8, 0.5, 0.33], [-0.3, 0.9, 0.3], [0.45, -0.35, 0.82]])
    return np.sin(2 * np.pi * frequency * points @ dirs.T + phase).mean(axis=1)


def texture_factor(materials: list[Material], material_index: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(P,) multiplicative texture of pixels with material_index (P,) at surface points (P, 3)."""
    out = np.ones(len(points))
    for k in np.unique(material_index):
        m = materials[int(k)]
        sel = material_index == k
        p = points[sel]
        along = p @ m.axis
        cross = p @ np.roll(m.axis, 1) + 0.5 * p @ np.roll(m.axis, 2)
        family = FAMILIES[m.family]
        if family == "wood":
            wobble = 0.15 * _noise(p, m.phase, 3.0) / m.frequency * 6
            value = 0.6 * np.sin(2 * np.pi * m.frequency * (cross + wobble)) + 0.4 * _noise(p, m.phase, 4 * m.frequency)
        elif family == "planks":
            plank = np.floor(cross * m.frequency)
            shade = np.sin(plank * 12.9898 + m.phase[0]) * 0.5
            seam = (cross * m.frequency) % 1.0 < 0.04
            grain = 0.3 * np.sin(2 * np.pi * 30 * (cross + 0.02 * np.sin(2 * np.pi * 2 * along)))
            value = shade + grain - 2.5 * seam
        elif family == "tiles":
            u, v = (p @ np.array([1.0, 0, 0])) * m.frequency, (p @ np.array([0, 1.0, 0])) * m.frequency
            grout = ((u % 1.0) < 0.04) | ((v % 1.0) < 0.04)
            value = 0.2 * _noise(p, m.phase, 3.0) - 2.0 * grout
        elif family == "fabric":
            weave = np.sin(2 * np.pi * m.frequency * along) * np.sin(2 * np.pi * m.frequency * cross)
            value = 0.4 * weave + 0.6 * _noise(p, m.phase, 6.0)
        elif family == "metal":
            value = 0.5 * np.sin(2 * np.pi * m.frequency * cross + m.phase[1]) + 0.5 * _noise(p, m.phase, 10.0)
        else:  # plain paint / plastic and gloss: low-frequency mottling
            value = _noise(p, m.phase, m.frequency)
        out[sel] = 1.0 + m.amplitude * value
    return np.clip(out, 0.2, 1.6)
