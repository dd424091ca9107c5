"""v2 tables, displays, bathtubs and bins.

Builder frame: floor y = 0, +y up, +z front. Symmetry labels follow the parts: a plain dining
table is "2fold", a round pedestal table "inf", a desk with a drawer pedestal "none"; a round
open bin "inf", a square one "4fold"; displays and bathtubs (screen vs back, faucet at one end)
are always "none".
"""
from __future__ import annotations

import numpy as np

from .common import PartList, uniform


def table(rng: np.random.Generator, style: int) -> tuple[PartList, str]:
    p = PartList()
    t = uniform(rng, 0.025, 0.045)
    if style == 1:  # round pedestal table
        r = uniform(rng, 0.35, 0.55)
        h = uniform(rng, 0.7, 0.76)
        p.prism((0, h - t / 2, 0), (2 * r, t, 2 * r), "top")
        p.post(0, 0, 0.03, h - t, uniform(rng, 0.06, 0.1), True)
        p.prism((0, 0.015, 0), (1.2 * r, 0.03, 1.2 * r), "legs")
        return p, "inf"
    if style == 3:  # coffee table with a lower shelf
        w, d, h = uniform(rng, 0.9, 1.3), uniform(rng, 0.5, 0.7), uniform(rng, 0.38, 0.48)
    else:
        w, d, h = uniform(rng, 1.1, 1.8), uniform(rng, 0.65, 0.9), uniform(rng, 0.72, 0.77)
    lw = uniform(rng, 0.04, 0.065)
    p.box((0, h - t / 2, 0), (w, t, d), "top")
    round_legs = bool(rng.integers(2))
    if style in (0, 3):
        p.four_legs(w / 2 - 0.03, d / 2 - 0.03, h - t, lw, round_legs)
        if style == 0:
            p.box((0, h - t - 0.04, 0), (w - 0.1, 0.08, d - 0.1), "body")  # apron
        else:
            p.box((0, 0.12, 0), (w - 0.08, 0.025, d - 0.08), "body")  # shelf
        return p, "2fold"
    # Desks: a drawer pedestal on the right, a modesty panel at the back, legs on the left.
    pw = uniform(rng, 0.38, 0.45)
    x0 = w / 2 - 0.02 - pw
    p.box((x0 + pw / 2, (h - t) / 2, 0), (pw, h - t, d - 0.04), "body")
    n = int(rng.integers(2, 4))
    edges = np.linspace(0.02, h - t - 0.02, n + 1)
    handle = int(rng.integers(3))
    for a, b in zip(edges[:-1], edges[1:]):
        p.box((x0 + pw / 2, (a + b) / 2, d / 2 - 0.01), (pw - 0.02, b - a - 0.01, 0.02), "front")
        p.handle(x0 + pw / 2, (a + b) / 2 + 0.25 * (b - a), d / 2, handle, 0.12, vertical=False)
    for sz in (-1, 1):
        p.post(-w / 2 + 0.03 + lw / 2, sz * (d / 2 - 0.03 - lw / 2), 0, h - t, lw, round_legs)
    p.box(((x0 - w / 2) / 2, h - t - 0.2, -d / 2 + 0.05), (x0 + w / 2, 0.36, 0.02), "body")
    if style == 4:  # held-out: a shelf hutch along the back of the top, a centre drawer at the front
        hh = uniform(rng, 0.25, 0.4)
        p.box((0, h + hh, -d / 2 + 0.14), (w, 0.025, 0.26), "top")
        for sx in (-1, 1):
            p.box((sx * (w / 2 - 0.01), h + hh / 2, -d / 2 + 0.14), (0.02, hh, 0.26), "body")
        p.box((0, h + hh / 2, -d / 2 + 0.012), (w - 0.04, hh, 0.012), "back")
        p.box(((x0 - w / 2) / 2 + 0.05, h - t - 0.05, d / 2 - 0.04), (0.5 * (x0 + w / 2), 0.08, 0.02), "front")
    return p, "none"


