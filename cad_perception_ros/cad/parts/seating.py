"""v2 chairs, sofas and beds: frames, seat and back cushions, pillows, headboards, duvets.

Builder frame: floor y = 0, +y up, +z front (a chair's and a sofa's seat faces +z; a bed's
head end is at -z, its foot at +z). All models are asymmetric ("none").
"""
from __future__ import annotations

import numpy as np

from .common import PartList, uniform


def chair(rng: np.random.Generator, style: int) -> tuple[PartList, str]:
    p = PartList()
    w, d, h = uniform(rng, 0.42, 0.56), uniform(rng, 0.42, 0.54), uniform(rng, 0.42, 0.5)
    bt = uniform(rng, 0.03, 0.05)
    zb = -d / 2 + bt / 2
    if style in (0, 2):  # wooden chair, four legs; upholstered (0) or slatted (2) back
        t = uniform(rng, 0.03, 0.05)
        lw = uniform(rng, 0.03, 0.045)
        p.box((0, h - t / 2, 0), (w, t, d), "body")
        p.four_legs(w / 2, d / 2, h - t, lw, bool(rng.integers(2)))
        p.box((0, h + 0.025, 0.01), (w - 0.04, 0.05, d - 0.06), "cushion")
        bh = uniform(rng, 0.4, 0.55)
        for sx in (-1, 1):
            p.box((sx * (w / 2 - lw / 2), h + bh / 2, zb), (lw, bh, bt), "body")
        p.box((0, h + bh - 0.04, zb), (w, 0.08, bt), "body")
        if style == 0:
            p.box((0, h + 0.55 * bh, zb + bt / 2 + 0.02), (w - 2 * lw, 0.6 * bh, 0.04), "cushion")
        else:
            for x in np.linspace(-w / 2 + lw, w / 2 - lw, int(rng.integers(3, 6)) + 2)[1:-1]:
                p.box((x, h + bh / 2, zb), (0.03, bh - 0.08, bt * 0.7), "front")
            p.box((0, h + 0.12, zb), (w - 2 * lw, 0.05, bt), "body")
    elif style == 1:  # office chair: five-star base, column, seat, back, arms
        r = uniform(rng, 0.26, 0.32)
        p.box((0, 0.05, 0), (2 * r, 0.035, 0.045), "legs")  # a cross base (parts are axis-aligned)
        p.box((0, 0.05, 0), (0.045, 0.035, 2 * r), "legs")
        for x, z in ((r, 0), (-r, 0), (0, r), (0, -r)):
            p.prism((x, 0.025, z), (0.05, 0.05, 0.05), "handle")
        p.post(0, 0, 0.07, h - 0.08, 0.05, True, "metal")
        p.box((0, h - 0.04, 0.02), (w, 0.08, d), "cushion")
        bh = uniform(rng, 0.45, 0.65)
        p.box((0, h + 0.1 + bh / 2, zb - 0.03), (w * 0.95, bh, 0.07), "cushion")
        p.box((0, h + 0.05, zb - 0.05), (0.06, 0.2, 0.03), "metal")
        for sx in (-1, 1):
            p.box((sx * (w / 2 + 0.02), h + 0.2, 0.02), (0.05, 0.03, 0.28), "legs")
            p.box((sx * (w / 2 + 0.02), h + 0.1, -0.02), (0.03, 0.2, 0.03), "legs")
    elif style == 3:  # upholstered armchair
        w, d = uniform(rng, 0.7, 0.9), uniform(rng, 0.7, 0.85)
        leg = uniform(rng, 0.06, 0.14)
        aw, ah = uniform(rng, 0.1, 0.18), uniform(rng, 0.55, 0.68)
        p.four_legs(w / 2 - 0.02, d / 2 - 0.02, leg, 0.04, bool(rng.integers(2)))
        p.box((0, (leg + h - 0.1) / 2, 0), (w, h - 0.1 - leg, d), "fabric")
        bh = uniform(rng, 0.85, 1.0)
        p.box((0, (leg + bh) / 2, -d / 2 + 0.09), (w, bh - leg, 0.18), "fabric")
        for sx in (-1, 1):
            p.box((sx * (w / 2 - aw / 2), (leg + ah) / 2, 0), (aw, ah - leg, d), "fabric")
        p.box((0, h - 0.05, 0.08), (w - 2 * aw - 0.01, 0.12, d - 0.2), "cushion")
        p.box((0, h + 0.25, -d / 2 + 0.23), (w - 2 * aw - 0.02, 0.4, 0.1), "cushion")
    else:  # held-out: cantilever chair, a bent metal sled and a moulded seat shell
        tube = 0.025
        for sx in (-1, 1):
            x = sx * (w / 2 - 0.03)
            p.box((x, tube / 2, 0), (tube, tube, d), "metal")
            p.box((x, h / 2, d / 2 - 0.02), (tube, h, tube), "metal")
            p.box((x, h - 0.02, 0), (tube, tube, d), "metal")
            p.box((x, h + 0.22, -d / 2 + 0.02), (tube, 0.44, tube), "metal")
        p.box((0, h + 0.01, 0.0), (w, 0.03, d), "fabric")
        p.box((0, h + 0.25, -d / 2 + 0.04), (w, 0.36, 0.03), "fabric")
        p.box((0, h + 0.3, -d / 2 + 0.065), (w - 0.06, 0.22, 0.02), "cushion")
    return p, "none"


