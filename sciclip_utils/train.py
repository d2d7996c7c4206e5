"""Training: OpenCLIP on the paper's data conditions, from a 2-core CPU to a GPU cluster.

A *condition* is data, not code: a name, the CommonPool-format sources it trains on (``arxiv``, ``pmc``,
``commonpool``: decontaminated folders by default) and optionally a DataComp uid subset ``.npy`` that
selects samples from them. The built-in conditions are the paper's: ``commonpool`` (baseline), ``sci``
(arXiv+PMC) and ``mix`` (all three). Every condition gets the same budget (``samples_seen``).

Training is ``open_clip_train`` run in-process (so the package's model configs are registered), with
DataComp's recipe (``train.py`` of mlfoundations/datacomp): the budget split into ``checkpoints`` "epochs"
of resampled shards, sources joined with ``::``, the global batch divided by the world size, ``--resume
latest`` with ``--save-most-recent``. A run lives in ``<out>/<condition>/``: ``config.json`` (written before
training), open_clip's ``out.log`` and ``params.txt``, ``checkpoints/epoch_<k>.pt``. Rerunning resumes;
a finished run is reported and kept unless ``force``. Under ``torchrun`` or ``srun`` each process calls the
same code (``python -m sciclip_utils.train``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from sciclip_utils.commonpool import (
    apply_uid_subset,
    array_to_uids,
    atomic_write,
    load_uid_subset,
    read_metadata,
    shard_dir,
    shard_paths,
)
from sciclip_utils.profiles import add_profile_option, apply_profile, paths, stage_params

MODEL_CONFIGS = Path(__file__).parent / "model_configs"
BUILTIN_CONDITIONS: dict[str, tuple[str, ...]] = {
    "commonpool": ("commonpool",),
    "sci": ("arxiv", "pmc"),
    "mix": ("commonpool", "arxiv", "pmc"),
}
CONFIG_FILE = "config.json"
SUBSET_MARKER = "subset.json"
# Compared between a run folder's config.json and a new request before resuming it.
SETTINGS_KEYS = ("condition", "sources", "subset", "params")
NOT_SETTINGS = ("conditions", "threads")  # parameters that do not change what a run computes


@dataclass(frozen=True)
class Condition:
    """A named training set: CommonPool-format sources, optionally filtered by a DataComp uid subset."""

    name: str
    sources: tuple[str, ...]
    subset: str | None = None

    @classmethod
    def from_spec(cls, spec: str | Mapping[str, Any]) -> Condition:
        """A built-in name, or ``{"name": ..., "sources": [...], "subset": "path.npy"}``."""
        if isinstance(spec, str):
            if spec not in BUILTIN_CONDITIONS:
                raise ValueError(
                    f"unknown condition {spec!r}; built in: {', '.join(BUILTIN_CONDITIONS)}; define others as "
                    '{"name": ..., "sources": [...], "subset": optional .npy} in the conditions parameter'
                )
            return cls(spec, BUILTIN_CONDITIONS[spec])
        unknown = set(spec) - {"name", "sources", "subset"}
        if unknown or not spec.get("name") or not spec.get("sources"):
            raise ValueError(
                f"a condition needs 'name' and 'sources' (and optionally 'subset'), got {dict(spec)}"
            )
        subset = spec.get("subset")
        return cls(str(spec["name"]), tuple(spec["sources"]), str(subset) if subset else None)


def resolve_condition(name: str, conditions: Sequence[str | Mapping[str, Any]] = ()) -> Condition:
    """The condition called ``name``: one defined in ``conditions`` (the profile's list), else a built-in."""
    for spec in conditions:
        condition = Condition.from_spec(spec)
        if condition.name == name:
            return condition
    return Condition.from_spec(name)


@dataclass(frozen=True)
class Source:
    """One source of a condition as training reads it."""

    name: str
    directory: str
    shards: tuple[str, ...]  # shard file names in the shard folder
    samples: int

    @property
    def pattern(self) -> str:
        """The shards as one brace pattern (what ``--train-data`` takes)."""
        folder = shard_dir(self.directory)
        stems = [Path(name).stem for name in self.shards]
        numbers = [int(stem) if stem.isdigit() else None for stem in stems]
        width = len(stems[0])
        contiguous = None not in numbers and numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        if len(stems) == 1:
            braces = stems[0]
        elif contiguous and all(len(stem) == width for stem in stems):
            braces = f"{{{stems[0]}..{stems[-1]}}}"
        else:
            braces = "{" + ",".join(stems) + "}"
        return str(folder / f"{braces}.tar")


def inspect_source(name: str, directory: str | Path) -> Source:
    """The shards and sample count of a CommonPool-format folder; a clear error if it is missing or empty."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"source {name!r}: data directory {directory} does not exist")
    shards = shard_paths(directory)
    if not shards:
        raise ValueError(f"source {name!r}: no .tar shards in {shard_dir(directory)}")
    sizes_file = shard_dir(directory) / "sizes.json"
    if sizes_file.is_file():
        sizes = json.loads(sizes_file.read_text())
        samples = sum(int(sizes.get(path.name, 0)) for path in shards)
    else:
        samples = len(read_metadata(directory))
    if samples == 0:
        raise ValueError(f"source {name!r}: {directory} holds no samples")
    return Source(name, str(directory), tuple(path.name for path in shards), samples)


def mixture(sources: Sequence[Source]) -> tuple[str, str | None, dict[str, float]]:
    """``--train-data``, ``--train-data-upsampling-factors`` and each source's expected share of samples.

    open_clip draws shards with replacement, each with its source's factor as weight. A source then
    supplies ``factor * samples`` in expectation, so equal factors sample every source in proportion to
    its size (the paper's mix: about 86% CommonPool, 8% arXiv, 6% PMC)."""
    total = sum(source.samples for source in sources)
    shares = {source.name: source.samples / total for source in sources}
    factors = "::".join("1" for _ in sources) if len(sources) > 1 else None
    return "::".join(source.pattern for source in sources), factors, shares


def register_model_configs() -> None:
    """Make the package's model configs (``sciclip-tiny``, ...) known to open_clip in this process."""
    import open_clip

    if not set(open_clip.list_models()) >= {path.stem for path in MODEL_CONFIGS.glob("*.json")}:
        open_clip.add_model_config(MODEL_CONFIGS)


def check_model(model: str) -> None:
    """A clear error for a model name open_clip does not know."""
    import open_clip

    register_model_configs()
    if model not in open_clip.list_models():
        raise ValueError(
            f"unknown model {model!r}: not an open_clip model nor in {MODEL_CONFIGS} "
            f"(e.g. {', '.join(['sciclip-tiny', 'ViT-B-32', 'ViT-B-16'])})"
        )


def world() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment (torchrun, SLURM, MPI); (0, 1) when alone."""
    from open_clip_train.distributed import world_info_from_env

    _, rank, world_size = world_info_from_env()
    return rank, world_size


def steps_per_epoch(samples: int, global_batch: int, workers: int) -> int:
    """Optimizer steps in one "epoch" as open_clip_train counts them (rounded up to whole worker shares)."""
    workers = max(1, workers)
    return math.ceil(math.ceil(samples / global_batch) / workers) * workers


def planned_steps(params: Mapping[str, Any]) -> int:
    """Optimizer steps of a whole run with these train parameters."""
    checkpoints = int(params["checkpoints"])
    per_checkpoint = int(params["samples_seen"]) // checkpoints
    return checkpoints * steps_per_epoch(per_checkpoint, int(params["batch_size"]), int(params["workers"]))


def open_clip_argv(
    params: Mapping[str, Any], train_data: str, factors: str | None, logs: Path, name: str, world_size: int
) -> list[str]:
    """open_clip_train's arguments: DataComp's ``train.py`` recipe with the profile's values."""
    import torch

    batch, checkpoints = int(params["batch_size"]), int(params["checkpoints"])
    argv = [
        "--save-frequency", "0", "--ddp-static-graph", "--local-loss", "--gather-with-grad",
        *(["--grad-checkpointing"] if params["grad_checkpointing"] else []), "--train-data", train_data,
        "--train-num-samples", str(int(params["samples_seen"]) // checkpoints),
        "--warmup", str(params["warmup"]), "--dataset-type", "webdataset", "--precision", params["precision"],
        "--workers", str(params["workers"]), "--model", params["model"], "--batch-size", str(batch // world_size),
        "--epochs", str(checkpoints), "--lr", str(params["lr"]), "--wd", str(params["wd"]),
        "--beta2", str(params["beta2"]), "--logs", str(logs), "--name", name, "--seed", str(params["seed"]),
        "--accum-freq", "1", "--log-every-n-steps", str(params["log_every_n_steps"]),
        "--save-most-recent", "--resume", "latest", "--dataset-resampled", "--report-to", "",
    ]  # fmt: skip
    if factors is not None:
        argv += ["--train-data-upsampling-factors", factors]
    if not torch.cuda.is_available():
        argv += ["--device", "cpu"]
    return argv


@contextmanager
def restored_logging() -> Iterator[None]:
    """Undo open_clip_train's ``setup_logging`` afterwards: it sets every logger to INFO and adds a stream and
    a file handler to the root logger, which would otherwise repeat every message of later runs (and print
    torch's statistics at exit)."""
    loggers = logging.root.manager.loggerDict
    levels = {name: logger.level for name, logger in loggers.items() if isinstance(logger, logging.Logger)}
    root_level, root_handlers = logging.root.level, list(logging.root.handlers)
    try:
        yield
    finally:
        for name, logger in list(loggers.items()):
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))
        for handler in set(logging.root.handlers) - set(root_handlers):
            handler.close()
        logging.root.handlers[:] = root_handlers
        logging.root.setLevel(root_level)


@contextmanager
def cpu_ddp() -> Iterator[None]:
    """open_clip_train wraps the model in ``DistributedDataParallel(model, device_ids=[device])``, which
    torch rejects for a CPU module; within this context CPU device ids are dropped (gloo on CPU)."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    class CpuFriendlyDDP(DistributedDataParallel):
        def __init__(self, module: Any, device_ids: Any = None, **kwargs: Any) -> None:
            if device_ids and all(torch.device(device).type == "cpu" for device in device_ids):
                device_ids = None
            super().__init__(module, device_ids=device_ids, **kwargs)

    original = torch.nn.parallel.DistributedDataParallel
    torch.nn.parallel.DistributedDataParallel = CpuFriendlyDDP
    try:
        yield
    finally:
        torch.nn.parallel.DistributedDataParallel = original


def final_checkpoint(run_dir: str | Path, checkpoints: int) -> Path:
    """The checkpoint open_clip_train writes at the end of the last "epoch"."""
    return Path(run_dir) / "checkpoints" / f"epoch_{checkpoints}.pt"


def train_condition(
    condition: str,
    *,
    profile: str = "tiny",
    data_dirs: Mapping[str, str | Path] | None = None,
    out_dir: str | Path | None = None,
    force: bool = False,
    console_log: bool = True,
    **overrides: Any,
) -> Path:
    """Train one condition with the profile's train parameters (``overrides`` replace them); the run folder.

    ``data_dirs`` maps source names to CommonPool folders (default: the profile's decontaminated sources);
    runs go to ``out_dir/<condition>`` (default ``paths(profile).train``); open_clip_train's log goes to the
    run's ``out.log`` and, if ``console_log``, to stderr. Every input is checked before anything is written."""
    params = stage_params(profile, "train", **overrides)
    spec = resolve_condition(condition, params["conditions"])
    directories = {**paths(profile).decontaminated_sources(), **(data_dirs or {})}
    missing = [source for source in spec.sources if source not in directories]
    if missing:
        raise ValueError(f"condition {spec.name!r}: no data directory for {missing}; pass SOURCE=DIR")
    rank, world_size = world()
    check_model(params["model"])
    _check_budget(params, world_size)
    sources = [inspect_source(source, directories[source]) for source in spec.sources]
    selected = _selected_counts(spec, sources) if spec.subset else None
    run_dir = Path(out_dir or paths(profile).train) / spec.name
    settings = {
        "condition": spec.name,
        "sources": {source.name: source.directory for source in sources},
        "subset": spec.subset,
        "params": {key: value for key, value in params.items() if key not in NOT_SETTINGS},
    }
    _check_same_settings(run_dir, settings, force)
    final = final_checkpoint(run_dir, int(params["checkpoints"]))
    if final.is_file() and not force:
        if rank == 0:
            print(f"condition {spec.name!r} is already trained: {final} (force=True / --force retrains)")
        return run_dir
    if selected is not None:
        sources = _materialise_subset(spec, sources, selected, run_dir / "data", rank)
    train_data, factors, shares = mixture(sources)
    argv = open_clip_argv(params, train_data, factors, run_dir.parent, spec.name, world_size)
    if rank == 0:
        if force:
            _remove_training_outputs(run_dir)
        config = {
            **settings,
            "profile": profile,
            "world_size": world_size,
            "global_batch": int(params["batch_size"]),
            "steps": planned_steps(params),
            "data": [asdict(source) for source in sources],
            "expected_share": shares,
            "open_clip_train_argv": argv,
        }
        atomic_write(run_dir / CONFIG_FILE, json.dumps(config, indent=2).encode())
        print(
            f"training {spec.name!r}: {config['steps']} steps on {world_size} process(es) -> {run_dir}",
            flush=True,
        )
    _run_open_clip_train(argv, params["threads"], console_log)
    if not final.is_file():
        raise RuntimeError(f"open_clip_train ended without writing {final}; see {run_dir / 'out.log'}")
    return run_dir


def _check_budget(params: Mapping[str, Any], world_size: int) -> None:
    batch, checkpoints = int(params["batch_size"]), int(params["checkpoints"])
    if batch < 1 or checkpoints < 1:
        raise ValueError(f"batch_size ({batch}) and checkpoints ({checkpoints}) must be positive")
    if batch % world_size:
        raise ValueError(f"the global batch_size {batch} is not divisible by the world size {world_size}")
    if int(params["samples_seen"]) // checkpoints < batch:
        raise ValueError(
            f"budget too small: samples_seen {params['samples_seen']} over {checkpoints} checkpoints is less "
            f"than one batch ({batch}) per checkpoint"
        )


def _selected_counts(spec: Condition, sources: Sequence[Source]) -> dict[str, int]:
    """Samples of each source the condition's uid subset selects; errors if it selects none at all."""
    subset = Path(str(spec.subset))
    if not subset.is_file():
        raise FileNotFoundError(f"condition {spec.name!r}: uid subset {subset} does not exist")
    wanted = set(array_to_uids(load_uid_subset(subset)))
    counts = {
        source.name: int(read_metadata(source.directory)["uid"].isin(wanted).sum()) for source in sources
    }
    if not any(counts.values()):
        raise ValueError(f"condition {spec.name!r}: the subset {subset} selects no sample of {list(counts)}")
    return counts


def _materialise_subset(
    spec: Condition, sources: Sequence[Source], counts: Mapping[str, int], data_root: Path, rank: int
) -> list[Source]:
    """Copy each source's selected samples to ``data_root/<source>`` (rank 0; other ranks wait for it)."""
    digest = hashlib.sha256(Path(str(spec.subset)).read_bytes()).hexdigest()
    selected = []
    for source in sources:
        if not counts[source.name]:
            continue
        target = data_root / source.name
        fingerprint = {"subset_sha256": digest, "source": source.directory, "source_samples": source.samples}
        marker = target / SUBSET_MARKER
        if rank == 0 and not _marker_matches(marker, fingerprint):
            staging = data_root / f".{source.name}.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(target, ignore_errors=True)
            apply_uid_subset(source.directory, Path(str(spec.subset)), staging)
            staging.rename(target)
            atomic_write(marker, json.dumps(fingerprint).encode())
        while not _marker_matches(marker, fingerprint):
            time.sleep(1)
        selected.append(inspect_source(source.name, target))
    return selected


def _marker_matches(marker: Path, fingerprint: Mapping[str, Any]) -> bool:
    return marker.is_file() and json.loads(marker.read_text()) == fingerprint


def _check_same_settings(run_dir: Path, settings: Mapping[str, Any], force: bool) -> None:
    config_file = run_dir / CONFIG_FILE
    if force or not config_file.is_file():
        return
    previous = json.loads(config_file.read_text())
    changed = [key for key in SETTINGS_KEYS if previous.get(key) != settings[key]]
    if changed:
        raise ValueError(
            f"{run_dir} holds a run with other settings ({', '.join(changed)} differ): "
            "use force=True / --force to retrain it, or another out directory"
        )


def _remove_training_outputs(run_dir: Path) -> None:
    """Everything of a previous run except the materialised subsets in ``data/``."""
    if run_dir.is_dir():
        for child in run_dir.iterdir():
            if child.name != "data":
                shutil.rmtree(child) if child.is_dir() else child.unlink()


def _run_open_clip_train(argv: list[str], threads: int | None, console_log: bool) -> None:
    """``open_clip_train.main.main(argv)`` in this process (with ``threads`` torch threads if given); the
    process group is closed afterwards. Without ``console_log`` its stream handler writes to nowhere (it binds
    ``sys.stderr`` when created)."""
    import torch
    import torch.distributed as dist
    from open_clip_train.main import main as train_main

    register_model_configs()
    default_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads or default_threads)
        with (
            restored_logging(),
            cpu_ddp(),
            open(os.devnull, "w") as devnull,
            redirect_stderr(sys.stderr if console_log else devnull),
        ):
            result = train_main(argv)
    finally:
        torch.set_num_threads(default_threads)
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if result == -1:
        raise RuntimeError(f"open_clip_train refused to run (see its message above); arguments: {argv}")


def cli_configure(parser: argparse.ArgumentParser) -> None:
    """``sciclip train --profile P --condition NAME [--data SOURCE=DIR ...] [--out DIR] [--force] [-p K V]``."""
    add_profile_option(parser)
    parser.add_argument(
        "--condition", required=True, help="commonpool, sci, mix, or one defined in -p conditions"
    )
    parser.add_argument(
        "--data", action="append", default=[], metavar="SOURCE=DIR",
        help="CommonPool folder of a source (default: the profile's decontaminated/<source>)",
    )  # fmt: skip
    parser.add_argument("--out", default=None, help="folder of the runs (default: runs/<profile>/train)")
    parser.add_argument(
        "--force", action="store_true", help="retrain a finished or differently configured run"
    )
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
        help="train parameter of the profile (VALUE parsed as YAML), e.g. -p samples_seen 4096",
    )  # fmt: skip


def cli_run(args: argparse.Namespace) -> int:
    """Train the condition; the run folder is printed on the last line."""
    known = stage_params(args.profile, "train")
    for key, value in args.parameter:
        if key not in known:
            raise ValueError(f"unknown train parameter {key!r}; the train parameters are {sorted(known)}")
        setattr(args, key, yaml.safe_load(value))
    params = apply_profile(args, "train")
    data_dirs = {}
    for item in args.data:
        source, sep, directory = item.partition("=")
        if not sep or not source or not directory:
            raise ValueError(f"--data takes SOURCE=DIR, got {item!r}")
        data_dirs[source] = directory
    run_dir = train_condition(
        args.condition,
        profile=args.profile,
        data_dirs=data_dirs,
        out_dir=args.out,
        force=args.force,
        **{key: getattr(args, key) for key in params},
    )
    print(run_dir)
    return 0


if __name__ == "__main__":
    from sciclip_utils.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
