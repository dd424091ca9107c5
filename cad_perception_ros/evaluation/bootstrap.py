"""How sure is an alignment accuracy? A percentile bootstrap over the evaluated units.

The benchmark is small (465 objects in 200 images, 184 in 50 scenes), so a point or two between
two models can be noise. Resampling the units (images or scenes) with replacement and recomputing
the accuracy gives an interval that says how much.
"""
from __future__ import annotations

import numpy as np

DRAWS = 1000
LEVEL = 95.0


def bootstrap_alignment(unit_counts: np.ndarray, *, draws: int = DRAWS, level: float = LEVEL,
                        seed: int = 0) -> dict[str, tuple[float, float]]:
    """Central `level` % interval (percent) of the class- and instance-average alignment accuracy.

    unit_counts: (U, 2, C) ints, per evaluated unit and class: [ground-truth objects, correct
    alignments]. Each of `draws` resamples takes U units with replacement (multinomial counts,
    so memory is draws x U). A class average skips classes without ground truth in the resample,
    as EvaluationResults does. Deterministic for a seed.
    """
    counts = np.asarray(unit_counts)
    if counts.ndim != 3 or counts.shape[1] != 2 or len(counts) == 0:
        raise ValueError(f"unit_counts must have shape (U >= 1, 2, C), got {counts.shape}")
    if not 0 < level < 100 or draws < 1:
        raise ValueError(f"need 0 < level < 100 and draws >= 1, got level {level}, draws {draws}")
    units = len(counts)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(units, np.full(units, 1.0 / units), size=draws)  # (D, U)
    sums = (weights @ counts.reshape(units, -1).astype(np.float64)).reshape(draws, 2, -1)  # (D, 2, C)
    gt, aligned = sums[:, 0], sums[:, 1]  # (D, C)
    instance = 100.0 * aligned.sum(1) / np.maximum(gt.sum(1), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(gt > 0, 100.0 * aligned / gt, np.nan)
    present = (gt > 0).any(1)
    class_average = np.nanmean(per_class[present], axis=1) if present.any() else np.full(1, np.nan)
    tails = [(100 - level) / 2, 100 - (100 - level) / 2]
    return {"class_average": tuple(float(x) for x in np.percentile(class_average, tails)),
            "instance_average": tuple(float(x) for x in np.percentile(instance, tails))}
