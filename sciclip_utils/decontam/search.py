"""Exact nearest-neighbour search by inner product (unit rows: cosine similarity)."""

from __future__ import annotations

import numpy as np


def nearest(
    queries: np.ndarray, reference: np.ndarray, *, use_faiss: bool = False, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum inner product and its row in ``reference`` for every query row (exact; FAISS IndexFlatIP
    or batched matrix products)."""
    if len(reference) == 0:
        return np.full(len(queries), -np.inf, dtype=np.float32), np.full(len(queries), -1, dtype=np.int64)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if use_faiss:
        import faiss

        index = faiss.IndexFlatIP(reference.shape[1])
        index.add(np.ascontiguousarray(reference, dtype=np.float32))
        scores, rows = index.search(queries, 1)
        return scores[:, 0], rows[:, 0].astype(np.int64)
    scores = np.empty(len(queries), dtype=np.float32)
    rows = np.empty(len(queries), dtype=np.int64)
    reference_t = np.ascontiguousarray(reference.T, dtype=np.float32)
    for start in range(0, len(queries), chunk):
        sims = queries[start : start + chunk] @ reference_t
        best = sims.argmax(axis=1)
        rows[start : start + chunk] = best
        scores[start : start + chunk] = sims[np.arange(len(best)), best]
    return scores, rows
