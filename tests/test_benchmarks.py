"""The benchmark harness: ratios and verdicts, the phase stopwatch, the appendix rendering."""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from benchlib import Report  # noqa: E402
from extraction import Stopwatch  # noqa: E402
from render import render  # noqa: E402


def test_ratio_and_verdict_against_the_baseline(tmp_path: Path) -> None:
    report = Report("bench_x")
    cost = report.add(
        "PMC", "images per pair", 3.0, "ms/pair", baseline=2.5, baseline_name="floor", target="<= 1.5"
    )
    speed = report.add(
        "PMC", "2 workers", 150.0, "pairs/s", baseline=100.0, baseline_name="1 worker", target=">= 1.7"
    )
    plain = report.add("PMC", "read", 10.0, "samples/s")
    assert cost.ratio == pytest.approx(1.2) and cost.met is True
    assert speed.ratio == pytest.approx(1.5) and speed.met is False
    assert plain.ratio is None and plain.met is None
    report.write(tmp_path / "out.json")
    data = json.loads((tmp_path / "out.json").read_text())
    assert [f["met"] for f in data["figures"]] == [True, False, None]
    assert data["machine"]["cores"] >= 1


def test_stopwatch_times_outermost_calls_by_phase_and_restores() -> None:
    module = types.SimpleNamespace()

    def inner() -> None:
        time.sleep(0.02)

    def outer() -> None:
        module.inner()  # nested: counted once, in the outer call's phase
        time.sleep(0.02)

    module.inner, module.outer = inner, outer
    with Stopwatch({"images": [(module, "outer")], "captions": [(module, "inner")]}) as watch:
        module.outer()
        module.inner()
    assert module.outer is outer and module.inner is inner
    assert 0.035 <= watch.seconds["images"] < 0.2
    assert 0.015 <= watch.seconds["captions"] < 0.1


def test_render_lists_every_figure_with_its_verdict(tmp_path: Path) -> None:
    report = Report("bench_pmc")
    report.add("PMC", "images per pair", 3.0, "ms/pair", baseline=1.0, baseline_name="floor", target="<= 1.5")
    report.note("inputs: fixtures")
    report.write(tmp_path / "pmc.json")
    script = json.loads((tmp_path / "pmc.json").read_text())
    page = render({"machine": script["machine"], "seconds": 12.0, "scripts": [script]})
    assert "### `bench_pmc.py`" in page
    assert "| images per pair | 3.00 ms/pair | 1.00 (floor) | 3.00× | ≤ 1.5 **not met** |" in page
    assert "- inputs: fixtures" in page
