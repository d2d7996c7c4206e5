"""Wall time of each notebook at the ``tiny`` profile.

Read from ``_build/notebook_times.json`` (written by ``sciclip notebooks`` / ``make book``); with ``--run``
the notebooks are executed here first, one at a time with papermill (no book build: minutes).

Run: ``.venv/bin/python benchmarks/bench_notebooks.py [--json OUT] [--run]``
"""

from __future__ import annotations

import json
import time

from benchlib import REPO, Report, arguments

from sciclip_utils.notebooks import find_notebooks, run_notebooks

GROUP = "notebooks"
TIMES = REPO / "_build" / "notebook_times.json"


def run_each() -> dict[str, float]:
    """Seconds per notebook, each executed on its own at ``tiny``."""
    seconds = {}
    for notebook in find_notebooks(REPO / "notebooks"):
        start = time.perf_counter()
        run_notebooks("tiny", only=[notebook.stem], root=REPO, build=False)
        seconds[notebook.name] = time.perf_counter() - start
    return seconds


def main() -> None:
    args = arguments(
        __doc__, run=(bool, False, "execute the notebooks here (minutes) instead of reading times")
    )
    report = Report("bench_notebooks")
    if args.run:
        seconds, source = run_each(), "executed by this benchmark"
    elif TIMES.is_file() and json.loads(TIMES.read_text()).get("profile") == "tiny":
        record = json.loads(TIMES.read_text())
        seconds, source = record["notebooks"], f"{TIMES.relative_to(REPO)} (the last `make book`)"
    else:
        report.note(
            f"not available: no tiny-profile {TIMES.relative_to(REPO)}; run `make book` or pass --run"
        )
        report.write(args.json)
        return
    for name, value in seconds.items():
        report.add(GROUP, name, value, "s")
    report.add(GROUP, f"all {len(seconds)} notebooks", sum(seconds.values()), "s")
    report.note(f"times {source}")
    report.write(args.json)


if __name__ == "__main__":
    main()
