"""Seeded, deterministic k-means with k-means++ seeding (Arthur & Vassilvitskii, 2007), in numpy."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class KMeansResult(NamedTuple):
    """centres (k, D); labels (N,) cluster of each point; medoids (k,) index of the point nearest
    each centre among its members (distinct points); inertia: sum of squared distances."""

    centres: np.ndarray
    labels: np.ndarray
    medoids: np.ndarray
    inertia: float


def squared_distances(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (N, k) between rows of x (N, D) and c (k, D), float64."""
    d = (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :]
    return np.maximum(d, 0.0)


def kmeans_pp_init(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: indices (k,) of distinct points, each drawn with probability ~ D(x)^2."""
    n = x.shape[0]
    chosen = [int(rng.integers(n))]
    closest = squared_distances(x, x[chosen])[:, 0]  # (N,)
    for _ in range(1, k):
        weights = closest.copy()
        weights[chosen] = 0.0
        if weights.sum() <= 0.0:  # all remaining points duplicate a centre: pick uniformly
            free = np.setdiff1d(np.arange(n), chosen)
            nxt = int(free[rng.integers(free.size)])
        else:
            nxt = int(rng.choice(n, p=weights / weights.sum()))
        chosen.append(nxt)
        closest = np.minimum(closest, squared_distances(x, x[nxt:nxt + 1])[:, 0])
    return np.asarray(chosen, dtype=np.int64)


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iterations: int = 100) -> KMeansResult:
    """Cluster x (N, D) into min(k, N) clusters: k-means++ seeding, then Lloyd iterations.

    Deterministic for a given seed. An emptied cluster is re-seeded with the point farthest from
    its centre, so every cluster keeps at least one member and the medoids are distinct points.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"kmeans expects a non-empty (N, D) array, got shape {x.shape}")
    if k < 1:
        raise ValueError(f"kmeans needs k >= 1, got {k}")
    k = min(int(k), x.shape[0])
    rng = np.random.default_rng(seed)
    centres = x[kmeans_pp_init(x, k, rng)].copy()  # (k, D)
    labels = np.full(x.shape[0], -1, dtype=np.int64)
    for _ in range(iterations):
        dists = squared_distances(x, centres)  # (N, k)
        new_labels = dists.argmin(1)
        for c in range(k):  # re-seed an empty cluster with the farthest point of a shared cluster
            counts = np.bincount(new_labels, minlength=k)
            if counts[c] == 0:
                own = dists[np.arange(x.shape[0]), new_labels]  # (N,)
                own = np.where(counts[new_labels] > 1, own, -1.0)
                far = int(own.argmax())
                new_labels[far] = c
                dists[far] = 0.0
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        centres = np.stack([x[labels == c].mean(0) for c in range(k)])
    dists = squared_distances(x, centres)
    medoids = np.empty(k, dtype=np.int64)
    for c in range(k):
        members = np.flatnonzero(labels == c)
        medoids[c] = members[dists[members, c].argmin()]
    inertia = float(dists[np.arange(x.shape[0]), labels].sum())
    return KMeansResult(centres, labels, medoids, inertia)