def display(rng: np.random.Generator, style: int) -> tuple[PartList, str]:
    ratio = float(rng.choice([16 / 9, 16 / 10, 21 / 9])) if style != 3 else 16 / 9
    big = style in (1, 4)
    diag = uniform(rng, 0.8, 1.4) if big else uniform(rng, 0.5, 0.8)
    sh = diag / np.hypot(1, ratio)
    sw = sh * ratio
    bezel = uniform(rng, 0.01, 0.03)
    depth = uniform(rng, 0.02, 0.04)
    p = PartList()
    chin = uniform(rng, 0.05, 0.09) if style == 3 else 0.0
    y0 = {0: uniform(rng, 0.1, 0.2), 1: uniform(rng, 0.06, 0.1), 2: uniform(rng, 0.1, 0.2), 3: 0.08,
          4: uniform(rng, 0.15, 0.22)}[style]
    yc = y0 + chin + sh / 2
    p.box((0, yc - chin / 2, 0), (sw + 2 * bezel, sh + 2 * bezel + chin, depth), "bezel")
    p.box((0, yc, depth / 2 + 0.002), (sw, sh, 0.004), "screen")
    if chin:
        p.box((0, y0 + chin / 2, depth / 2 + 0.002), (sw, chin - 0.01, 0.004), "housing")
    bulge = uniform(rng, 0.03, 0.08) if style in (2, 3) or rng.random() < 0.5 else 0.015
    p.box((0, yc - 0.1 * sh, -depth / 2 - bulge / 2), (0.7 * sw, 0.6 * sh, bulge), "housing")
    zb = -depth / 2 - bulge / 2
    if style in (0, 2, 3):  # neck and base plate (0, 3) or disk (2)
        p.box((0, (y0 + yc) / 2, zb - 0.02), (0.06, yc - y0 + 0.02, 0.03), "legs")
        bw = uniform(rng, 0.18, 0.28)
        p.box((0, y0 / 2, zb - 0.02), (0.06, y0, 0.03), "legs")
        if style == 2:
            p.prism((0, 0.0075, zb), (bw, 0.015, bw), "legs")
        else:
            p.box((0, 0.0075, zb + 0.03), (bw, 0.015, 0.7 * bw), "legs")
    elif style == 1:  # TV on two feet
        for sx in (-1, 1):
            p.box((sx * 0.38 * sw, y0 / 2 + 0.01, 0), (0.04, y0 + 0.02, 0.012), "legs")
            p.box((sx * 0.38 * sw, 0.01, 0.02), (0.07, 0.02, 0.22), "legs")
    else:  # held-out: TV on a centre pedestal with a sound bar in front of it
        p.box((0, y0 / 2, zb), (0.12, y0, 0.05), "legs")
        p.box((0, 0.01, zb + 0.04), (0.4, 0.02, 0.25), "legs")
        p.box((0, 0.05, 0.14), (0.8 * sw, 0.07, 0.09), "housing")
        p.box((0, 0.05, 0.186), (0.78 * sw, 0.05, 0.004), "fabric")  # its grille
    return p, "none"