def sofa(rng: np.random.Generator, style: int) -> tuple[PartList, str]:
    p = PartList()
    w, d = uniform(rng, 1.4, 2.3), uniform(rng, 0.8, 1.0)
    if style == 3:
        w = uniform(rng, 1.2, 1.5)
    leg = 0.0 if style == 2 else uniform(rng, 0.06, 0.14)
    sh, ct = uniform(rng, 0.4, 0.47), uniform(rng, 0.1, 0.15)
    bh, bt = uniform(rng, 0.8, 0.95) if style != 2 else uniform(rng, 0.65, 0.72), uniform(rng, 0.16, 0.24)
    aw, ah = uniform(rng, 0.12, 0.22), uniform(rng, 0.55, 0.68)
    arms = style != 2 or bool(rng.integers(2))
    ext = uniform(rng, 0.55, 0.8) if style == 1 else 0.0
    p.box((0, (leg + sh - ct) / 2, 0), (w, sh - ct - leg, d), "fabric")
    p.box((0, (leg + bh) / 2, -d / 2 + bt / 2), (w, bh - leg, bt), "fabric")
    inner = w / 2 - (aw if arms else 0.0)
    if style == 1:  # chaise on the right, reaching forward
        cw = uniform(rng, 0.6, 0.8)
        p.box((w / 2 - cw / 2, (leg + sh - ct) / 2, d / 2 + ext / 2), (cw, sh - ct - leg, ext), "fabric")
    n = int(rng.integers(2, 4)) if style != 3 else 2
    edges = np.linspace(-inner, inner, n + 1)
    for a, b in zip(edges[:-1], edges[1:]):
        p.box(((a + b) / 2, sh - ct / 2, bt / 2), (b - a - 0.015, ct, d - bt), "cushion")
        p.box(((a + b) / 2, sh + (bh - sh) * 0.45, -d / 2 + bt + 0.06), (b - a - 0.02, (bh - sh) * 0.8, 0.12), "cushion")
    if style == 1:
        p.box((w / 2 - cw / 2 - (aw if arms else 0) / 2, sh - ct / 2, d / 2 + ext / 2 - 0.01),
              (cw - (aw if arms else 0) - 0.015, ct, ext - 0.02), "cushion")
    if arms:
        for sx in (-1, 1):
            depth = d + (ext if sx == 1 else 0)
            if style == 4:  # held-out: rolled arms (cylinders along z) on low arm blocks
                p.box((sx * (w / 2 - aw / 2), (leg + ah - 0.1) / 2, 0), (aw, ah - 0.1 - leg, d), "fabric")
                p.prism((sx * (w / 2 - aw / 2), ah - 0.1, 0), (aw + 0.06, 0.2, d), "fabric", axis=2)
            else:
                p.box((sx * (w / 2 - aw / 2), (leg + ah) / 2, -d / 2 + depth / 2), (aw, ah - leg, depth), "fabric")
    if style in (0, 3) or rng.random() < 0.4:  # throw pillows against the back cushions
        for sx in (-1, 1):
            p.box((sx * (inner - 0.25), sh + 0.2, -d / 2 + bt + 0.16), (0.4, 0.38, 0.12), "pillow")
    if style == 4:  # tufted back: a grid of buttons on the back cushions' faces
        for x in np.linspace(-inner + 0.1, inner - 0.1, 7):
            for y in (sh + 0.15, sh + 0.3):
                p.box((x, y, -d / 2 + bt + 0.125), (0.03, 0.03, 0.015), "handle")
    if leg > 0:
        zf = d / 2 + ext - 0.04
        round_ = bool(rng.integers(2))
        for x, z in ((-w / 2 + 0.05, -d / 2 + 0.05), (w / 2 - 0.05, -d / 2 + 0.05), (-w / 2 + 0.05, d / 2 - 0.05),
                     (w / 2 - 0.05, zf)):
            p.post(x, z, 0, leg, 0.05, round_)
    return p, "none"


