"""Table 3 (group means per run), Table 4 (tasks where the mix beats the baseline), the paper's numbers
beside ours, and the plots of the chapter; every value with its 95 % bootstrap interval.

A run is an evaluation folder holding ``eval_results.jsonl`` (and, from ``sciclip evaluate``, the
per-sample ``predictions/``). Group means average the tasks present; the average is the unweighted mean of
all main metrics of the suite (DataComp: 38) and is left empty until all are there. A group's interval
comes from averaging its tasks' bootstrap replicates (tasks resampled independently); a difference between
two runs comes from a paired bootstrap (the same resampled test samples for both).
"""

from __future__ import annotations

import argparse
import json
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sciclip_utils.evaluate.bootstrap import Predictions, interval, paired_difference, replicates
from sciclip_utils.evaluate.run import RESULTS, predictions_path, read_results
from sciclip_utils.profiles import add_profile_option, apply_profile, paths
from sciclip_utils.tasks import GROUPS, Task, load_tasks

PAPER = Path(__file__).with_name("paper.yml")
COLUMNS = {
    "ImageNet": "imagenet",
    "ImageNet distribution shifts": "imagenet_dist_shifts",
    "VTAB": "vtab",
    "Retrieval": "retrieval",
    "natural": "natural",
    "scientific": "scientific",
}


@dataclass(frozen=True)
class RunResults:
    """The evaluation results of one run: ``eval_results.jsonl`` and the per-sample predictions."""

    name: str
    folder: Path
    suite: str

    @cached_property
    def rows(self) -> dict[str, dict[str, Any]]:
        return read_results(self.folder / RESULTS)

    @cached_property
    def tasks(self) -> dict[str, Task]:
        """The suite's averaged tasks (those with a main metric), in tasklist order."""
        return {key: task for key, task in load_tasks(self.suite).items() if task.main_metric}

    def score(self, key: str) -> float:
        """The main metric of task ``key`` (NaN when not evaluated)."""
        row = self.rows.get(key)
        return (
            float(row["metrics"]["main_metric"]) if row and "main_metric" in row["metrics"] else float("nan")
        )

    def predictions(self, key: str) -> Predictions | None:
        path = predictions_path(self.folder, self.tasks[key])
        return Predictions.load(path) if path.is_file() else None

    def replicates(self, key: str, rounds: int) -> np.ndarray | None:
        """Bootstrap replicates of task ``key``'s main metric (None without per-sample predictions)."""
        predictions = self.predictions(key)
        if predictions is None or not rounds:
            return None
        return replicates(predictions, self.tasks[key].main_metric, rounds, seed=zlib.crc32(key.encode()))


def load_runs(
    folders: list[str | Path] | dict[str, str | Path], suite: str | None = None
) -> list[RunResults]:
    """Runs by folder (named after it) or by name; the suite is guessed from the task keys when not given."""
    named = (
        folders if isinstance(folders, dict) else {Path(folder).resolve().name: folder for folder in folders}
    )
    runs = []
    for name, folder in named.items():
        folder = Path(folder)
        if not (folder / RESULTS).is_file():
            raise FileNotFoundError(f"{folder / RESULTS} does not exist: run `sciclip evaluate` first")
        runs.append(RunResults(name, folder, suite or _guess_suite(read_results(folder / RESULTS))))
    return runs


def _guess_suite(rows: dict[str, Any]) -> str:
    for suite in GROUPS:
        if set(rows) <= set(load_tasks(suite)):
            return suite
    raise ValueError(f"the task keys {sorted(rows)} belong to no single suite of tasklist.yml")


def table3(runs: list[RunResults], rounds: int = 1000) -> pd.DataFrame:
    """One row per run: group means, the average, the number of tasks, and ``<column>_low/_high`` intervals."""
    records = []
    for run in runs:
        record: dict[str, Any] = {"run": run.name}
        groups = [group for group in GROUPS[run.suite] if group in COLUMNS]
        members = {group: [k for k, t in run.tasks.items() if t.group == group] for group in groups}
        members["average"] = list(run.tasks)
        present = [key for key in run.tasks if not np.isnan(run.score(key))]
        draws = {key: run.replicates(key, rounds) for key in present}
        for group, keys in members.items():
            column = COLUMNS.get(group, group)
            keys = [key for key in keys if key in present]
            complete = group != "average" or len(keys) == len(run.tasks)
            record[column] = float(np.mean([run.score(k) for k in keys])) if keys and complete else np.nan
            low = high = np.nan
            if keys and complete and all(draws[k] is not None for k in keys):
                low, high = interval(np.mean([draws[k] for k in keys], axis=0))
            record[f"{column}_low"], record[f"{column}_high"] = low, high
        record["tasks"] = len(present)
        records.append(record)
    return pd.DataFrame.from_records(records).set_index("run")


