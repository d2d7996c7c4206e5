"""Extraction: figure-caption pairs from paper sources into CommonPool shards.

- :mod:`.items`: the contract the per-paper code (``sciclip_utils.arxiv``, ``sciclip_utils.pmc``) implements
  (:class:`WorkItem` in, :class:`ItemResult` out, :class:`ExtractionError` to fail);
- :mod:`.sandbox`: each item in a forked child under a timeout and a memory cap;
- :mod:`.parts`: one stored part per finished item (its pairs and manifest row), for resume;
- :mod:`.runner`: Dask distribution, resume and assembly into shards and ``manifest.parquet``;
- :mod:`.sources`: the entry points ``extract_arxiv`` / ``extract_pmc`` and ``extraction_inputs`` (a
  profile's inputs, output folder and parameters);
- :mod:`.cli`: ``sciclip extract arxiv|pmc``.

The entry points are importable from here (``from sciclip_utils.extract import extract_arxiv``); they load
on first use, so the per-paper code can import :mod:`.items` without the runner.
"""

from __future__ import annotations

import importlib
from typing import Any

from sciclip_utils.extract.items import ExtractionError, ItemResult, WorkItem

_LAZY = {
    "extract_arxiv": "sources",
    "extract_pmc": "sources",
    "extraction_inputs": "sources",
    "run_extraction": "runner",
    "ExtractionSummary": "runner",
    "ItemLimits": "sandbox",
}

__all__ = ["ExtractionError", "ItemResult", "WorkItem", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"sciclip_utils.extract.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'sciclip_utils.extract' has no attribute {name!r}")
