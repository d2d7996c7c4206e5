"""The closing chapter reads what the run left and says what is missing; the small plan follows its inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sciclip_utils import conclusions
from sciclip_utils.profiles import RunPaths


def _results(path: Path, rows: list[tuple[str, str, float | None]]) -> None:
    path.parent.mkdir(parents=True)
    lines = []
    for key, dataset, score in rows:
        metrics = {"acc1": score} if score is None else {"acc1": score, "main_metric": score}
        lines.append(json.dumps({"key": key, "dataset": dataset, "metrics": metrics}))
    path.write_text("\n".join(lines) + "\n")


def test_eval_results_are_read_per_condition_and_averaged(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "tiny")
    assert conclusions.read_eval_results(run.eval).empty, "no evaluation yet: an empty table, not an error"
    _results(
        run.eval / "mix" / "eval_results.jsonl",
        [("vtab/pcam", "PatchCamelyon", 0.6), ("mnist", "MNIST", 0.2)],
    )
    _results(
        run.eval / "sci" / "eval_results.jsonl",
        [
            ("vtab/pcam", "PatchCamelyon", 0.5),
            ("mnist", "MNIST", 0.1),
            ("fairness/fairface", "FairFace", None),
        ],
    )
    results = conclusions.read_eval_results(run.eval)
    assert len(results) == 5 and set(results["condition"]) == {"mix", "sci"}
    table = conclusions.results_table(results)
    assert list(table.index) == ["MNIST", "PatchCamelyon", "average"], (
        "tasks without a main metric are left out"
    )
    assert table.loc["average", "mix"] == pytest.approx(0.4) and table.loc["average", "sci"] == pytest.approx(
        0.3
    )


def test_stage_status_and_analysis_tables_follow_the_run_folder(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "tiny")
    assert not conclusions.stage_status(run)["output"].any()
    assert conclusions.analysis_tables(run.analysis) == {}
    run.analysis.mkdir(parents=True)
    pd.DataFrame({"source": ["arxiv"], "mean caption chars": [266.96]}).to_csv(
        run.analysis / "captions.csv", index=False
    )
    assert conclusions.stage_status(run).loc["dataset analysis", "output"]
    assert conclusions.analysis_tables(run.analysis)["captions"].iloc[0]["mean caption chars"] == 266.96


def test_small_plan_scales_the_measured_extraction_speed(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "tiny")
    run.arxiv.mkdir(parents=True)
    pd.DataFrame({"seconds": [1.0, 3.0, None], "pairs_written": [2, 2, 0]}).to_parquet(
        run.arxiv / "manifest.parquet"
    )
    rates = conclusions.seconds_per_pair(run)
    assert rates == {"arxiv": 1.0}, "PMC did not run: no rate, no row"
    assumptions = {**conclusions.ASSUMPTIONS, "extract_workers": 100, "cpu_slowdown_real_vs_sample": 2.0}
    plan = conclusions.small_plan(rates, assumptions)
    assert "extract pmc" not in plan.index
    assert plan.loc["extract arxiv", "hours"] == pytest.approx(1_117_377 * 1.0 * 2.0 / 100 / 3600)
    training = plan.filter(like="train 3 conditions", axis=0).iloc[0]
    assert training["hours"] == pytest.approx(3 * 12_800_000 / (8 * 2_000) / 3600)
    assert training["usd"] == pytest.approx(training["hours"] * 8 * 2.5)
