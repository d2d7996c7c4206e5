"""Nearest-neighbour search by inner product (unit rows: cosine similarity): exact, or FAISS for large
reference sets with its measured recall."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


@dataclass
class NearestSearch:
    """The nearest reference row of query rows: exact matrix products below ``faiss_min_rows`` reference
    rows, a FAISS inverted-file index (``IVF<nlist>,Flat`` probing ``nprobe`` lists; flat when too few rows
    to cluster) at or above it. :meth:`recall` measures how often FAISS finds the exact best score."""

    reference: np.ndarray
    method: str  # "exact" or "faiss"
    index: Any = None
    description: str = "exact (matrix products)"

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)``: the best inner product and its reference row per query row."""
        if self.index is None or len(queries) == 0:
            return nearest(queries, self.reference)
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), 1)
        return scores[:, 0], rows[:, 0].astype(np.int64)

    def recall(self, queries: np.ndarray, threshold: float, sample: int = 2000) -> tuple[float, float, int]:
        """``(recall, agreement, checked)`` on up to ``sample`` evenly spread ``queries``: the share whose
        exact best score this search finds (within 1e-5), the share whose verdict (score above
        ``threshold``) it gets right, and how many were checked; exact search is ``(1.0, 1.0, 0)``."""
        if self.index is None or len(queries) == 0:
            return 1.0, 1.0, 0
        picked = queries[np.unique(np.linspace(0, len(queries) - 1, min(sample, len(queries))).astype(int))]
        found, _ = self.search(picked)
        best, _ = nearest(picked, self.reference)
        agreement = np.mean((found > threshold) == (best > threshold))
        return float(np.mean(found >= best - 1e-5)), float(agreement), len(picked)


def build_search(reference: np.ndarray, faiss_min_rows: int, nprobe: int = 64) -> NearestSearch:
    """The search over ``reference`` (unit rows): exact below ``faiss_min_rows`` rows, else FAISS IVF with
    about ``4 sqrt(rows)`` lists (at least 39 training rows each)."""
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    if len(reference) < faiss_min_rows or len(reference) == 0:
        return NearestSearch(reference, "exact")
    import faiss

    dim = reference.shape[1]
    lists = min(int(4 * np.sqrt(len(reference))), len(reference) // 39)
    if lists < 2:
        index = faiss.IndexFlatIP(dim)
        description = "faiss IndexFlatIP (exact)"
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(reference)
        index.nprobe = min(nprobe, lists)
        description = f"faiss IVF{lists},Flat nprobe {index.nprobe}"
    index.add(reference)
    return NearestSearch(reference, "faiss", index, description)
