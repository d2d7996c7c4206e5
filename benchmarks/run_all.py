"""Run every stage's benchmark (``make bench``), print one table, write the figures as JSON.

Each ``bench_*.py`` runs in its own process with a time cap (all within ``--budget`` seconds), its output
in ``_build/bench/<script>.log``; a script that fails or runs out of time is listed with a note. The
merged figures go to ``_build/bench/results.json`` and, unless ``--no-book``, to the committed copies the
book's appendix renders: ``book/bench_results.json`` and its Markdown ``book/bench_results.md``.

Run: ``.venv/bin/python benchmarks/run_all.py [--only NAME ...] [--budget S] [--run-notebooks] [--no-book]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchlib import BUILD, REPO, Figure, format_row, machine, sample_corpus
from render import PAGE, RESULTS, render

HERE = Path(__file__).resolve().parent
# (script, its own options, its time cap in seconds); the order is the order of the table.
SCRIPTS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("bench_arxiv", ("--seconds", "40", "--copies", "10", "--scaling-seconds", "40"), 270),
    ("bench_pmc", ("--seconds", "40", "--copies", "7", "--scaling-seconds", "40"), 200),
    ("bench_commonpool", ("--seconds", "10"), 60),
    ("bench_decontaminate", ("--scaling-images", "48", "--scaling-isc-images", "2"), 210),
    ("bench_train", ("--steps", "10"), 180),
    ("bench_evaluate", (), 90),
    ("bench_notebooks", (), 30),
)
HEADER = f"{'stage':<12} {'figure':<44} {'value':>9} {'unit':<10} {'baseline / floor (same run)':<34} {'ratio':>7} target"


def run_script(name: str, options: tuple[str, ...], corpus: Path, timeout: float) -> dict:
    """One script's figures (its JSON), or an entry whose note says why there are none."""
    out, log = BUILD / f"{name}.json", BUILD / f"{name}.log"
    out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        str(HERE / f"{name}.py"),
        "--json",
        str(out),
        "--corpus",
        str(corpus),
        *options,
    ]
    print(f"[bench] {name} (at most {timeout:.0f} s; log {log.relative_to(REPO)})", flush=True)
    start = time.perf_counter()
    with open(log, "wb") as output:
        try:
            code = subprocess.run(
                command, stdout=output, stderr=subprocess.STDOUT, timeout=timeout, env=env
            ).returncode
            problem = None if code == 0 else f"failed (exit status {code})"
        except subprocess.TimeoutExpired:
            problem = f"stopped after {timeout:.0f} s"
    seconds = time.perf_counter() - start
    if problem is None and out.is_file():
        result = json.loads(out.read_text())
    else:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
        result = {
            "script": name,
            "figures": [],
            "notes": [f"{problem or 'no JSON written'}: {' '.join(tail)}"],
        }
    result["seconds"] = round(seconds, 1)
    for raw in result["figures"]:
        print(format_row(Figure(**raw)), flush=True)
    for note in result["notes"]:
        print(f"  note: {note}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=None, help="script names (e.g. bench_pmc)")
    parser.add_argument("--budget", type=float, default=570, help="seconds for the whole run")
    parser.add_argument("--run-notebooks", action="store_true", help="execute the notebooks to time them")
    parser.add_argument("--no-book", action="store_true", help="leave book/bench_results.* as they are")
    args = parser.parse_args()
    started = time.perf_counter()
    BUILD.mkdir(parents=True, exist_ok=True)
    print("[bench] sample corpus (micro) for the stages after extraction", flush=True)
    corpus = sample_corpus(None)
    results = {"machine": machine(), "scripts": []}
    print(HEADER, flush=True)
    for name, options, cap in SCRIPTS:
        if args.only and name not in args.only:
            continue
        if name == "bench_notebooks" and args.run_notebooks:
            options, cap = ("--run",), 900
        left = args.budget - (time.perf_counter() - started)
        if left < 10:
            results["scripts"].append(
                {"script": name, "figures": [], "notes": ["not run: the time budget is spent"]}
            )
            continue
        results["scripts"].append(run_script(name, options, corpus, min(cap, left)))
    results["seconds"] = round(time.perf_counter() - started, 1)
    (BUILD / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"\n{HEADER}")
    for script in results["scripts"]:
        for raw in script["figures"]:
            print(format_row(Figure(**raw)))
        for note in script["notes"]:
            print(f"  {script['script']}: {note}")
    missed = [
        f"{f['group']}: {f['name'].strip()}"
        for s in results["scripts"]
        for f in s["figures"]
        if f["met"] is False
    ]
    print(f"\n[bench] {results['seconds']:.0f} s; targets not met: {', '.join(missed) or 'none'}")
    if not args.no_book and not args.only:
        shutil.copyfile(BUILD / "results.json", RESULTS)
        PAGE.write_text(render(results))
        print(f"[bench] wrote {RESULTS.relative_to(REPO)} and {PAGE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
