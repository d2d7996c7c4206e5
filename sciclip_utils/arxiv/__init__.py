"""arXiv extraction: figure-caption pairs from LaTeX source packages.

:mod:`.bulk` turns inputs (bulk tars, their manifest, per-paper packages, source folders) into one work item
per paper (the contract of :mod:`sciclip_utils.extract.items`); :mod:`.project` is one paper's LaTeX project
(main-file choice, include flattening, graphics lookup); :mod:`.paper` does the per-paper work,
:func:`process_item`. The entry point is :func:`sciclip_utils.extract.extract_arxiv`.
"""

from .bulk import (
    MANIFEST_NAME,
    build_work_items,
    paper_id_from_name,
    paper_yymm,
    select_bulk_tars,
    yymm_key,
)
from .paper import SOURCE, process_item
from .project import Project

__all__ = [
    "MANIFEST_NAME",
    "SOURCE",
    "Project",
    "build_work_items",
    "paper_id_from_name",
    "paper_yymm",
    "process_item",
    "select_bulk_tars",
    "yymm_key",
]
