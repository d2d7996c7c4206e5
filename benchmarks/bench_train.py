"""Training throughput of a profile on this machine, and the data-loading rate alone (which side limits).

Runs ``train_condition`` for a few steps on a CommonPool folder (default: the micro sample corpus's web pool,
generated into a temporary folder) and reads samples/s from the run's log; then iterates open_clip_train's
own training data pipeline (same arguments, no model step) and times it. The machine's load average is
printed too: on a shared machine both figures fall with it.

Run: ``.venv/bin/python benchmarks/bench_train.py [--data DIR] [--profile tiny] [--steps 30]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sciclip_utils.profiles import stage_params
from sciclip_utils.sample_corpus import generate_sample_corpus
from sciclip_utils.train import (
    inspect_source,
    mixture,
    open_clip_argv,
    register_model_configs,
    train_condition,
)
from sciclip_utils.train_report import read_curves


def loader_rate(data_dir: Path, params: dict, batches: int) -> float:
    """Samples/s of open_clip_train's webdataset pipeline alone (decode, augment, tokenize, batch)."""
    import open_clip
    from open_clip_train.data import get_data
    from open_clip_train.params import parse_args

    register_model_configs()
    train_data, factors, _ = mixture([inspect_source("commonpool", data_dir)])
    args = parse_args(open_clip_argv(params, train_data, factors, Path("unused"), "bench", world_size=1))
    args.world_size, args.rank, args.distributed = 1, 0, False
    _, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(params["model"])
    tokenizer = open_clip.get_tokenizer(params["model"])
    loader = get_data(args, (preprocess_train, preprocess_val), epoch=0, tokenizer=tokenizer)[
        "train"
    ].dataloader
    iterator = iter(loader)
    next(iterator)  # worker start-up
    start, seen = time.perf_counter(), 0
    for _, (images, _texts) in zip(range(batches), iterator, strict=False):
        seen += len(images)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="CommonPool folder (default: micro web pool)")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    params = stage_params(args.profile, "train")
    batch = params["batch_size"]
    with tempfile.TemporaryDirectory() as folder:
        data = args.data
        if data is None:
            generate_sample_corpus(Path(folder) / "corpus", seed=0, size="micro", workers=1)
            data = Path(folder) / "corpus" / "commonpool"
        load_before = os.getloadavg()[0]
        run_dir = train_condition(
            "commonpool",
            profile=args.profile,
            data_dirs={"commonpool": data},
            out_dir=Path(folder) / "runs",
            samples_seen=args.steps * batch,
            checkpoints=1,
            console_log=False,
        )
        curves = read_curves(run_dir).iloc[2:]  # the first steps include start-up
        rate = loader_rate(data, {**params, "samples_seen": args.steps * batch, "checkpoints": 1}, args.steps)
        load_after = os.getloadavg()[0]
    training = float(curves["samples_per_s"].median())
    waiting = float(curves["data_time"].median() / curves["batch_time"].median())
    print(f"profile {args.profile!r}: model {params['model']}, batch {batch}, precision {params['precision']}, "
          f"{params['workers']} loader worker(s), {os.cpu_count()} cores, load average {load_before:.1f} -> {load_after:.1f}")  # fmt: skip
    print(f"  training: {training:.1f} samples/s (median of {len(curves)} steps), "
          f"{100 * waiting:.0f}% of a step waiting for data")  # fmt: skip
    print(f"  data loading alone: {rate:.1f} samples/s")
    side = "data loading" if rate < training * 1.2 else "the model step (compute)"
    print(f"  limiting side: {side}")
    print("  (CPU only: no GPU was available when this was written, so no GPU figures are given)")


if __name__ == "__main__":
    main()
