"""PMC extraction speed per worker on the real fixtures (in-process, one core).

Prints articles/s and pairs/s for the per-article work a Dask worker does (read the package, parse the
XML, captions, map and re-encode the images), the share of it spent in XML/captions vs images, and the
end-to-end rate of ``extract_pmc(workers=0)`` including the shard writing (each a fresh output folder).
End to end is also split, by a straight-line fit over runs of 4 to all articles, into a fixed cost per
run (starting the item sandbox, markers, manifest) and the cost per pair, which is what a long run pays.

Run: ``.venv/bin/python benchmarks/bench_pmc.py [--repeats N]``
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from sciclip_utils.extract import ExtractionSummary, WorkItem, keep_freed_memory
from sciclip_utils.pmc import Options, extract_pmc, open_article, parse_article, plan_inputs, process_article

TARGET_S_PER_PAIR = 0.004
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "pmc"


def article_xml(item: WorkItem) -> bytes:
    files, xml_name = open_article(item)
    return files.read(xml_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=Path, default=FIXTURES, help="PMC inputs (default: the fixtures)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes; the fastest is reported")
    args = parser.parse_args()
    if not args.inputs.exists():
        raise SystemExit(f"no inputs at {args.inputs} (the fixtures live in ../shared/fixtures)")
    keep_freed_memory()  # as in the sandbox process that runs the items of an extraction
    items = plan_inputs([args.inputs]).items
    options = Options()
    pairs = sum(len(process_article(item, options).records) for item in items)  # warm-up (imports, caches)

    def best_of(work: Callable[[], Any]) -> tuple[float, Any]:
        """The fastest of the timed passes, and what the work returned."""
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = work()
            times.append(time.perf_counter() - start)
        return min(times), result

    xml = [article_xml(item) for item in items]
    per_item, _ = best_of(lambda: [process_article(item, options) for item in items])
    parsing, _ = best_of(lambda: [parse_article(data) for data in xml])
    with tempfile.TemporaryDirectory() as tmp:
        runs = itertools.count()

        def run(max_papers: int | None = None) -> ExtractionSummary:
            out = Path(tmp) / str(next(runs))
            return extract_pmc([args.inputs], out, workers=0, progress=False, max_papers=max_papers)

        run()  # imports
        counts = sorted({min(k, len(items)) for k in (4, 8, 12, 16)} | {len(items)})
        timed = [best_of(partial(run, k)) for k in counts]  # the last: all articles
    seconds_at = [seconds for seconds, _ in timed]
    pairs_at = [summary.pairs for _, summary in timed]
    end_to_end, summary = timed[-1]
    per_pair, fixed = np.polyfit(pairs_at, seconds_at, 1)

    print(f"inputs: {args.inputs} ({len(items)} articles, {pairs} pairs), best of {args.repeats}, 1 worker")
    print(f"per-article work : {len(items) / per_item:7.1f} articles/s  {pairs / per_item:7.1f} pairs/s  "
          f"{1000 * per_item / pairs:5.2f} ms/pair")  # fmt: skip
    print(
        f"  XML + captions : {1000 * parsing / pairs:5.2f} ms/pair ({100 * parsing / per_item:4.1f}% of it)"
    )
    rest = per_item - parsing
    print(f"  images + I/O   : {1000 * rest / pairs:5.2f} ms/pair ({100 * rest / per_item:4.1f}%)")
    print(f"end to end       : {summary.pairs / end_to_end:7.1f} pairs/s  {1000 * end_to_end / summary.pairs:5.2f} "
          "ms/pair (extract_pmc, workers=0, incl. planning, parts and shards)")  # fmt: skip
    print(
        f"  split          : {1000 * per_pair:5.2f} ms/pair + {1000 * fixed:5.1f} ms per run "
        f"(fit over {len(counts)} runs of {', '.join(map(str, pairs_at))} pairs)"
    )
    verdict = "met" if per_pair <= TARGET_S_PER_PAIR else "not met"
    print(
        f"target <= {1000 * TARGET_S_PER_PAIR:g} ms per pair per worker end to end, in a long run: {verdict}"
    )


if __name__ == "__main__":
    main()
