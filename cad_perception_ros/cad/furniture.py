"""Procedural furniture: one builder per Scan2CAD class, returning primitives in metres.

Builder frame (before canonicalisation): floor at y = 0, +y up, +z front, +x right, centred in x
and z. Each builder takes ``(rng, variant)``: the discrete style (arms or not, legs or pedestal, ...)
comes from the variant index in mixed radix (so consecutive variants cover the style combinations),
the continuous proportions from ``rng``. It returns ``(parts, symmetry)`` where symmetry is the
Scan2CAD label about +y that the geometry really has ("none", "2fold", "4fold", "inf").
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .primitives import Primitive, make_primitive

SYM_RANK = {"none": 0, "2fold": 1, "4fold": 2, "inf": 3}


def weakest(*labels: str) -> str:
    """Symmetry of a union: the weakest label (all groups here are rotations about the same +y axis)."""
    return min(labels, key=SYM_RANK.__getitem__)


def digits(variant: int, radices: tuple[int, ...]) -> list[int]:
    """Mixed-radix digits of `variant`, fastest-changing first (wraps around)."""
    out = []
    for r in radices:
        out.append(variant % r)
        variant //= r
    return out


class Parts(list):
    """A list of primitives with short constructors taking bbox centre and size (metres)."""

    def box(self, c, s) -> None:
        self.append(make_primitive("box", c, s))

    def prism(self, c, s, axis: int = 1) -> None:
        self.append(make_primitive("prism", c, s, axis))

    def tube(self, c, s, wall: float, axis: int = 1) -> None:
        self.append(make_primitive("tube", c, s, axis, wall))

    def post(self, x: float, z: float, y0: float, y1: float, w: float, round_: bool) -> None:
        """Vertical leg or column of width w from height y0 to y1 at (x, z)."""
        (self.prism if round_ else self.box)((x, 0.5 * (y0 + y1), z), (w, y1 - y0, w))


def chair(rng: np.random.Generator, variant: int) -> tuple[Parts, str]:
    base, arms, back = digits(variant, (4, 2, 3))  # legs/disk/cross/sled, arms, high/low/slatted
    p = Parts()
    w, d, h, t = rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.52), rng.uniform(0.42, 0.48), rng.uniform(0.03, 0.08)
    p.box((0, h - t / 2, 0), (w, t, d))
    lw, round_legs = rng.uniform(0.03, 0.05), bool(rng.integers(2))
    if base in (0, 3):
        for sx in (-1, 1):
            for sz in (-1, 1):
                p.post(sx * (w / 2 - lw / 2), sz * (d / 2 - lw / 2), 0.0, h - t, lw, round_legs and base == 0)
            if base == 3:  # sled runners along z
                p.box((sx * (w / 2 - lw / 2), 0.015, 0), (lw, 0.03, d + 0.08))
    else:
        p.post(0, 0, 0.03, h - t, rng.uniform(0.05, 0.09), True)
        r = rng.uniform(0.22, 0.3)
        if base == 1:
            p.prism((0, 0.015, 0), (2 * r, 0.03, 2 * r))
        else:
            p.box((0, 0.025, 0), (2 * r, 0.05, 0.06))
            p.box((0, 0.025, 0), (0.06, 0.05, 2 * r))
    bt = rng.uniform(0.03, 0.06)
    zb = -d / 2 + bt / 2
    if back == 2:  # two posts, a top rail and vertical slats
        bh = rng.uniform(0.4, 0.55)
        for sx in (-1, 1):
            p.box((sx * (w / 2 - 0.02), h + bh / 2, zb), (0.04, bh, bt))
        p.box((0, h + bh - 0.04, zb), (w, 0.08, bt))
        n = int(rng.integers(3, 6))
        for x in np.linspace(-w / 2 + 0.02, w / 2 - 0.02, n + 2)[1:-1]:
            p.box((x, h + bh / 2, zb), (0.025, bh, bt * 0.6))
    else:
        bh = rng.uniform(0.45, 0.62) if back == 0 else rng.uniform(0.2, 0.3)
        p.box((0, h + bh / 2, zb), (w, bh, bt))
    if arms:
        ah, aw = rng.uniform(0.18, 0.25), rng.uniform(0.04, 0.07)
        for sx in (-1, 1):
            x = sx * (w / 2 + aw / 2)
            p.box((x, h + ah, 0.05 * d), (aw, 0.03, 0.9 * d))
            p.box((x, h + ah / 2 - t / 2, 0.4 * d), (aw, ah + t, 0.04))
    return p, "none"


def table(rng: np.random.Generator, variant: int) -> tuple[Parts, str]:
    top, base, extra = digits(variant, (4, 4, 2))  # rect/square/round/oval; legs/disk/cross/panels; apron
    p = Parts()
    h, t = rng.choice([rng.uniform(0.4, 0.5), rng.uniform(0.7, 0.78)]), rng.uniform(0.025, 0.05)
    if top in (1, 2):
        w = d = rng.uniform(0.6, 1.1)
    else:
        w = rng.uniform(1.0, 1.8)
        d = w * rng.uniform(0.45, 0.7)
    square = top in (1, 2)
    (p.prism if top in (2, 3) else p.box)((0, h - t / 2, 0), (w, t, d))
    top_sym = {0: "2fold", 1: "4fold", 2: "inf", 3: "2fold"}[top]
    lw = rng.uniform(0.04, 0.07)
    inset = 0.35 if top in (2, 3) else 0.5
    if base == 0:
        for sx in (-1, 1):
            for sz in (-1, 1):
                p.post(sx * (inset * w - lw / 2 - 0.03), sz * (inset * d - lw / 2 - 0.03), 0, h - t, lw, bool(variant % 3 == 0))
        base_sym = "4fold" if square else "2fold"
    elif base == 1:
        xs = (0.0,) if square else (-w / 4, w / 4)
        r = rng.uniform(0.2, 0.3) * min(w, d) / 0.8
        cw = rng.uniform(0.06, 0.12)
        for x in xs:
            p.post(x, 0, 0.03, h - t, cw, True)
            p.prism((x, 0.015, 0), (min(r, 0.45 * d) * 2, 0.03, min(r, 0.45 * d) * 2))
        base_sym = "inf" if square else "2fold"
    elif base == 2:
        p.post(0, 0, 0.0, h - t, rng.uniform(0.06, 0.1), False)
        p.box((0, 0.03, 0), (0.75 * w, 0.06, 0.07))
        p.box((0, 0.03, 0), (0.07, 0.06, 0.75 * d))
        base_sym = "4fold" if square else "2fold"
    else:
        for sx in (-1, 1):
            p.box((sx * (0.4 * w - 0.02), (h - t) / 2, 0), (0.04, h - t, 0.7 * d))
        p.box((0, 0.2 * h, 0), (0.8 * w, 0.05, 0.05))
        base_sym = "2fold"
    if extra:
        if top in (2, 3):
            p.tube((0, h - t - 0.04, 0), (0.8 * w, 0.08, 0.8 * d), 0.025)
        else:
            p.box((0, h - t - 0.04, 0), (w - 0.1, 0.08, d - 0.1))
    return p, weakest(top_sym, base_sym)


def sofa(rng: np.random.Generator, variant: int) -> tuple[Parts, str]:
    arms, lshape, legs, back = digits(variant, (3, 2, 2, 2))  # both/none/left; L; legs/skirt; high/low
    p = Parts()
    w, d = rng.uniform(1.4, 2.4), rng.uniform(0.8, 1.0)
    leg_h = rng.uniform(0.06, 0.15) if legs == 0 else 0.0
    sh, ct = rng.uniform(0.4, 0.48), rng.uniform(0.1, 0.16)
    bh, bt = (rng.uniform(0.85, 1.0) if back == 0 else rng.uniform(0.65, 0.75)), rng.uniform(0.15, 0.25)
    aw, ah = rng.uniform(0.1, 0.25), rng.uniform(0.55, 0.7)
    ext = rng.uniform(0.5, 0.8) if lshape else 0.0
    cw = rng.uniform(0.6, 0.8)
    p.box((0, (leg_h + sh - ct) / 2, 0), (w, sh - ct - leg_h, d))
    p.box((0, (leg_h + bh) / 2, -d / 2 + bt / 2), (w, bh - leg_h, bt))
    left = -w / 2 + (aw if arms in (0, 2) else 0)
    right = w / 2 - (aw if arms == 0 else 0)
    if lshape:  # chaise on the right, reaching forward
        p.box((w / 2 - cw / 2, (leg_h + sh - ct) / 2, d / 2 + ext / 2), (cw, sh - ct - leg_h, ext))
    n = int(rng.integers(1, 4))
    edges = np.linspace(left, right, n + 1)
    for a, b in zip(edges[:-1], edges[1:]):
        p.box(((a + b) / 2, sh - ct / 2, bt / 2), (b - a - 0.015, ct, d - bt))
    if lshape:
        p.box((w / 2 - cw / 2 - (aw if arms == 0 else 0) / 2, sh - ct / 2, d / 2 + ext / 2 - 0.01),
              (cw - (aw if arms == 0 else 0) - 0.015, ct, ext - 0.02))
    for sx, on in ((-1, arms in (0, 2)), (1, arms == 0)):
        if on:
            depth = d + (ext if sx == 1 else 0)
            p.box((sx * (w / 2 - aw / 2), (leg_h + ah) / 2, -d / 2 + depth / 2), (aw, ah - leg_h, depth))
    if legs == 0:
        zf = d / 2 + ext - 0.04
        for x, z in ((-w / 2 + 0.04, -d / 2 + 0.04), (w / 2 - 0.04, -d / 2 + 0.04), (-w / 2 + 0.04, d / 2 - 0.04), (w / 2 - 0.04, zf)):
            p.post(x, z, 0, leg_h, 0.05, bool(variant % 5 < 2))
    return p, "none"


def bed(rng: np.random.Generator, variant: int) -> tuple[Parts, str]:
    head, foot, base, pillows = digits(variant, (3, 2, 2, 2))  # none/panel/posts; footboard; legs/box; pillows
    p = Parts()
    w = rng.choice([rng.uniform(0.9, 1.0), rng.uniform(1.4, 1.6), rng.uniform(1.8, 2.0)])
    length, fh, mt = rng.uniform(1.95, 2.2), rng.uniform(0.2, 0.4), rng.uniform(0.15, 0.28)
    y0 = rng.uniform(0.08, 0.15) if base == 0 else 0.0
    p.box((0, (y0 + fh) / 2, 0), (w, fh - y0, length))
    p.box((0, fh + mt / 2, 0.01), (w - 0.04, mt, length - 0.06))
    if base == 0:
        for sx in (-1, 1):
            for sz in (-1, 1):
                p.post(sx * (w / 2 - 0.04), sz * (length / 2 - 0.04), 0, y0, 0.06, False)
    if head:
        hh = rng.uniform(0.9, 1.3)
        p.box((0, hh / 2, -length / 2 - 0.03), (w + 0.04, hh, 0.06))
        if head == 2:
            for sx in (-1, 1):
                p.post(sx * (w / 2 + 0.02), -length / 2 - 0.03, 0, hh + 0.08, 0.08, bool(variant % 4 < 2))
    if foot:
        fb = fh + mt + rng.uniform(-0.1, 0.2)
        p.box((0, fb / 2, length / 2 + 0.02), (w + 0.04, fb, 0.04))
    if pillows:
        n = 1 if w < 1.2 else 2
        pw = (w - 0.1) / n - 0.05
        for x in (np.array([0.0]) if n == 1 else np.array([-1, 1]) * (pw / 2 + 0.025)):
            p.box((x, fh + mt + 0.06, -length / 2 + 0.3), (pw, 0.12, 0.4))
    return p, "none"


def bin_(rng: np.random.Generator, variant: int) -> tuple[Parts, str]:
    shape, lid, rim = digits(variant, (4, 3, 2))  # cylinder/square box/rect box/pedal; open/flat/knob; rim
    p = Parts()
    h, r = rng.uniform(0.3, 0.8), rng.uniform(0.1, 0.22)
    wall = rng.uniform(0.008, 0.02)
    round_ = shape in (0, 3)
    dx, dz = 2 * r, 2 * r * (rng.uniform(0.55, 0.75) if shape == 2 else 1.0)
    if round_:
        p.tube((0, h / 2, 0), (dx, h, dz), wall)
        p.prism((0, 0.01, 0), (dx, 0.02, dz))
    else:
        p.box((0, 0.01, 0), (dx, 0.02, dz))
        for sx in (-1, 1):
            p.box((sx * (dx / 2 - wall / 2), h / 2, 0), (wall, h, dz))
            p.box((0, h / 2, sx * (dz / 2 - wall / 2)), (dx, h, wall))
    if rim:
        if round_:
            p.tube((0, h - 0.02, 0), (dx + 0.03, 0.04, dz + 0.03), 0.03)
        else:
            for s in (-1, 1):
                p.box((s * dx / 2, h - 0.02, 0), (0.03, 0.04, dz + 0.03))
                p.box((0, h - 0.02, s * dz / 2), (dx + 0.03, 0.04, 0.03))
    if lid:
        (p.prism if round_ else p.box)((0, h + 0.015, 0), (dx + 0.01, 0.03, dz + 0.01))
        if lid == 2:
            p.post(0, 0, h + 0.03, h + 0.07, 0.04, True)
    sym = {0: "inf", 1: "4fold", 2: "2fold", 3: "none"}[shape]
    if shape == 3:  # pedal at the front
        p.box((0, 0.03, r + 0.05), (0.12, 0.03, 0.12))
        if lid:
            p.prism((0, h + 0.02, -r), (0.12, 0.04, 0.04), axis=0)
    return p, sym


def bookshelf(rng: np.random.Generator, variant: int) -> tuple[Parts, str]:
    shelves, backed, plinth, divider, crown = digits(variant, (5, 2, 2, 2, 2))
    shelves += 2
    p = Parts()
    w, h, d, t = rng.uniform(0.4, 1.6), rng.uniform(0.6, 2.1), rng.uniform(0.25, 0.4), rng.uniform(0.018, 0.03)
    h = max(h, 0.3 * (shelves + 1))
    for sx in (-1, 1):
        p.box((sx * (w / 2 - t / 2), h / 2, 0), (t, h, d))
    y0 = rng.uniform(0.06, 0.1) if plinth else 0.0
    if plinth:
        p.box((0, y0 / 2, -0.02), (w - 2 * t, y0, d - 0.04))
    for y in np.linspace(y0 + t / 2, h - t / 2, shelves + 2):
        p.box((0, y, 0), (w - 2 * t, t, d))
    if backed:
        p.box((0, h / 2, -d / 2 + 0.005), (w - 2 * t, h, 0.01))
    if divider and w > 0.8:
        p.box((0, h / 2, 0), (t, h - 2 * t, d))
    if crown:
        p.box((0, h + 0.02, 0.015), (w + 0.04, 0.04, d + 0.03))
    return p, "2fold" if not (backed or plinth or crown) else "none"


def cabinet(rng: np.random.Generator, variant: int) -> tuple[Parts, str]:
    layout, base, top = digits(variant, (6, 2, 2))
    p = Parts()
    w, h, d = rng.uniform(0.4, 1.6), rng.uniform(0.5, 1.9), rng.uniform(0.35, 0.6)
    y0 = rng.uniform(0.06, 0.15)
    p.box((0, (y0 + h) / 2, 0), (w, h - y0, d))
    if base == 0:
        p.box((0, y0 / 2, -0.03), (w - 0.06, y0, d - 0.06))
    else:
        for sx in (-1, 1):
            for sz in (-1, 1):
                p.post(sx * (w / 2 - 0.04), sz * (d / 2 - 0.04), 0, y0, 0.04, bool(variant % 2))
    if top:
        p.box((0, h + 0.015, 0.015), (w + 0.04, 0.03, d + 0.03))
    knob = bool(rng.integers(2))
    fz = d / 2 + 0.01
    # front panels as (x0, x1, y0, y1) fractions of the front, then handle side (-1 left, 0 centre, 1 right)
    n = int(rng.integers(2, 6))
    rows = [(0, 1, i / n, (i + 1) / n, 0) for i in range(n)]
    layouts = [
        [(0, 0.5, 0, 1, 1), (0.5, 1, 0, 1, -1)],
        [(0, 1, 0, 1, 1)],
        rows,
        [(0, 0.5, 0, 0.7, 1), (0.5, 1, 0, 0.7, -1), (0, 1, 0.7, 0.85, 0), (0, 1, 0.85, 1, 0)],
        [(0, 0.5, i / 4, (i + 1) / 4, 0) for i in range(4)] + [(0.5, 1, 0, 1, -1)],
        [(0, 1, 0, 0.5, 0), (0, 0.5, 0.5, 1, 1), (0.5, 1, 0.5, 1, -1)],
    ]
    fw, fh = w - 0.02, h - y0 - 0.02
    for x0, x1, a, b, side in layouts[layout]:
        cx = -fw / 2 + fw * (x0 + x1) / 2
        cy = y0 + 0.01 + fh * (a + b) / 2
        pw, ph = fw * (x1 - x0) - 0.008, fh * (b - a) - 0.008
        p.box((cx, cy, fz), (pw, ph, 0.02))
        hx = cx + side * (pw / 2 - 0.05)
        hy = cy if side == 0 else cy + min(0.25 * ph, 0.2)
        hs = (0.03, 0.03, 0.03) if knob else ((min(0.6 * pw, 0.15), 0.02, 0.025) if side == 0 else (0.02, min(0.5 * ph, 0.15), 0.025))
        p.box((hx, hy, fz + 0.02), hs)
    return p, "none"


def display(rng: np.random.Generator, variant: int) -> tuple[Parts, str]:
    aspect, mount, back = digits(variant, (4, 4, 2))  # aspect; neck+plate/neck+disk/feet/wall; back bulge
    ratio = (16 / 9, 16 / 10, 4 / 3, 21 / 9)[aspect]
    diag = rng.uniform(0.5, 1.4) if mount in (2, 3) else rng.uniform(0.45, 0.8)
    sh = diag / np.hypot(1, ratio)
    sw, st = sh * ratio, rng.uniform(0.015, 0.04)
    p = Parts()
    y0 = {0: rng.uniform(0.08, 0.2), 1: rng.uniform(0.08, 0.2), 2: rng.uniform(0.05, 0.1), 3: 0.0}[mount]
    yc = y0 + sh / 2
    p.box((0, yc, 0), (sw, sh, st))
    p.box((0, yc + 0.01 * sh, st / 2 + 0.002), (sw - 0.03, 0.95 * sh - 0.02, 0.004))  # glass
    if back:
        p.box((0, yc - 0.1 * sh, -st / 2 - 0.02), (0.6 * sw, 0.5 * sh, 0.04))
    zb = -st / 2 - (0.04 if back else 0) - 0.01
    if mount in (0, 1):
        p.box((0, (yc + 0.015) / 2, zb), (0.06, yc - 0.015, 0.02))
        bw = rng.uniform(0.18, 0.3)
        (p.box if mount == 0 else p.prism)((0, 0.0075, zb + 0.02), (bw, 0.015, 0.7 * bw if mount == 0 else bw))
    elif mount == 2:
        for sx in (-1, 1):
            p.box((sx * 0.35 * sw, y0 / 2 + 0.01, 0), (0.04, y0 + 0.02, 0.01))
            p.box((sx * 0.35 * sw, 0.01, 0.02), (0.06, 0.02, 0.2))
    else:
        p.box((0, yc, zb), (0.2, 0.2, 0.02))
    return p, "none"


def bathtub(rng: np.random.Generator, variant: int) -> tuple[Parts, str]:
    shape, install, faucet, rim = digits(variant, (2, 3, 2, 2))  # box/rounded; floor/feet/apron; faucet; rim
    p = Parts()
    length, width, h = rng.uniform(1.5, 1.9), rng.uniform(0.7, 0.85), rng.uniform(0.4, 0.55)
    wall = rng.uniform(0.05, 0.1)
    y0 = rng.uniform(0.1, 0.15) if install == 1 else 0.0
    yc = y0 + h / 2
    if shape == 0:
        p.box((0, y0 + 0.03, 0), (length, 0.06, width))
        for s in (-1, 1):
            p.box((s * (length / 2 - wall / 2), yc, 0), (wall, h, width))
            p.box((0, yc, s * (width / 2 - wall / 2)), (length, h, wall))
    else:
        p.tube((0, yc, 0), (length, h, width), wall)
        p.prism((0, y0 + 0.03, 0), (length - wall, 0.06, width - wall))
    if install == 1:
        for sx in (-1, 1):
            for sz in (-1, 1):
                p.post(sx * 0.38 * length, sz * 0.3 * width, 0, y0 + 0.03, 0.06, True)
    elif install == 2:
        (p.box if shape == 0 else p.prism)((0, 0.3 * h, 0), (length, 0.6 * h, width))
    if rim:
        top, size = (0, y0 + h, 0), (length + 0.06, 0.03, width + 0.06)
        if shape == 0:
            for s in (-1, 1):
                p.box((s * length / 2, y0 + h, 0), (wall + 0.06, 0.03, width + 0.06))
                p.box((0, y0 + h, s * width / 2), (length + 0.06, 0.03, wall + 0.06))
        else:
            p.tube(top, size, wall + 0.03)
    if faucet:
        x = length / 2 - wall / 2
        p.post(x, 0, y0 + h, y0 + h + 0.2, 0.06, True)
        p.box((x - 0.09, y0 + h + 0.17, 0), (0.18, 0.05, 0.05))
    return p, "none" if faucet else "2fold"


BUILDERS: dict[str, Callable[[np.random.Generator, int], tuple[Parts, str]]] = {
    "bathtub": bathtub, "bed": bed, "bin": bin_, "bookshelf": bookshelf, "cabinet": cabinet,
    "chair": chair, "display": display, "sofa": sofa, "table": table,
}


def build_parts(class_name: str, variant: int, rng: np.random.Generator) -> tuple[list[Primitive], str]:
    """(primitives in metres, symmetry label) for one class and variant. Raises ValueError on an unknown class."""
    if class_name not in BUILDERS:
        raise ValueError(f"no procedural builder for class {class_name!r}; known: {sorted(BUILDERS)}")
    parts, sym = BUILDERS[class_name](rng, variant)
    return list(parts), sym
