"""Benchmark the cost of per-item isolation (each item in a sandbox child process with a timeout and a
memory cap) against running items in the calling process.

Prints, for a trivial item and for the real PMC fixture articles (when ``../shared/fixtures`` is there):
milliseconds per item with and without isolation in steady state, the overhead per item and per pair, and
what starting a sandbox costs (paid once per worker and run, and again after an item times out or crashes).
Run: ``.venv/bin/python benchmarks/bench_isolation.py [--items N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

from sciclip_utils.extract.items import ItemResult, WorkItem
from sciclip_utils.extract.sandbox import ItemLimits, _Sandbox, run_item

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "pmc"
PMC_TARGET_MS_PER_PAIR = 4.0


def trivial(item: WorkItem) -> ItemResult:
    """An item that does nothing: what remains is the runner's own cost."""
    return ItemResult([], status="skipped", stage="bench", reason="nothing to do")


def per_item_ms(items: list[WorkItem], process, limits: ItemLimits | None, rounds: int) -> tuple[float, int]:
    """Best over rounds (the least disturbed by other load) of the mean milliseconds per item, in steady
    state (one sandbox for all rounds, started by a warm-up round); the pairs written in one round."""
    means, pairs = [], 0
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(rounds + 1):
            started = time.perf_counter()
            rows = [run_item(item, process, folder, limits) for item in items]
            if round_:  # round 0 is the warm-up
                means.append((time.perf_counter() - started) * 1000 / len(items))
            pairs = sum(row["pairs_written"] for row in rows)
        _Sandbox.close_current()
    return min(means), pairs


def sandbox_start_ms(rounds: int) -> float:
    """Milliseconds for the first item of a run: forking the sandbox and its first round trip."""
    times = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            run_item(WorkItem("k", "in", "p"), trivial, folder, ItemLimits())
            times.append((time.perf_counter() - started) * 1000)
            _Sandbox.close_current()
    return statistics.median(times)


def pmc_items() -> tuple[list[WorkItem], functools.partial] | None:
    if not FIXTURES.is_dir():
        return None
    from sciclip_utils.pmc import Options, plan_inputs, process_article

    plan = plan_inputs([FIXTURES])
    return plan.items, functools.partial(process_article, options=Options())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=500, help="trivial items per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    limits = ItemLimits()
    items = [WorkItem(f"k{n:06d}", "in", f"p{n}") for n in range(args.items)]
    plain, _ = per_item_ms(items, trivial, None, args.rounds)
    isolated, _ = per_item_ms(items, trivial, limits, args.rounds)
    print(
        f"trivial item: {plain:.3f} ms in process, {isolated:.3f} ms isolated, "
        f"overhead {isolated - plain:.3f} ms/item"
    )
    print(f"sandbox start (fork + first item): {sandbox_start_ms(args.rounds):.1f} ms")
    pmc = pmc_items()
    if pmc is None:
        print(f"PMC fixtures not found at {FIXTURES}: real-article figures skipped")
        return
    articles, process = pmc
    plain, pairs = per_item_ms(articles, process, None, args.rounds)
    isolated, _ = per_item_ms(articles, process, limits, args.rounds)
    n = len(articles)
    print(
        f"PMC fixtures ({n} articles, {pairs} pairs): {plain * n / pairs:.2f} ms/pair in process, "
        f"{isolated * n / pairs:.2f} ms/pair isolated, overhead {(isolated - plain) * n / pairs:.3f} ms/pair "
        f"(target <= {PMC_TARGET_MS_PER_PAIR} ms/pair in all)"
    )


if __name__ == "__main__":
    main()
