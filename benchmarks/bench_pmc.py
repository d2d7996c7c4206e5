"""PMC extraction speed per worker on the real fixtures (in-process, one core).

Prints articles/s and pairs/s for the per-article work a Dask worker does (read the package, parse the
XML, captions, map and re-encode the images), the share of it spent in XML/captions vs images, and the
end-to-end rate of ``extract_pmc(workers=0)`` including the shard writing (each a fresh output folder).
End to end is also split, by a straight-line fit over runs of 4 to all articles, into a fixed cost per
run (starting the item sandbox, markers, manifest) and the cost per pair, which is what a long run pays.

Every measurement is taken once per round, the rounds interleaved for ``--seconds``: this VM slows down by
up to 1.5x for minutes at a time, so each figure is given for the best round (what the code costs when
nothing interferes: timeit's rule) and for the median round. The verdict on the target uses the best. A
fixed reference workload that is none of this code (hashing, a memory scan, fresh pages) runs in every
round too: how much slower its median round is than its best shows how much of the spread is the machine.

Run: ``.venv/bin/python benchmarks/bench_pmc.py [--seconds S]``
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sciclip_utils.extract import WorkItem, extract_pmc
from sciclip_utils.extract.sandbox import keep_freed_memory
from sciclip_utils.pmc import Options, open_article, parse_article, plan_inputs, process_article

TARGET_S_PER_PAIR = 0.004
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "pmc"
MIN_ROUNDS = 3


def article_xml(item: WorkItem) -> bytes:
    files, xml_name = open_article(item)
    return files.read(xml_name)


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def reference_workload(data: bytes, array: np.ndarray) -> float:
    """Seconds of a fixed, memory-heavy job that is none of this code."""
    start = time.perf_counter()
    hashlib.sha256(data).digest()
    array.sum()
    np.ones(len(data) // 8).sum()  # fresh pages
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=Path, default=FIXTURES, help="PMC inputs (default: the fixtures)")
    parser.add_argument(
        "--seconds", type=float, default=90, help=f"time spent in rounds (at least {MIN_ROUNDS})"
    )
    args = parser.parse_args()
    if not args.inputs.exists():
        raise SystemExit(f"no inputs at {args.inputs} (the fixtures live in ../shared/fixtures)")
    keep_freed_memory()  # as in the sandbox process that runs the items of an extraction
    items = plan_inputs([args.inputs]).items
    options = Options()
    pairs = sum(len(process_article(item, options).records) for item in items)  # warm-up (imports, caches)
    xml = [article_xml(item) for item in items]
    counts = sorted({min(k, len(items)) for k in (4, 8, 12, 16)} | {len(items)})  # the last: all articles
    pairs_at: dict[int, int] = {}
    rng = np.random.default_rng(0)
    reference_data, reference_array = rng.bytes(16 << 20), rng.random(4 << 20)

    with tempfile.TemporaryDirectory() as tmp:

        def run(max_papers: int) -> float:
            """Seconds of one extraction into a fresh folder (removed afterwards, untimed)."""
            out = Path(tmp) / "out"
            start = time.perf_counter()
            summary = extract_pmc([args.inputs], out, workers=0, progress=False, max_papers=max_papers)
            seconds = time.perf_counter() - start
            pairs_at[max_papers] = summary.pairs
            shutil.rmtree(out)
            return seconds

        run(len(items))  # imports
        measurements: dict[str, Callable[[], float]] = {
            "articles": lambda: timed(lambda: [process_article(item, options) for item in items]),
            "parsing": lambda: timed(lambda: [parse_article(data) for data in xml]),
            **{f"run {k}": (lambda k=k: run(k)) for k in counts},
            "reference": lambda: reference_workload(reference_data, reference_array),
        }
        times: dict[str, list[float]] = {name: [] for name in measurements}
        started = time.perf_counter()
        while len(times["articles"]) < MIN_ROUNDS or time.perf_counter() - started < args.seconds:
            for name, measure in measurements.items():
                times[name].append(measure())

    rounds = len(times["articles"])
    print(
        f"inputs: {args.inputs} ({len(items)} articles, {pairs} pairs), 1 worker, {rounds} interleaved rounds"
    )
    verdict = {}
    for label, stat in (("best round", min), ("median round", statistics.median)):
        per_item, parsing = stat(times["articles"]), stat(times["parsing"])
        seconds_at = [stat(times[f"run {k}"]) for k in counts]
        per_pair, fixed = np.polyfit([pairs_at[k] for k in counts], seconds_at, 1)
        verdict[label] = per_pair
        end_to_end, total = seconds_at[-1], pairs_at[counts[-1]]
        rest = per_item - parsing
        print(f"{label}:")
        print(f"  per-article work : {len(items) / per_item:7.1f} articles/s  {pairs / per_item:7.1f} pairs/s  "
              f"{1000 * per_item / pairs:5.2f} ms/pair")  # fmt: skip
        print(
            f"    XML + captions : {1000 * parsing / pairs:5.2f} ms/pair ({100 * parsing / per_item:4.1f}% of it)"
        )
        print(f"    images + I/O   : {1000 * rest / pairs:5.2f} ms/pair ({100 * rest / per_item:4.1f}%)")
        print(f"  end to end       : {total / end_to_end:7.1f} pairs/s  {1000 * end_to_end / total:5.2f} ms/pair "
              "(extract_pmc, workers=0, incl. planning, parts and shards)")  # fmt: skip
        print(
            f"    split          : {1000 * per_pair:5.2f} ms/pair + {1000 * fixed:5.1f} ms per run "
            f"(fit over {len(counts)} runs of {', '.join(str(pairs_at[k]) for k in counts)} pairs)"
        )
    slowdown = statistics.median(times["reference"]) / min(times["reference"])
    print(f"machine: the reference workload's median round is {slowdown:.2f}x its best")
    met = "met" if verdict["best round"] <= TARGET_S_PER_PAIR else "not met"
    print(
        f"target <= {1000 * TARGET_S_PER_PAIR:g} ms per pair per worker end to end, in a long run, "
        f"on these inputs: {met} "
        f"(best round {1000 * verdict['best round']:.2f} ms/pair, median {1000 * verdict['median round']:.2f})"
    )


if __name__ == "__main__":
    main()
