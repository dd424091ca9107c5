"""How sure is an alignment accuracy? A percentile bootstrap over the evaluated units.

The benchmark is small (465 objects in 200 images, 184 in 50 scenes), so a point or two between
two models can be noise. Resampling the units (images or scenes) with replacement and recomputing
the accuracy gives an interval that says how much. Two models evaluated on the same units are
compared by resampling the units once for both (a paired bootstrap): the interval of their
difference is much narrower than the two intervals side by side suggest, because the hard images
are hard for both.
"""
from __future__ import annotations

import numpy as np

DRAWS = 1000
LEVEL = 95.0


def _check(counts: np.ndarray, level: float, draws: int) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[1] != 2 or len(counts) == 0:
        raise ValueError(f"unit_counts must have shape (U >= 1, 2, C), got {counts.shape}")
    if not 0 < level < 100 or draws < 1:
        raise ValueError(f"need 0 < level < 100 and draws >= 1, got level {level}, draws {draws}")
    return counts


def _resampled_averages(weights: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """weights (D, U) resampling counts; counts (U, 2, C) -> (class average, instance average),
    each (D,) in percent. A class average skips classes without ground truth in the resample, as
    EvaluationResults does (NaN when no class has any)."""
    draws, units = weights.shape
    sums = (weights @ counts.reshape(units, -1).astype(np.float64)).reshape(draws, 2, -1)  # (D, 2, C)
    gt, aligned = sums[:, 0], sums[:, 1]  # (D, C)
    instance = 100.0 * aligned.sum(1) / np.maximum(gt.sum(1), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(gt > 0, 100.0 * aligned / gt, np.nan)
    present = (gt > 0).any(1)
    class_average = np.full(draws, np.nan)
    class_average[present] = np.nanmean(per_class[present], axis=1)
    return class_average, instance


def _weights(units: int, draws: int, seed: int) -> np.ndarray:
    """(draws, units) multinomial counts: each draw takes `units` units with replacement."""
    return np.random.default_rng(seed).multinomial(units, np.full(units, 1.0 / units), size=draws)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tails = [(100 - level) / 2, 100 - (100 - level) / 2]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(values, tails)
    return float(low), float(high)


def bootstrap_alignment(unit_counts: np.ndarray, *, draws: int = DRAWS, level: float = LEVEL,
                        seed: int = 0) -> dict[str, tuple[float, float]]:
    """Central `level` % interval (percent) of the class- and instance-average alignment accuracy.

    unit_counts: (U, 2, C) ints, per evaluated unit and class: [ground-truth objects, correct
    alignments]. Each of `draws` resamples takes U units with replacement (multinomial counts,
    so memory is draws x U). Deterministic for a seed.
    """
    counts = _check(unit_counts, level, draws)
    class_average, instance = _resampled_averages(_weights(len(counts), draws, seed), counts)
    return {"class_average": _interval(class_average, level), "instance_average": _interval(instance, level)}


def bootstrap_difference(unit_counts_a: np.ndarray, unit_counts_b: np.ndarray, *, draws: int = DRAWS,
                         level: float = LEVEL, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Paired bootstrap of model A minus model B, evaluated on the same units in the same order.

    unit_counts_a / _b: (U, 2, C) as for bootstrap_alignment; their ground-truth counts must
    agree (same units). Returns the central `level` % interval (percentage points) of the
    difference of the class and of the instance averages; an interval above 0 says A is ahead
    beyond the resampling noise of this benchmark.
    """
    a, b = _check(unit_counts_a, level, draws), _check(unit_counts_b, level, draws)
    if a.shape != b.shape or not np.array_equal(a[:, 0], b[:, 0]):
        raise ValueError(f"paired bootstrap needs the same units: shapes {a.shape} and {b.shape}, "
                         "or their ground-truth counts differ")
    weights = _weights(len(a), draws, seed)
    class_a, instance_a = _resampled_averages(weights, a)
    class_b, instance_b = _resampled_averages(weights, b)
    return {"class_average": _interval(class_a - class_b, level),
            "instance_average": _interval(instance_a - instance_b, level)}


def format_difference(difference: float, interval: tuple[float, float]) -> str:
    """'+1.9 (+0.0 to +3.8)': a difference in points with its interval, signs always shown."""
    low, high = interval
    return f"{difference:+.1f} ({low:+.1f} to {high:+.1f})"
