"""Training speed at the ``tiny`` profile: samples/s of open_clip_train (``open_clip_train.main.main``, in
this process, the profile's model, batch, precision and loader workers) on the sample corpus's web pool,
and the rate of its data loading alone (the same webdataset loader iterated without a model).

Written against open_clip_train directly; ``sciclip_utils.train`` (when present) is not needed here.

Run: ``.venv/bin/python benchmarks/bench_train.py [--json OUT] [--steps N]``
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from pathlib import Path

from benchlib import Report, arguments, sample_corpus

from sciclip_utils.commonpool import shard_paths
from sciclip_utils.profiles import stage_params

GROUP = "training"
MODEL_CONFIGS = Path(__file__).resolve().parents[1] / "sciclip_utils" / "model_configs"
BATCH_LINE = re.compile(r"Data \(t\): ([\d.]+) Batch \(t\): ([\d.]+)")


def train_argv(shards: list[Path], params: dict, steps: int, logs: Path) -> list[str]:
    """open_clip_train's flags for ``steps`` batches of the profile's training on ``shards``."""
    first, last = shards[0].stem, shards[-1].stem
    pattern = str(shards[0].parent / f"{{{first}..{last}}}.tar")
    return [
        "--train-data", pattern, "--dataset-type", "webdataset", "--dataset-resampled",
        "--train-num-samples", str(steps * params["batch_size"]), "--model", params["model"],
        "--batch-size", str(params["batch_size"]), "--epochs", "1", "--workers", str(params["workers"]),
        "--device", "cpu", "--precision", params["precision"], "--lr", str(params["lr"]),
        "--warmup", str(params["warmup"]), "--wd", str(params["wd"]), "--beta2", str(params["beta2"]),
        "--seed", str(params["seed"]), "--logs", str(logs), "--name", "bench", "--report-to", "",
        "--log-every-n-steps", "1", "--save-frequency", "0",
    ]  # fmt: skip


def loading_rate(argv: list[str], steps: int) -> float:
    """Samples/s of open_clip_train's training loader alone (after its first batch)."""
    import open_clip
    from open_clip_train.data import get_data
    from open_clip_train.params import parse_args

    args = parse_args(argv)
    args.distributed, args.world_size, args.rank, args.local_rank = False, 1, 0, 0
    _, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(args.model)
    data = get_data(
        args, (preprocess_train, preprocess_val), epoch=0, tokenizer=open_clip.get_tokenizer(args.model)
    )
    batches = iter(data["train"].dataloader)
    next(batches)
    start = time.perf_counter()
    count = sum(len(images) for _, (images, _) in zip(range(steps - 1), batches, strict=False))
    return count / (time.perf_counter() - start)


def main() -> None:
    args = arguments(__doc__, steps=(int, 12, "training steps timed"))
    report = Report("bench_train")
    import open_clip
    from open_clip_train.main import main as train_main

    open_clip.add_model_config(MODEL_CONFIGS)
    params = stage_params("tiny", "train")
    shards = shard_paths(sample_corpus(args.corpus) / "commonpool")
    with tempfile.TemporaryDirectory() as tmp:
        argv = train_argv(shards, params, args.steps, Path(tmp) / "logs")
        start = time.perf_counter()
        train_main(argv)
        wall = time.perf_counter() - start
        log = (Path(tmp) / "logs" / "bench" / "out.log").read_text()
        logging.root.handlers.clear()  # open_clip_train's handlers write to the folder removed here
        logging.disable(logging.INFO)  # it set every logger to INFO: torch's statistics at exit
        lines = BATCH_LINE.findall(log)
        loading = loading_rate(argv, args.steps)
    if not lines:
        raise SystemExit("open_clip_train logged no training steps")
    data_s, batch_s = (float(x) for x in lines[-1])
    rate = params["batch_size"] / batch_s
    report.add(GROUP, f"train {params['model']} (tiny: batch {params['batch_size']}, {params['precision']})", rate, "samples/s",
               note=f"open_clip_train's mean over {len(lines)} steps; {wall:.0f} s with start-up")  # fmt: skip
    report.add(GROUP, "  waiting for data per step", 1000 * data_s, "ms/step")
    report.add(GROUP, "data loading alone (same loader, no model)", loading, "samples/s",
               baseline=rate, baseline_name="training", note="how far ahead of training the loader is")  # fmt: skip
    report.write(args.json)


if __name__ == "__main__":
    main()
