"""Time to generate the sample corpus (default: ``tiny`` with 2 worker processes, the ``tiny`` profile).

Prints the wall-clock and CPU time of ``generate_sample_corpus`` and the rate per part; the target is
under 2 minutes for ``tiny`` on a 2-core machine.

Run: ``.venv/bin/python benchmarks/bench_sample_corpus.py [--size tiny] [--workers 2] [--seed 0]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sciclip_utils.sample_corpus import SIZES, generate_sample_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cpu = os.times()
        start = time.perf_counter()
        summary = generate_sample_corpus(
            Path(folder) / "corpus", seed=args.seed, size=args.size, workers=args.workers
        )
        seconds = time.perf_counter() - start
        after = os.times()
        cpu_seconds = sum(after[:4]) - sum(cpu[:4])
        megabytes = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20
    eval_images = sum(info["samples"] for info in summary.evalsets.values())
    print(f"sample corpus {args.size!r}, seed {args.seed}, {args.workers} workers ({os.cpu_count()} cores)")
    print(
        f"  generated in {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU (all processes), {megabytes:.1f} MiB"
    )
    print(f"  arXiv: {summary.arxiv['papers']} papers, {summary.arxiv['expected_pairs']} expected pairs")
    print(f"  PMC: {summary.pmc['articles']} articles, {summary.pmc['expected_pairs']} expected pairs")
    print(f"  web pool: {summary.commonpool['written']} images; eval sets: {eval_images} images")
    print(f"  target < 120 s for 'tiny': {'met' if seconds < 120 or args.size != 'tiny' else 'MISSED'}")


if __name__ == "__main__":
    main()
