"""Nearest-neighbour CAD retrieval over pre-computed embeddings (numpy, CPU).

Brute-force squared-L2 search with one matrix product per query batch: O(N D) per query,
linear in the database size, exact. Per-class search uses pre-sliced contiguous class blocks
(built once), so a query reads only the blocks of the classes it asks for.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class RetrievalResult(NamedTuple):
    """indices: (M,) int64 rows of the index (-1 where no candidate); distances: (M,) float32 L2."""

    indices: np.ndarray
    distances: np.ndarray


class EmbeddingIndex:
    """Exact L2 nearest neighbour over CAD embeddings, optionally restricted to a class.

    embeddings: (N, D) float; class_ids: (N,) int; cad_ids: N strings (row -> CAD id).
    """

    def __init__(self, embeddings: np.ndarray, class_ids: np.ndarray, cad_ids: list[str]):
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        class_ids = np.asarray(class_ids, dtype=np.int64)
        if embeddings.ndim != 2 or class_ids.shape != (embeddings.shape[0],) or len(cad_ids) != embeddings.shape[0]:
            raise ValueError(
                f"EmbeddingIndex: embeddings (N, D), class_ids (N,), cad_ids N; got {embeddings.shape}, "
                f"{class_ids.shape}, {len(cad_ids)}")
        if not np.isfinite(embeddings).all():
            raise ValueError("EmbeddingIndex: embeddings contain NaN or inf")
        self.embeddings = embeddings
        self.class_ids = class_ids
        self.cad_ids = list(cad_ids)
        self._sq_norms = (embeddings ** 2).sum(1)  # (N,)
        self._class_rows = {int(c): np.flatnonzero(class_ids == c) for c in np.unique(class_ids)}
        # Contiguous per-class copies so a per-class query reads only its block (no gather per query).
        self._blocks = {c: (np.ascontiguousarray(embeddings[rows]), self._sq_norms[rows])
                        for c, rows in self._class_rows.items()}

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def query(self, queries: np.ndarray, class_ids: np.ndarray | None = None) -> RetrievalResult:
        """Nearest row for each query (M, D); with class_ids (M,), only rows of that class."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.embeddings.shape[1]:
            raise ValueError(f"query: expected (M, {self.embeddings.shape[1]}), got {queries.shape}")
        m = queries.shape[0]
        indices = np.full(m, -1, dtype=np.int64)
        distances = np.full(m, np.inf, dtype=np.float32)
        if m == 0 or len(self) == 0:
            return RetrievalResult(indices, distances)
        if class_ids is None:
            groups = {None: np.arange(m)}
        else:
            class_ids = np.asarray(class_ids, dtype=np.int64)
            groups = {int(c): np.flatnonzero(class_ids == c) for c in np.unique(class_ids)}
        for cls, query_rows in groups.items():
            if cls is None:
                rows, db, sq = None, self.embeddings, self._sq_norms
            elif cls in self._blocks:
                rows, (db, sq) = self._class_rows[cls], self._blocks[cls]
            else:
                continue
            q = queries[query_rows]  # (m_c, D)
            # |db - q|^2 = |db|^2 - 2 db.q + |q|^2; the last term does not change the argmin.
            best = (sq[:, None] - 2.0 * (db @ q.T)).argmin(0)  # (m_c,) rows of db
            indices[query_rows] = best if rows is None else rows[best]
            distances[query_rows] = np.linalg.norm(db[best] - q, axis=1)  # exact, no cancellation
        return RetrievalResult(indices, distances)