def value_columns(table: pd.DataFrame) -> list[str]:
    """The value columns of a table from :func:`table3` (without intervals and counts)."""
    return [c for c in table.columns if not c.endswith(("_low", "_high")) and c != "tasks"]


def with_intervals(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Each value as ``0.123 [0.101, 0.145]`` (the interval only where there is one), for display."""
    shown = pd.DataFrame(index=table.index)
    for column in value_columns(table):
        shown[column] = [
            _cell(value, row.get(f"{column}_low"), row.get(f"{column}_high"), digits)
            for value, (_, row) in zip(table[column], table.iterrows(), strict=True)
        ]
    if "tasks" in table:
        shown["tasks"] = table["tasks"]
    return shown


def _cell(value: float, low: float | None, high: float | None, digits: int) -> str:
    if value is None or np.isnan(value):
        return ""
    if low is None or np.isnan(low):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def paper_table3() -> pd.DataFrame:
    """The paper's Table 3 (small scale), one row per condition."""
    return pd.DataFrame.from_dict(yaml.safe_load(PAPER.read_text())["table3"], orient="index").rename_axis(
        "run"
    )


def paper_table4() -> pd.DataFrame:
    """The paper's Table 4: tasks where the mix beats the baseline, with both scores."""
    rows = yaml.safe_load(PAPER.read_text())["table4"]
    tasks = load_tasks("datacomp")
    return pd.DataFrame(
        [
            {"task": tasks[key].name, "key": key, "mix": mix, "baseline": base, "difference": mix - base}
            for key, (mix, base) in rows.items()
        ]  # fmt: skip
    ).set_index("task")


def compare(baseline: RunResults, other: RunResults, rounds: int = 1000) -> pd.DataFrame:
    """Per task: both scores, ``other - baseline`` and its paired 95 % interval, and whether the interval
    excludes zero (``beyond_interval``)."""
    rows = []
    for key, task in baseline.tasks.items():
        base, score = baseline.score(key), other.score(key)
        if np.isnan(base) or np.isnan(score):
            continue
        low = high = np.nan
        first, second = other.predictions(key), baseline.predictions(key)
        if rounds and first is not None and second is not None and first.same_test_set(second):
            draws = paired_difference(first, second, task.main_metric, rounds, seed=zlib.crc32(key.encode()))
            low, high = interval(draws)
        rows.append({"task": task.name, "key": key, "group": task.group, "baseline": base, other.name: score,
                     "difference": score - base, "low": low, "high": high,
                     "beyond_interval": bool(low > 0 or high < 0), "chance": task.random_score})  # fmt: skip
    return pd.DataFrame(rows).set_index("task")


def group_difference(
    baseline: RunResults, other: RunResults, group: str, rounds: int = 1000
) -> tuple[float, float, float]:
    """``other - baseline`` on the mean of ``group``'s tasks (``average``: all tasks), with a paired 95 %
    interval (each task's paired replicates, averaged over the group)."""
    keys = [k for k, t in baseline.tasks.items() if group in ("average", t.group, COLUMNS.get(t.group))]
    keys = [k for k in keys if not (np.isnan(baseline.score(k)) or np.isnan(other.score(k)))]
    if not keys:
        return np.nan, np.nan, np.nan
    difference = float(np.mean([other.score(k) - baseline.score(k) for k in keys]))
    pairs = [(other.predictions(k), baseline.predictions(k)) for k in keys]
    if not rounds or any(a is None or b is None or not a.same_test_set(b) for a, b in pairs):
        return difference, np.nan, np.nan
    draws = [
        paired_difference(a, b, baseline.tasks[k].main_metric, rounds, seed=zlib.crc32(k.encode()))
        for k, (a, b) in zip(keys, pairs, strict=True)
    ]
    return (difference, *interval(np.mean(draws, axis=0)))


def table4(baseline: RunResults, mix: RunResults, rounds: int = 1000) -> pd.DataFrame:
    """Tasks where the mix beats the baseline (our Table 4), with the paired interval of the difference."""
    comparison = compare(baseline, mix, rounds)
    return comparison[comparison["difference"] > 0]


def plot_deltas(baseline: RunResults, others: list[RunResults], rounds: int = 1000) -> Any:
    """Per-task difference to the baseline (with paired 95 % intervals), tasks grouped, one marker per run."""
    import matplotlib.pyplot as plt

    comparisons = {run.name: compare(baseline, run, rounds) for run in others}
    first = next(iter(comparisons.values()))
    order = first.sort_values("group", kind="stable").index
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) + 1.2))
    for offset, (name, table) in zip(
        np.linspace(-0.15, 0.15, len(comparisons)), comparisons.items(), strict=True
    ):
        table = table.loc[order]
        y = np.arange(len(order)) + offset
        error = np.abs(table[["low", "high"]].to_numpy().T - table["difference"].to_numpy())
        ax.errorbar(
            table["difference"],
            y,
            xerr=np.nan_to_num(error),
            fmt="o",
            capsize=3,
            label=f"{name} - {baseline.name}",
        )
    ax.axvline(0, color="gray", lw=1)
    ax.set_yticks(np.arange(len(order)), [f"{task} ({first.loc[task, 'group']})" for task in order])
    ax.invert_yaxis()
    ax.set_xlabel("difference in main metric (95 % paired bootstrap interval)")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def plot_groups(table: pd.DataFrame) -> Any:
    """Bar chart of the group means per run (from :func:`table3`), with 95 % intervals."""
    import matplotlib.pyplot as plt

    columns = [c for c in value_columns(table) if table[c].notna().any()]
    fig, ax = plt.subplots(figsize=(1.4 * len(columns) + 2, 3.2))
    width = 0.8 / len(table)
    for index, (run, row) in enumerate(table.iterrows()):
        x = np.arange(len(columns)) + (index - (len(table) - 1) / 2) * width
        values = row[columns].to_numpy(dtype=float)
        bounds = np.array([[row[f"{c}_low"], row[f"{c}_high"]] for c in columns], dtype=float).T
        ax.bar(x, values, width, yerr=np.nan_to_num(np.abs(bounds - values)), capsize=3, label=str(run))
    ax.set_xticks(np.arange(len(columns)), columns)
    ax.set_ylabel("main metric")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


