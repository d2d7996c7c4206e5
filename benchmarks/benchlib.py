"""What every ``bench_*.py`` shares: a report of figures with their baseline or floor, ratio and target,
written as JSON for ``run_all.py`` and the appendix; timing helpers; the inputs (fixtures, sample corpus).

A figure's ratio is always measured in the same run as its baseline: on these shared machines absolute
times move from run to run, ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
BUILD = REPO / "_build" / "bench"


@dataclass
class Figure:
    """One measured figure; ``ratio`` compares it with ``baseline`` measured in the same run."""

    group: str
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: str = ""  # e.g. "<= 1.5" or ">= 10" (on the ratio)
    met: bool | None = None
    note: str = ""


@dataclass
class Report:
    """The figures of one benchmark script, with the machine they came from."""

    script: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        group: str,
        name: str,
        value: float | None,
        unit: str,
        *,
        baseline: float | None = None,
        baseline_name: str = "",
        ratio: float | None = None,
        target: str = "",
        note: str = "",
    ) -> Figure:
        """Add a figure; ``ratio`` defaults to value / baseline, and ``target`` is checked on it."""
        if ratio is None and baseline and value is not None:
            ratio = value / baseline
        met = None
        if target and ratio is not None:
            op, bound = target.split()
            met = ratio <= float(bound) if op == "<=" else ratio >= float(bound)
        figure = Figure(group, name, value, unit, baseline, baseline_name, ratio, target, met, note)
        self.figures.append(figure)
        print(format_row(figure), flush=True)
        return figure

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def write(self, path: Path | None) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"script": self.script, "machine": machine(), "figures": [asdict(f) for f in self.figures]}
        path.write_text(json.dumps({**data, "notes": self.notes}, indent=1) + "\n")


def machine() -> dict[str, Any]:
    """Where the figures came from."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load_average": load,
        "time_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def format_value(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def format_row(figure: Figure) -> str:
    """One line of the printed table."""
    baseline = f"{format_value(figure.baseline)} ({figure.baseline_name})" if figure.baseline_name else ""
    ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None else ""
    verdict = {True: "met", False: "NOT MET", None: ""}[figure.met]
    target = f"{figure.target} {verdict}".strip()
    return (
        f"{figure.group[:12]:<12} {figure.name[:44]:<44} {format_value(figure.value):>9} {figure.unit[:10]:<10} "
        f"{baseline[:34]:<34} {ratio:>7} {target}"
    )


def arguments(doc: str, **extra: tuple[type, Any, str]) -> argparse.Namespace:
    """Parse ``--json OUT``, ``--seconds S`` and the script's own options (name -> (type, default, help))."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--seconds", type=float, default=60, help="time spent on repeated measurements")
    parser.add_argument("--corpus", type=Path, default=None, help="a sample corpus (default: generated)")
    for name, (kind, default, help_text) in extra.items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action="store_true", help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=default, help=help_text)
    return parser.parse_args()


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def whole_path(
    ours: Callable[[Path], int], baseline: Callable[[Path], int], folder: Path, counts: dict[str, int]
) -> dict[str, Callable[[], float]]:
    """The end-to-end measurements for :func:`interleaved`: ``ours`` (our extraction into a fresh folder,
    removed untimed after each run) and ``baseline`` (the obvious code, writing under ``folder``), each
    returning its pair count, which lands in ``counts``."""

    def measure(name: str, run: Callable[[Path], int], out: Path) -> Callable[[], float]:
        def seconds() -> float:
            start = time.perf_counter()
            counts[name] = run(out)
            elapsed = time.perf_counter() - start
            if out != folder:
                shutil.rmtree(out, ignore_errors=True)
            return elapsed

        return seconds

    return {"ours": measure("ours", ours, folder / "ours"), "baseline": measure("baseline", baseline, folder)}


def report_whole_path(
    report: Report, group: str, name: str, counts: dict[str, int], times: dict, target: str = ""
) -> None:
    """Our pairs/s next to the baseline's, from the best rounds of :func:`whole_path`'s measurements."""
    ours = counts["ours"] / times["ours"]["best"]
    if not counts.get("baseline"):
        report.add(group, name, ours, "pairs/s")
        return
    report.add(
        group, name, ours, "pairs/s",
        baseline=counts["baseline"] / times["baseline"]["best"], baseline_name="obvious baseline",
        target=target, note=f"ours {counts['ours']} pairs, baseline {counts['baseline']} pairs",
    )  # fmt: skip


def interleaved(measurements: dict[str, Callable[[], float]], seconds: float, min_rounds: int = 2) -> dict:
    """Each measurement once per round, rounds repeated for ``seconds``: the best round of each (what the
    code costs when nothing interferes), so that the ratios of figures in one round share the machine."""
    times: dict[str, list[float]] = {name: [] for name in measurements}
    started = time.perf_counter()
    while min(map(len, times.values())) < min_rounds or time.perf_counter() - started < seconds:
        for name, measure in measurements.items():
            times[name].append(measure())
    return {
        name: {"best": min(t), "median": statistics.median(t), "rounds": len(t)} for name, t in times.items()
    }


def shown(path: Path) -> str:
    """``path`` as the reader of the appendix knows it: relative to the repository (or beside it)."""
    path = Path(path).absolute()
    for base, prefix in ((REPO, ""), (REPO.parent, "../")):
        if path.is_relative_to(base):
            return prefix + str(path.relative_to(base))
    return str(path)


def sample_corpus(folder: Path | None, size: str = "micro") -> Path:
    """A sample corpus (generated once under ``_build/bench`` unless ``folder`` is given)."""
    from sciclip_utils.sample_corpus import generate_sample_corpus

    folder = folder or BUILD / f"corpus-{size}"
    generate_sample_corpus(folder, seed=0, size=size, workers=2, reuse=True)
    return folder


def photo(size: tuple[int, int], seed: int = 0, noise: float = 0.08) -> np.ndarray:
    """Smooth colour regions with sensor-like noise (its standard deviation, of the full range), ``size`` =
    (width, height): a photograph-like image, whose JPEG grows denser with ``noise``."""
    rng = np.random.default_rng(seed)
    width, height = size
    small = rng.random((height // 16, width // 16, 3)).astype(np.float32)
    noisy = cv2.resize(small, size, interpolation=cv2.INTER_CUBIC) + rng.normal(0, noise, (height, width, 3))
    return np.clip(noisy * 255, 0, 255).astype(np.uint8)
