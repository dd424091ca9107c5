"""Pipeline stage names and latency percentiles: one definition for CadAligner.last_timings, the
node's statistics, the demo and soak reports and the latency benchmark.

Percentiles use numpy's default linear interpolation, over milliseconds.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# The stages CadAligner times (milliseconds, last_timings), in pipeline order; "total" is their sum.
STAGES: tuple[str, ...] = ("preprocess", "network", "procrustes", "retrieval", "postprocess", "rescore", "crop")
# "rescore": ROCA v2's crop classifier (runtime/rescoring.py), "crop": its zoom-in crop stage
# (runtime/crop_stage.py); 0 or absent without them.


def percentile(values: Iterable[float], q: float, *, empty: float | None = 0.0) -> float | None:
    """q-th percentile (0..100, linear interpolation) of the values; `empty` when there are none."""
    xs = np.asarray(list(values), dtype=np.float64)
    return float(np.percentile(xs, q)) if xs.size else empty


def percentiles(values: Iterable[float], qs: Iterable[float] = (50, 95, 99), *,
                with_max: bool = False) -> dict[str, float | None]:
    """{"p50": .., "p95": .., "p99": .. (, "max": ..)}; every value None when there are no values."""
    xs = np.asarray(list(values), dtype=np.float64)
    out = {f"p{q:g}": (float(np.percentile(xs, q)) if xs.size else None) for q in qs}
    if with_max:
        out["max"] = float(xs.max()) if xs.size else None
    return out
