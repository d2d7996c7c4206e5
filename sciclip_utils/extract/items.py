"""The contract between the per-paper code (``arxiv``, ``pmc``) and the runner: what an item is, what
processing it returns, how it fails. Per-paper code imports this module only, never the runner or the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sciclip_utils.commonpool import Record

STATUSES = ("ok", "skipped", "failed")


@dataclass(frozen=True)
class WorkItem:
    """One unit of extraction work; ``key`` is unique and stable (it names the item's part for resume)."""

    key: str
    input: str
    paper_id: str
    member: str | None = None
    offset: int | None = None
    size: int | None = None


class ExtractionError(Exception):
    """Raised by a process function: the item fails at ``stage`` for ``reason``."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


@dataclass
class ItemResult:
    """What processing one item produced: its pairs (with prepared images) and its manifest fields."""

    records: list[Record]
    status: str = "ok"
    stage: str | None = None
    reason: str | None = None
    main_file: str | None = None
    figures_found: int = 0
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