# ---- CLI --------------------------------------------------------------------------------------------


def cli_configure(parser: argparse.ArgumentParser) -> None:
    """``sciclip tables RUN_DIR... [--format markdown|csv|json]``."""
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="evaluation folder (holding eval_results.jsonl) or training run folder")  # fmt: skip
    parser.add_argument("--format", choices=["markdown", "csv", "json"], default="markdown")
    parser.add_argument("--suite", choices=["sample", "datacomp"], default=None,
                        help="task suite (default: the one the results belong to)")  # fmt: skip
    parser.add_argument(
        "--bootstrap", type=int, default=None, help="bootstrap rounds for the intervals (0: none)"
    )
    add_profile_option(parser)


def _results_folder(folder: Path, profile: str) -> Path:
    """``folder`` if it holds results, else the profile's evaluation folder of the run of that name."""
    if (folder / RESULTS).is_file():
        return folder
    return paths(profile).eval / folder.resolve().name


def cli_run(args: argparse.Namespace) -> int:
    """Print Table 3 of the given runs."""
    params = apply_profile(argparse.Namespace(profile=args.profile), "evaluate")
    rounds = params["bootstrap"] if args.bootstrap is None else args.bootstrap
    folders = {Path(f).resolve().name: _results_folder(Path(f), args.profile) for f in args.run_dirs}
    table = table3(load_runs(folders, args.suite), rounds)
    if args.format == "json":
        columns = value_columns(table)
        records = [{"run": run, **{c: _json_number(row[c]) for c in columns},
                    **{f"{c}_ci95": [_json_number(row[f"{c}_low"]), _json_number(row[f"{c}_high"])] for c in columns},
                    "tasks": int(row["tasks"])} for run, row in table.iterrows()]  # fmt: skip
        print(json.dumps(records, indent=1))
    elif args.format == "csv":
        print(table.to_csv(), end="")
    else:
        print(with_intervals(table).to_markdown())
    return 0


def _json_number(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)
