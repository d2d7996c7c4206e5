"""Worst-group metrics of DataComp's FMoW, Dollar Street and GeoDE, as its ``eval_utils`` computes them.

Each test sample of these webdatasets carries its class (``.cls``) and a metadata vector (``.npy``) whose
fields ``Grouping.fields`` names. A task's samples are grouped by each field of ``Grouping.by`` (the group
of a sample is its integer value of that field); the metric is accuracy (``top=1``) or top-5 accuracy
(``top=5``: the true class among the five best) per group, and the task's worst-group metric is the lowest
over the groups holding samples:

- ``wilds/fmow``: accuracy by ``year`` (``acc_worst_year``) and by ``region`` (``acc_worst_region``, the
  main metric). DataComp's FMoW evaluator means to skip the "Other" region, but its grouper has no metadata
  map, so its group names are ``region = k`` and never contain "Other": every region counts, region 5
  ("Other" in WILDS) included. We do the same.
- ``fairness/dollar_street``: top-5 accuracy by ``income_ds`` (``acc_top5_wg``).
- ``fairness/geode``: accuracy by ``region`` (``acc_wg``).

Names follow WILDS' ``standard_group_eval`` as DataComp reports them: ``<m>_avg`` (all samples),
``<m>_<field>:<k>`` and ``count_<field>:<k>`` per group, ``<m>_wg`` for the worst group when a task groups
by one field, ``<m>_worst_<field>`` when by several (FMoW), where ``<m>`` is ``acc`` or ``acc_top5``.
DataComp also lists groups between 0 and the largest id that hold no sample (count 0, accuracy NaN); we
list only groups that hold samples, the only ones a worst group is taken over.

The bootstrap resamples samples (groups shrink and grow with them) and takes the worst group of each
replicate; a minimum over noisy groups is biased low, so these intervals lean below the point value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_EXTENSIONS = "webp;png;jpg;jpeg"  # the image keys clip_benchmark's webdataset loader accepts
_NAME = re.compile(
    r"(?P<metric>acc_top5|acc)_(?:(?P<avg>avg)|(?P<wg>wg)|worst_(?P<worst>\w+)|(?P<field>\w+):(?P<group>-?\d+))"
)
_COUNT = re.compile(r"count_(?P<field>\w+):(?P<group>-?\d+)")


@dataclass(frozen=True)
class Grouping:
    """How one task's samples are grouped and scored (see the module docstring)."""

    fields: tuple[str, ...]  # the .npy metadata vector of each sample, in order
    by: tuple[str, ...]  # the fields whose groups are scored
    top: int  # 1: accuracy, 5: top-5 accuracy

    @property
    def prefix(self) -> str:
        return "acc" if self.top == 1 else f"acc_top{self.top}"

    def worst_name(self, field: str) -> str:
        """DataComp's name of the worst-group metric over ``field``'s groups."""
        return f"{self.prefix}_wg" if len(self.by) == 1 else f"{self.prefix}_worst_{field}"

    def groups(self, metadata: np.ndarray) -> np.ndarray:
        """(N, len(by)) group ids from the (N, len(fields)) metadata vectors (cast to int, as WILDS does)."""
        if metadata.ndim != 2 or metadata.shape[1] != len(self.fields):
            raise ValueError(
                f"metadata vectors of shape {metadata.shape[1:]}, expected {len(self.fields)} fields {self.fields}"
            )
        return metadata[:, [self.fields.index(field) for field in self.by]].astype(np.int64)


GROUPINGS: dict[str, Grouping] = {
    "wilds/fmow": Grouping(fields=("region", "year", "y"), by=("year", "region"), top=1),
    "fairness/dollar_street": Grouping(
        fields=("income_ds", "income_meta", "region"), by=("income_ds",), top=5
    ),
    "fairness/geode": Grouping(fields=("region", "country"), by=("region",), top=1),
}


def metric_names(grouping: Grouping, groups: np.ndarray) -> list[str]:
    """Every grouped metric of a task: overall, per group present (value and count), worst groups."""
    names = [f"{grouping.prefix}_avg"]
    for column, field in enumerate(grouping.by):
        for group in np.unique(groups[:, column]):
            names += [f"{grouping.prefix}_{field}:{group}", f"count_{field}:{group}"]
        names.append(grouping.worst_name(field))
    return names


def is_grouped_metric(name: str) -> bool:
    return bool(_NAME.fullmatch(name) or _COUNT.fullmatch(name))


def grouped_metric(
    name: str, target: np.ndarray, top: np.ndarray, groups: np.ndarray, group_by: tuple[str, ...]
) -> float:
    """Grouped metric ``name`` of samples with true class ``target``, predictions ``top`` (best first) and
    group ids ``groups`` (one column per field of ``group_by``)."""
    count = _COUNT.fullmatch(name)
    if count:
        column = _column(name, count["field"], group_by)
        return float(np.sum(groups[:, column] == int(count["group"])))
    parts = _NAME.fullmatch(name)
    if parts is None:
        raise ValueError(f"no grouped metric {name!r}")
    k = 5 if parts["metric"] == "acc_top5" else 1
    correct = (top[:, :k] == target[:, None]).any(axis=1)
    if parts["avg"]:
        return float(np.mean(correct))
    if parts["field"]:
        members = groups[:, _column(name, parts["field"], group_by)] == int(parts["group"])
        return float(np.mean(correct[members])) if members.any() else float("nan")
    if parts["wg"] and len(group_by) != 1:
        raise ValueError(f"{name}: the worst group is ambiguous for groupings {group_by}")
    column = 0 if parts["wg"] else _column(name, parts["worst"], group_by)
    ids, inverse = np.unique(groups[:, column], return_inverse=True)  # groups holding samples only
    accuracy = np.bincount(inverse, weights=correct, minlength=len(ids)) / np.bincount(inverse)
    return float(accuracy.min())


def _column(name: str, field: str, group_by: tuple[str, ...]) -> int:
    if field not in group_by:
        raise ValueError(f"{name}: the predictions are grouped by {group_by}, not {field!r}")
    return group_by.index(field)


# ---- data ---------------------------------------------------------------------------------------------


def samples(folder: Path, grouping: Grouping, preprocess: Any) -> Any:
    """The (image, target) samples of ``folder``'s test shards, in clip_benchmark's order; a target row is
    the class followed by the sample's metadata vector, so the groups travel with the samples."""
    import webdataset as wds

    shards = int((folder / "test" / "nshards.txt").read_text().split()[0])
    return (
        wds.WebDataset(
            str(folder / "test" / f"{{0..{shards - 1}}}.tar"), nodesplitter=_every_shard, shardshuffle=False
        )
        .decode(wds.autodecode.ImageHandler("pil", extensions=IMAGE_EXTENSIONS.split(";")))
        .to_tuple("__key__", IMAGE_EXTENSIONS, "cls", "npy")
        .map(partial(_sample, preprocess, len(grouping.fields)))
    )


def _every_shard(urls: Any) -> Any:
    return urls


def _sample(preprocess: Any, width: int, sample: tuple[str, Any, int, Any]) -> tuple[Any, np.ndarray]:
    key, image, label, metadata = sample
    metadata = np.asarray(metadata).reshape(-1)
    if len(metadata) != width:
        raise ValueError(f"sample {key}: .npy metadata has {len(metadata)} values, expected {width}")
    return preprocess(image), np.concatenate([[int(label)], metadata]).astype(np.int64)
