"""Benchmark arXiv extraction on the real fixture papers: one worker, in this process.

Prints papers/s and pairs/s per worker, seconds per pair, and the share of time spent converting images
(load + render + composite + JPEG) versus LaTeX handling (package, main file, includes, macros, captions).
Run: ``.venv/bin/python benchmarks/bench_arxiv.py [FIXTURES_ARXIV_DIR] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sciclip_utils.arxiv import paper_id_from_name, process_item
from sciclip_utils.extract import WorkItem

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "arxiv"
TARGET_SECONDS_PER_PAIR = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("inputs", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (after one warm-up)")
    args = parser.parse_args()
    papers = sorted(args.inputs.glob("*.gz"))
    if not papers:
        raise SystemExit(f"no .gz papers in {args.inputs}")
    items = [WorkItem(key=str(p), input=str(p), paper_id=paper_id_from_name(p.name)) for p in papers]
    for item in items:  # warm-up: imports, pypdfium2 and Ghostscript start-up
        process_item(item)

    print(f"{'paper':<24}{'pairs':>6}{'s/paper':>9}{'s/pair':>8}{'images':>8}")
    totals = {"seconds": 0.0, "image": 0.0, "pairs": 0, "papers": 0}
    for item in items:
        best = None
        for _ in range(args.rounds):
            started = time.perf_counter()
            result = process_item(item)
            seconds = time.perf_counter() - started
            if best is None or seconds < best[0]:
                best = (seconds, result.extra["image_seconds"], len(result.records))
        seconds, image_seconds, pairs = best
        totals["seconds"] += seconds
        totals["image"] += image_seconds
        totals["pairs"] += pairs
        totals["papers"] += 1
        print(
            f"{item.paper_id:<24}{pairs:>6}{seconds:>9.3f}{seconds / max(pairs, 1):>8.3f}"
            f"{image_seconds / seconds:>8.0%}"
        )

    seconds, image = totals["seconds"], totals["image"]
    papers, pairs = totals["papers"], totals["pairs"]
    print(f"\n{papers} papers, {pairs} pairs in {seconds:.2f} s (best of {args.rounds}, 1 worker)")
    print(f"papers/s per worker: {papers / seconds:.2f}")
    print(f"pairs/s per worker:  {pairs / seconds:.2f}")
    print(f"seconds per pair:    {seconds / max(pairs, 1):.3f} (target <= {TARGET_SECONDS_PER_PAIR})")
    print(
        f"time in image conversion: {image / seconds:.0%}, LaTeX and package handling: {1 - image / seconds:.0%}"
    )


if __name__ == "__main__":
    main()
