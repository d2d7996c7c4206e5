"""Training throughput at the ``tiny`` profile on this machine, and the data-loading rate alone (which side
limits).

Runs ``sciclip_utils.train.train_condition`` for ``--steps`` steps on the sample corpus's web pool and
reads samples/s from the run's log (median step, the first two left out: start-up); then iterates
open_clip_train's own training data pipeline (same arguments, no model step) and times it, beside it.

Run: ``.venv/bin/python benchmarks/bench_train.py [--json OUT] [--corpus DIR] [--steps N]``
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchlib import Report, arguments, sample_corpus

from sciclip_utils.profiles import stage_params
from sciclip_utils.train import (
    inspect_source,
    mixture,
    open_clip_argv,
    register_model_configs,
    train_condition,
)
from sciclip_utils.train_report import read_curves

GROUP = "training"
PROFILE = "tiny"


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
    data = get_data(args, (preprocess_train, preprocess_val), epoch=0, tokenizer=tokenizer)
    iterator = iter(data["train"].dataloader)
    next(iterator)  # worker start-up
    start, seen = time.perf_counter(), 0
    for _, (images, _texts) in zip(range(batches), iterator, strict=False):
        seen += len(images)
    return seen / (time.perf_counter() - start)


def main() -> None:
    args = arguments(__doc__, steps=(int, 12, "training steps"))
    report = Report("bench_train")
    params = stage_params(PROFILE, "train")
    batch = params["batch_size"]
    data = sample_corpus(args.corpus) / "commonpool"
    with tempfile.TemporaryDirectory() as folder:
        run_dir = train_condition(
            "commonpool",
            profile=PROFILE,
            data_dirs={"commonpool": data},
            out_dir=Path(folder) / "runs",
            samples_seen=args.steps * batch,
            checkpoints=1,
            console_log=False,
        )
        curves = read_curves(run_dir).iloc[2:]  # the first steps include start-up
        rate = loader_rate(data, {**params, "samples_seen": args.steps * batch, "checkpoints": 1}, args.steps)
    training = float(curves["samples_per_s"].median())
    waiting = float(curves["data_time"].median() / curves["batch_time"].median())
    name = f"train {params['model']} ({PROFILE}: batch {batch}, {params['precision']}, {params['workers']} loader)"
    report.add(GROUP, name, training, "samples/s", note=f"median of {len(curves)} steps")
    report.add(GROUP, "  share of a step waiting for data", 100 * waiting, "%")
    report.add(GROUP, "data loading alone (same pipeline, no model)", rate, "samples/s",
               baseline=training, baseline_name="training", note="above 1: the model step limits")  # fmt: skip
    report.write(args.json)


if __name__ == "__main__":
    main()
