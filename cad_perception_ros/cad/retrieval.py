"""Nearest-neighbour CAD retrieval over pre-computed embeddings (numpy, CPU).

Brute-force squared-L2 search with one matrix product per query batch: O(N D) per query,
linear in the database size, exact. Per-class search uses pre-sliced contiguous class blocks
(built once), so a query reads only the blocks of the classes it asks for.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


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


class ChamferIndex(NamedTuple):
    """CAD point samples for Chamfer retrieval: points (N, S, 3) canonical, class_ids (N,), cad_ids."""

    points: np.ndarray
    class_ids: np.ndarray
    cad_ids: list[str]

    def query_points(self, nocs: list[np.ndarray], class_ids: np.ndarray | None) -> RetrievalResult:
        """Per detection: NOCs (P_i, 3) -> nearest CAD by symmetric Chamfer distance."""
        cad = torch.as_tensor(np.asarray(self.points, dtype=np.float32))  # (N, S, 3)
        idx = np.full(len(nocs), -1, np.int64)
        dist = np.full(len(nocs), np.inf, np.float32)
        for i, q in enumerate(nocs):
            rows = np.arange(len(cad)) if class_ids is None else np.flatnonzero(self.class_ids == class_ids[i])
            if rows.size == 0 or len(q) == 0:
                continue
            d = chamfer_distances(torch.as_tensor(q, dtype=torch.float32), cad[rows])  # (n,)
            best = int(d.argmin())
            idx[i], dist[i] = rows[best], float(d[best])
        return RetrievalResult(idx, dist)



def chamfer_distances(query: torch.Tensor, cads: torch.Tensor) -> torch.Tensor:
    """query (P, 3), cads (N, S, 3) -> (N,) mean squared nearest distance, both directions."""
    d = torch.cdist(query[None].expand(len(cads), -1, -1), cads) ** 2  # (N, P, S)
    return d.min(2).values.mean(1) + d.min(1).values.mean(1)


def chamfer_index(database, class_names):
    """ChamferIndex over a CadDatabase's surface samples, class ids in the model's class order."""
    rows = [i for i, m in enumerate(database.models) if m.class_name in class_names]
    class_ids = np.array([class_names.index(database.models[i].class_name) for i in rows], dtype=np.int64)
    return ChamferIndex(database.points[rows], class_ids, [database.models[i].cad_id for i in rows])
