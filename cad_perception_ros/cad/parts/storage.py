"""v2 cabinets and bookshelves: doors and drawer fronts with handles, books against a back panel.

Builder frame: floor y = 0, +y up, +z front. The carcass spans z in [-d/2, d/2]; fronts stand
2 cm proud of it, handles 3 cm more; the top overhangs the front, never the back; a back panel
inset in a border covers the back. All models are asymmetric ("none").
"""
from __future__ import annotations

import numpy as np

from .common import PartList, uniform


def _front(p: PartList, x0: float, x1: float, y0: float, y1: float, z: float, handle: int,
           side: int, slot: str = "front") -> None:
    """One door / drawer front over [x0, x1] x [y0, y1] on the plane z; handle on `side`
    (-1 left edge, 1 right edge: vertical; 0 centred near the top: horizontal)."""
    gap = 0.005
    w, h = x1 - x0 - 2 * gap, y1 - y0 - 2 * gap
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    p.box((cx, cy, z + 0.01), (w, h, 0.02), slot)
    if side == 0:
        p.handle(cx, cy + 0.3 * h if h > 0.3 else cy, z + 0.02, handle, min(0.5 * w, 0.22), vertical=False)
    else:
        p.handle(cx + side * (w / 2 - 0.04), cy + (0.15 * h if h > 0.5 else 0.0), z + 0.02, handle,
                 min(0.5 * h, 0.2), vertical=True)


def _carcass(p: PartList, w: float, h: float, d: float, y0: float, legs: bool, rng) -> float:
    """Body, base (plinth or legs), top and back panel; returns the front plane z."""
    p.box((0, (y0 + h) / 2, 0), (w, h - y0, d), "body")
    if legs:
        p.four_legs(w / 2 - 0.02, d / 2 - 0.02, y0, uniform(rng, 0.03, 0.05), bool(rng.integers(2)))
    else:
        p.box((0, y0 / 2, -0.02), (w - 0.04, y0, d - 0.04), "legs")  # plinth set back from the front
    over = uniform(rng, 0.02, 0.04)
    p.box((0, h + 0.015, over / 2), (w + 0.02, 0.03, d + over), "top")  # flush at the back
    p.back_panel(w, y0, h, -d / 2)
    return d / 2


def cabinet(rng: np.random.Generator, style: int) -> tuple[PartList, str]:
    p = PartList()
    handle = int(rng.integers(3))
    if style == 3:  # sideboard: wide and low on legs
        w, h, d = uniform(rng, 1.3, 1.9), uniform(rng, 0.65, 0.85), uniform(rng, 0.4, 0.5)
    elif style == 5:  # held-out: tall slatted wardrobe
        w, h, d = uniform(rng, 0.8, 1.2), uniform(rng, 1.6, 2.0), uniform(rng, 0.5, 0.6)
    else:
        w, h, d = uniform(rng, 0.5, 1.2), uniform(rng, 0.6, 1.5), uniform(rng, 0.38, 0.55)
    y0 = uniform(rng, 0.08, 0.16)
    z = _carcass(p, w, h, d, y0, legs=style in (3, 4) or bool(rng.integers(2)) and style != 5, rng=rng)
    x0, x1 = -w / 2 + 0.01, w / 2 - 0.01
    ya, yb = y0 + 0.01, h - 0.01
    if style == 0:  # two doors
        _front(p, x0, 0, ya, yb, z, handle, 1)
        _front(p, 0, x1, ya, yb, z, handle, -1)
    elif style == 1:  # chest of drawers
        n = int(rng.integers(3, 6))
        for a, b in zip(np.linspace(ya, yb, n + 1)[:-1], np.linspace(ya, yb, n + 1)[1:]):
            _front(p, x0, x1, a, b, z, handle, 0)
    elif style == 2:  # doors below one or two drawers
        split = ya + (yb - ya) * uniform(rng, 0.65, 0.8)
        _front(p, x0, 0, ya, split, z, handle, 1)
        _front(p, 0, x1, ya, split, z, handle, -1)
        if rng.integers(2):
            _front(p, x0, 0, split, yb, z, handle, 0)
            _front(p, 0, x1, split, yb, z, handle, 0)
        else:
            _front(p, x0, x1, split, yb, z, handle, 0)
    elif style == 3:  # sideboard: drawers column in the middle, doors either side
        third = (x1 - x0) / 3
        _front(p, x0, x0 + third, ya, yb, z, handle, 1)
        n = int(rng.integers(2, 4))
        edges = np.linspace(ya, yb, n + 1)
        for a, b in zip(edges[:-1], edges[1:]):
            _front(p, x0 + third, x1 - third, a, b, z, handle, 0)
        _front(p, x1 - third, x1, ya, yb, z, handle, -1)
    elif style == 4:  # glass doors in frames above a drawer
        split = ya + (yb - ya) * uniform(rng, 0.2, 0.3)
        _front(p, x0, x1, ya, split, z, handle, 0)
        for a, b, side in ((x0, 0.0, 1), (0.0, x1, -1)):
            _front(p, a, b, split, yb, z, handle, side)
            p.box(((a + b) / 2, (split + yb) / 2, z + 0.021), (b - a - 0.08, yb - split - 0.08, 0.004), "glass")
    else:  # held-out: horizontal slats over the whole front, one long vertical pull per half
        n = int(rng.integers(10, 16))
        edges = np.linspace(ya, yb, n + 1)
        for a, b in zip(edges[:-1], edges[1:]):
            p.box((0, (a + b) / 2, z + 0.01), (x1 - x0, (b - a) * 0.8, 0.02), "front")
        for sx in (-1, 1):
            p.box((sx * 0.04, (ya + yb) / 2, z + 0.035), (0.025, 0.5 * (yb - ya), 0.03), "handle")
    return p, "none"


