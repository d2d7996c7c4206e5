"""CommonPool format: samples/s written (``write_dataset``: tar shards, parquet, sizes) and read back
(``iter_samples``), on the sample corpus's web pool re-written ``--copies`` times with distinct captions.

Run: ``.venv/bin/python benchmarks/bench_commonpool.py [--json OUT] [--seconds S] [--copies N]``
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from benchlib import Report, arguments, interleaved, sample_corpus, timed

from sciclip_utils.commonpool import Record, iter_samples, write_dataset
from sciclip_utils.images import PreparedImage

GROUP = "CommonPool"


def records(pool: Path, copies: int) -> list[Record]:
    """The pool's samples as records (already prepared JPEGs: nothing re-encoded), ``copies`` times."""
    samples = list(iter_samples(pool))
    return [
        Record(
            image=PreparedImage(
                s.jpg, s.json["width"], s.json["height"], s.json["original_width"], s.json["original_height"]
            ),
            text=f"{s.text} ({copy})",
            source="web",
            paper_id=s.json.get("uid") or s.key,
            figure_id=str(copy),
        )
        for copy in range(copies)
        for s in samples
    ]


def main() -> None:
    args = arguments(__doc__, copies=(int, 10, "times the web pool is written"))
    report = Report("bench_commonpool")
    rows = records(sample_corpus(args.corpus) / "commonpool", args.copies)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pool"

        def write() -> float:
            shutil.rmtree(out, ignore_errors=True)
            return timed(lambda: write_dataset(rows, out, samples_per_shard=1000))

        def read() -> float:
            return timed(lambda: sum(1 for _ in iter_samples(out)))

        write()
        times = interleaved({"write": write, "read": read}, args.seconds, min_rounds=3)
    report.add(
        GROUP, f"write ({len(rows)} samples, 1000 per shard)", len(rows) / times["write"]["best"], "samples/s"
    )
    report.add(GROUP, "read (iter_samples)", len(rows) / times["read"]["best"], "samples/s")
    report.note(f"best of {times['write']['rounds']} interleaved rounds")
    report.write(args.json)


if __name__ == "__main__":
    main()
