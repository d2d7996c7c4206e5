"""The evaluation tasks (``tasklist.yml``): DataComp's 40 entries and the sample corpus's eval sets.

``load_tasks(suite)`` returns the suite's tasks by key, in file order. Evaluation, the tables, the sample
corpus's eval-set writer and decontamination's eval-set discovery all read this one file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TASKLIST = Path(__file__).with_name("tasklist.yml")
TASK_TYPES = ("zeroshot_classification", "zeroshot_retrieval", "winogavil", "wilds_fmow", "fairness")
GROUPS = {
    "datacomp": ("ImageNet", "ImageNet distribution shifts", "VTAB", "Retrieval", "Other"),
    "sample": ("natural", "scientific"),
}


@dataclass(frozen=True)
class Task:
    """One evaluation task of a suite."""

    key: str  # DataComp's tasklist key (``vtab/pcam``), or the sample eval set's name
    name: str  # display name (``dataset`` in eval_results.jsonl)
    task: str  # one of TASK_TYPES
    group: str
    main_metric: str | None  # None: reported but not averaged (FairFace, UTKFace)
    random_score: float | None
    folder: str  # the clip_benchmark webdataset folder under the data root
    size: int | None = None
    num_classes: int | None = None
    format: str | None = None
    classnames: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def retrieval(self) -> bool:
        return self.task == "zeroshot_retrieval"


def suites() -> tuple[str, ...]:
    """The suite names of the tasklist."""
    return tuple(_raw())


def load_tasks(suite: str) -> dict[str, Task]:
    """The tasks of ``suite`` (``datacomp`` or ``sample``) by key, in the file's order."""
    raw = _raw()
    if suite not in raw:
        raise ValueError(f"unknown task suite {suite!r}; known suites: {', '.join(raw)}")
    return {key: _task(suite, key, entry) for key, entry in raw[suite].items()}


@cache
def _raw() -> dict[str, dict[str, dict[str, Any]]]:
    return yaml.safe_load(TASKLIST.read_text())["suites"]


def _task(suite: str, key: str, entry: dict[str, Any]) -> Task:
    if entry["task"] not in TASK_TYPES:
        raise ValueError(f"{TASKLIST}: task {key!r} has unknown type {entry['task']!r}")
    if entry["group"] not in GROUPS[suite]:
        raise ValueError(f"{TASKLIST}: task {key!r} has unknown group {entry['group']!r}")
    values = {**entry, "key": key}
    for name in ("classnames", "templates", "tags"):
        values[name] = tuple(str(item) for item in entry.get(name) or ())
    return Task(**values)