def _books(p: PartList, x0: float, x1: float, y: float, gap: float, depth: float, rng) -> None:
    """Books standing on the shelf top y between x0 and x1, spines near the front (z = depth/2)."""
    x = x0 + uniform(rng, 0.0, 0.1)
    while x < x1 - 0.03:
        if rng.random() < 0.15:  # an empty stretch
            x += uniform(rng, 0.06, 0.2)
            continue
        bw = uniform(rng, 0.025, 0.07)
        if x + bw > x1:
            break
        bh = gap * uniform(rng, 0.55, 0.9)
        bd = depth * uniform(rng, 0.6, 0.85)
        if rng.random() < 0.1:  # a lying stack
            sw = min(uniform(rng, 0.15, 0.28), x1 - x)
            sh = min(gap * 0.4, uniform(rng, 0.05, 0.15))
            p.box((x + sw / 2, y + sh / 2, depth / 2 - 0.02 - bd / 2), (sw, sh, bd), "book")
            x += sw + 0.01
            continue
        p.box((x + bw / 2, y + bh / 2, depth / 2 - 0.015 - bd / 2), (bw, bh, bd), "book")
        x += bw + 0.002


def bookshelf(rng: np.random.Generator, style: int) -> tuple[PartList, str]:
    p = PartList()
    w, d, t = uniform(rng, 0.6, 1.4), uniform(rng, 0.28, 0.4), uniform(rng, 0.02, 0.03)
    h = uniform(rng, 1.2, 2.1) if style != 3 else uniform(rng, 1.7, 2.1)
    y0 = uniform(rng, 0.06, 0.1)
    for sx in (-1, 1):
        p.box((sx * (w / 2 - t / 2), h / 2, 0), (t, h, d), "body")
    p.box((0, y0 / 2, -0.01), (w - 2 * t, y0, d - 0.02), "legs")
    p.box((0, h / 2, -d / 2 + 0.006), (w - 2 * t, h - 0.01, 0.012), "back")
    inner = d - 0.012
    if style == 1 or style == 3:  # doors (1) or drawers (3) below the shelves
        low = y0 + (h - y0) * (uniform(rng, 0.3, 0.4) if style == 1 else uniform(rng, 0.2, 0.28))
        p.box((0, (y0 + low) / 2, 0), (w - 2 * t, low - y0, d - 0.02), "body")
        if style == 1:
            _front(p, -w / 2 + t, 0, y0, low, d / 2, int(rng.integers(3)), 1)
            _front(p, 0, w / 2 - t, y0, low, d / 2, int(rng.integers(3)), -1)
        else:
            for a, b in ((y0, (y0 + low) / 2), ((y0 + low) / 2, low)):
                _front(p, -w / 2 + t, w / 2 - t, a, b, d / 2, int(rng.integers(3)), 0)
            p.box((0, h + 0.03, 0.015), (w + 0.05, 0.06, d + 0.03), "top")  # crown
    else:
        low = y0
    columns = int(rng.integers(2, 5)) if style == 2 else 1
    shelves = max(2, int(round((h - low) / uniform(rng, 0.3, 0.4))))
    levels = np.linspace(low + t / 2, h - t / 2, shelves + 1)
    for y in levels:
        p.box((0, y, 0.005), (w - 2 * t, t, d - 0.01), "body")
    xs = np.linspace(-w / 2 + t, w / 2 - t, columns + 1)
    for x in xs[1:-1]:
        p.box((x, (low + h) / 2, 0.005), (t, h - low, d - 0.01), "body")
    for a, b in zip(levels[:-1], levels[1:]):
        for c0, c1 in zip(xs[:-1], xs[1:]):
            if style == 2 and rng.random() < 0.35:  # a closed cube with a fabric box in it
                p.box(((c0 + c1) / 2, (a + b) / 2, 0.01), (c1 - c0 - 0.03, b - a - t - 0.02, inner - 0.04), "cushion")
                continue
            _books(p, c0 + t / 2, c1 - t / 2, a + t / 2, b - a - t, inner, rng)
    return p, "none"