def bed(rng: np.random.Generator, style: int) -> tuple[PartList, str]:
    p = PartList()
    w = float(rng.choice([uniform(rng, 0.9, 1.0), uniform(rng, 1.4, 1.6), uniform(rng, 1.8, 2.0)]))
    length = uniform(rng, 1.95, 2.2)
    fh = uniform(rng, 0.25, 0.4) if style != 3 else uniform(rng, 0.12, 0.2)
    mt = uniform(rng, 0.18, 0.28)
    y0 = uniform(rng, 0.08, 0.15) if style in (0, 2) else 0.0
    p.box((0, (y0 + fh) / 2, 0), (w, fh - y0, length), "body")
    if y0 > 0:
        p.four_legs(w / 2, length / 2, y0, 0.06, False)
    p.box((0, fh + mt / 2, 0.0), (w - 0.04, mt, length - 0.06), "bedding")
    # Duvet over the foot two thirds, draping a little over the sides and the foot end.
    cover = (length - 0.06) * uniform(rng, 0.6, 0.72)
    p.box((0, fh + mt + 0.02 - 0.08, (length - 0.06) / 2 - cover / 2 + 0.02), (w + 0.02, 0.2, cover + 0.04), "fabric")
    n = 1 if w < 1.2 else 2
    pw = (w - 0.1) / n - 0.05
    for x in ([0.0] if n == 1 else [-(pw / 2 + 0.025), pw / 2 + 0.025]):
        p.box((x, fh + mt + 0.07, -length / 2 + 0.28), (pw, 0.14, 0.42), "pillow")
    hh = uniform(rng, 0.9, 1.3) if style != 3 else uniform(rng, 0.7, 0.9)
    zh = -length / 2 - 0.04
    if style in (0, 3):  # wooden panel headboard
        p.box((0, hh / 2, zh), (w + 0.04, hh, 0.06), "body")
        p.box((0, fh + mt + 0.1 + (hh - fh - mt - 0.1) / 2, zh + 0.035), (w - 0.1, hh - fh - mt - 0.2, 0.01), "front")
    elif style == 1:  # upholstered headboard
        p.box((0, hh / 2, zh), (w + 0.1, hh, 0.1), "cushion")
    elif style == 2:  # posts at the head, a low footboard
        p.box((0, hh / 2, zh), (w + 0.04, hh, 0.05), "body")
        for sx in (-1, 1):
            p.post(sx * (w / 2 + 0.04), zh, 0, hh + 0.1, 0.08, bool(rng.integers(2)))
        p.box((0, (fh + 0.12) / 2, length / 2 + 0.02), (w + 0.04, fh + 0.12, 0.04), "body")
    else:  # held-out: wing-back headboard and a bench at the foot
        p.box((0, hh / 2, zh), (w + 0.1, hh, 0.1), "cushion")
        for sx in (-1, 1):
            p.box((sx * (w / 2 + 0.1), hh / 2, zh + 0.12), (0.1, hh, 0.3), "cushion")
        p.box((0, 0.22, length / 2 + 0.25), (min(w, 1.3), 0.08, 0.38), "cushion")
        for sx in (-1, 1):
            p.box((sx * (min(w, 1.3) / 2 - 0.03), 0.09, length / 2 + 0.25), (0.04, 0.18, 0.34), "legs")
    return p, "none"