def bathtub(rng: np.random.Generator, style: int) -> tuple[PartList, str]:
    p = PartList()
    length, width, h = uniform(rng, 1.5, 1.85), uniform(rng, 0.7, 0.85), uniform(rng, 0.45, 0.58)
    wall = uniform(rng, 0.06, 0.1)
    y0 = uniform(rng, 0.1, 0.16) if style == 1 else 0.0
    yc = y0 + h / 2
    if style == 1:  # freestanding oval tub on feet, a floor-standing faucet at the +x end
        p.tube((0, yc, 0), (length, h, width), wall, "ceramic")
        p.prism((0, y0 + 0.04, 0), (length - wall, 0.08, width - wall), "ceramic")
        p.tube((0, y0 + h - 0.015, 0), (length + 0.03, 0.03, width + 0.03), 0.04, "metal")
        for sx in (-1, 1):
            for sz in (-1, 1):
                p.post(sx * 0.36 * length, sz * 0.28 * width, 0, y0 + 0.04, 0.06, True, "metal")
        x = length / 2 + 0.1
        p.post(x, 0, 0, y0 + h + 0.25, 0.05, True, "metal")
        p.box((x - 0.09, y0 + h + 0.22, 0), (0.18, 0.04, 0.04), "metal")
        return p, "none"
    p.box((0, 0.04, 0), (length, 0.08, width), "ceramic")
    for s in (-1, 1):
        p.box((s * (length / 2 - wall / 2), yc, 0), (wall, h, width), "ceramic")
        p.box((0, yc, s * (width / 2 - wall / 2)), (length, h, wall), "ceramic")
    rim = 0.08 if style == 2 else 0.03
    for s in (-1, 1):
        p.box((s * (length / 2 - wall / 2), h + 0.015, 0), (wall + rim, 0.03, width + rim), "top")
        p.box((0, h + 0.015, s * (width / 2 - wall / 2)), (length + rim, 0.03, wall + rim), "top")
    if style in (0, 3):  # an apron panel on the front side
        p.box((0, h / 2, width / 2 + 0.01), (length, h - 0.02, 0.02), "front")
    # Faucet and overflow at the +x end, towards the back wall.
    x, zf = length / 2 - wall / 2, -width / 4
    p.post(x, zf, h + 0.03, h + 0.2, 0.05, True, "metal")
    p.box((x - 0.08, h + 0.18, zf), (0.16, 0.04, 0.04), "metal")
    for dz in (-0.08, 0.08):
        p.prism((x, h + 0.06, zf + dz + 0.12), (0.05, 0.06, 0.05), "handle")
    p.prism((length / 2 - wall - 0.005, h - 0.1, 0), (0.01, 0.07, 0.07), "metal", axis=0)
    if style == 3:  # held-out: a head pillow at the -x end and a wide shelf along the back
        p.box((-length / 2 + wall + 0.08, h - 0.05, 0), (0.12, 0.2, 0.35), "pillow")
        p.box((0, h + 0.045, -width / 2 - 0.1), (length, 0.03, 0.22), "top")
        p.box((0, h / 2, -width / 2 - 0.1), (length, h, 0.2), "body")
    return p, "none"


def bin_(rng: np.random.Generator, style: int) -> tuple[PartList, str]:
    p = PartList()
    h, r = uniform(rng, 0.35, 0.75), uniform(rng, 0.12, 0.22)
    wall = uniform(rng, 0.008, 0.02)
    if style == 0:  # round open bin with a rim
        p.tube((0, h / 2, 0), (2 * r, h, 2 * r), wall, "body")
        p.prism((0, 0.01, 0), (2 * r, 0.02, 2 * r), "body")
        p.tube((0, h - 0.015, 0), (2 * r + 0.02, 0.03, 2 * r + 0.02), 0.02, "top")
        return p, "inf"
    if style == 1:  # square open bin with a rim
        p.box((0, 0.01, 0), (2 * r, 0.02, 2 * r), "body")
        for s in (-1, 1):
            p.box((s * (r - wall / 2), h / 2, 0), (wall, h, 2 * r), "body")
            p.box((0, h / 2, s * (r - wall / 2)), (2 * r, h, wall), "body")
            p.box((s * r, h - 0.015, 0), (0.025, 0.03, 2 * r + 0.025), "top")
            p.box((0, h - 0.015, s * r), (2 * r + 0.025, 0.03, 0.025), "top")
        return p, "4fold"
    round_ = style == 2
    dz = 2 * r * (1.0 if round_ else uniform(rng, 0.6, 0.8))
    (p.prism if round_ else p.box)((0, h / 2, 0), (2 * r, h, dz), "body")
    if style == 2:  # pedal bin: pedal at the front, lid hinge at the back
        (p.prism)((0, h + 0.015, 0), (2 * r + 0.01, 0.03, dz + 0.01), "top")
        p.box((0, 0.04, r + 0.04), (0.14, 0.03, 0.1), "handle")
        p.prism((0, h + 0.01, -r - 0.015), (0.14, 0.04, 0.04), "metal", axis=0)
    elif style == 3:  # rectangular bin: a lid with a front grip, a label panel on the front
        p.box((0, h + 0.015, 0), (2 * r + 0.01, 0.03, dz + 0.01), "top")
        p.box((0, h + 0.01, dz / 2 + 0.02), (0.12, 0.03, 0.04), "handle")
        p.box((0, 0.6 * h, dz / 2 + 0.003), (1.2 * r, 0.25 * h, 0.006), "front")
    else:  # held-out: swing-top bin, a dome whose front half is a flap in another colour
        p.box((0, h + 0.04, -dz / 4), (2 * r + 0.01, 0.08, dz / 2), "top")
        p.box((0, h + 0.04, dz / 4), (2 * r - 0.01, 0.07, dz / 2 - 0.01), "front")
    return p, "none"
