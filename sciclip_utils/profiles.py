"""Named parameter sets for every stage, kept in one place (DataComp ``scale_configs.py`` style).

A profile maps each stage to its parameters. Notebooks (parameters cell), the CLI (flags) and tests read
their defaults from here through :func:`stage_params`; explicit values override them. A parameter has the
same name in the profile, the notebook and the CLI (``max_papers`` is ``--max-papers``). :func:`paths`
gives the run folders every stage reads and writes, so a stage run from the CLI and its notebook meet the
same files.
"""

from __future__ import annotations

import argparse
import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNS_ENV = "SCICLIP_RUNS"  # the folder holding the run folders (default: <repo>/runs)
STAGES = ("corpus", "extract", "decontaminate", "analysis", "train", "evaluate")

# DataComp "small" (scale_configs.py and train.py): ViT-B-32, 12.8M samples seen in 5 checkpoints.
_TRAIN_SMALL: dict[str, Any] = {
    "model": "ViT-B-32",
    "batch_size": 4096,  # global: the per-GPU batch is batch_size / world size
    "lr": 5e-4,
    "warmup": 500,
    "wd": 0.2,
    "beta2": 0.98,
    "samples_seen": 12_800_000,
    "checkpoints": 5,
    "precision": "amp",
    "workers": 4,
    "seed": 0,
    "log_every_n_steps": 100,
    "grad_checkpointing": True,
    "threads": None,  # torch's CPU threads per process: torch's default
    "conditions": ["commonpool", "sci", "mix"],
}

# max_images: images per source whose figure type is classified (None: all; the subsets cover only those);
# max_tokenized: captions per source tokenized for the truncation share (None: all); train_per_kind:
# generated training figures per generator kind for the figure-type classifier.
_ANALYSIS: dict[str, Any] = {"max_images": None, "max_tokenized": 200_000, "train_per_kind": 60, "seed": 0}

# workers: Dask processes embedding the training shards (0: this process); device: the isc network's
# ("cpu", "cuda"; None: cuda when available); scheduler: an existing Dask cluster's address instead.
_DECONTAMINATE_ISC: dict[str, Any] = {
    "descriptor": "isc",
    "threshold": 0.604169,
    "batch_size": 256,
    "workers": 4,
    "device": "cuda",
    "scheduler": None,
}

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # A 2-core CPU laptop or CI: the whole study on the generated sample corpus in minutes.
    "tiny": {
        "corpus": {"seed": 0, "size": "tiny", "workers": 2},
        "extract": {"workers": 2, "samples_per_shard": 256, "max_papers": None},
        # The sample corpus draws its eval sets with the same generators as its training figures, so at the
        # dct's web-calibrated 0.757 most figures are look-alikes of some eval image; 0.97 keeps the
        # look-alikes and still catches the planted copies (resize, re-encode, flip). See 04_decontaminate.
        "decontaminate": {
            "descriptor": "dct",
            "threshold": 0.97,
            "batch_size": 256,
            "workers": 0,
            "device": None,
            "scheduler": None,
        },
        "analysis": {**_ANALYSIS, "max_tokenized": None, "train_per_kind": 30, "workers": 2},
        "train": {
            "model": "sciclip-tiny",
            "batch_size": 64,
            "lr": 1e-3,
            "warmup": 20,
            "wd": 0.2,
            "beta2": 0.98,
            "samples_seen": 30_000,
            "checkpoints": 2,
            "precision": "fp32",
            "workers": 1,
            "seed": 0,
            "log_every_n_steps": 1,
            "grad_checkpointing": False,  # recomputing activations only costs time on a small CPU model
            # one torch thread beside the loader worker: on a busy 2-core machine two OpenMP threads spin-wait
            # for each other and a step takes up to 20x longer (measured: 0.34 s vs 7 s per batch of 8-32)
            "threads": 1,
            "conditions": ["commonpool", "sci", "mix"],
        },
        "evaluate": {"suite": "sample", "batch_size": 64, "bootstrap": 1000, "workers": 0},
    },
    # The paper's setup (DataComp "small"): ViT-B-32, 12.8M samples seen, on GPUs.
    "small": {
        "corpus": {"seed": 0, "size": "small", "workers": 16},
        "extract": {"workers": 16, "samples_per_shard": 10_000, "max_papers": None},
        "decontaminate": dict(_DECONTAMINATE_ISC),
        "analysis": {**_ANALYSIS, "workers": 16},
        "train": dict(_TRAIN_SMALL),
        "evaluate": {"suite": "datacomp", "batch_size": 256, "bootstrap": 1000, "workers": 4},
    },
    # DataComp "medium": the same recipe with 10x the samples seen.
    "medium": {
        "corpus": {"seed": 0, "size": "small", "workers": 32},
        "extract": {"workers": 32, "samples_per_shard": 10_000, "max_papers": None},
        "decontaminate": {**_DECONTAMINATE_ISC, "workers": 8},
        "analysis": {**_ANALYSIS, "workers": 32},
        "train": {**_TRAIN_SMALL, "samples_seen": 128_000_000},
        "evaluate": {"suite": "datacomp", "batch_size": 256, "bootstrap": 1000, "workers": 4},
    },
}


def get_profile(name: str) -> dict[str, dict[str, Any]]:
    """A deep copy of profile ``name`` (stage -> parameters)."""
    if name not in PROFILES:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown profile {name!r}; known profiles: {known}")
    return copy.deepcopy(PROFILES[name])


def stage_params(profile: str, stage: str, **overrides: Any) -> dict[str, Any]:
    """Parameters of ``stage`` in ``profile`` with ``overrides`` applied (``None`` values keep the profile's)."""
    stages = get_profile(profile)
    if stage not in stages:
        raise ValueError(f"unknown stage {stage!r}; known stages: {', '.join(STAGES)}")
    params = stages[stage]
    unknown = set(overrides) - set(params)
    if unknown:
        raise ValueError(
            f"unknown {stage} parameters {sorted(unknown)}; the {stage} parameters are {sorted(params)}"
        )
    params.update({key: value for key, value in overrides.items() if value is not None})
    return params


def project_root() -> Path:
    """The repository root (the folder holding ``_toc.yml``), searched upwards from the working directory."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return here


@dataclass(frozen=True)
class RunPaths:
    """The folders of one profile's run; every stage reads its inputs and writes its outputs here."""

    root: Path

    @property
    def sample_corpus(self) -> Path:
        return self.root / "sample_corpus"

    @property
    def arxiv_inputs(self) -> Path:
        """arXiv source packages (the sample corpus's by default)."""
        return self.sample_corpus / "arxiv"

    @property
    def pmc_inputs(self) -> Path:
        """PMC OA packages (the sample corpus's by default)."""
        return self.sample_corpus / "pmc"

    @property
    def commonpool(self) -> Path:
        """The web pool in CommonPool format (the sample corpus's by default)."""
        return self.sample_corpus / "commonpool"

    @property
    def evalsets(self) -> Path:
        return self.sample_corpus / "evalsets"

    @property
    def datacomp_evalsets(self) -> Path:
        """DataComp's eval sets, as ``sciclip fetch evalsets`` writes them."""
        return self.root / "datacomp_evalsets"

    def suite_evalsets(self, suite: str) -> Path:
        """Where the eval sets of a task suite live: the sample corpus's, or DataComp's fetched ones."""
        return self.evalsets if suite == "sample" else self.datacomp_evalsets

    @property
    def arxiv(self) -> Path:
        """Extracted arXiv pairs (CommonPool format)."""
        return self.root / "arxiv"

    @property
    def pmc(self) -> Path:
        """Extracted PMC pairs (CommonPool format)."""
        return self.root / "pmc"

    @property
    def decontaminated(self) -> Path:
        """One decontaminated CommonPool folder per source: ``decontaminated/<source>``."""
        return self.root / "decontaminated"

    def sources(self) -> dict[str, Path]:
        """The training sources before decontamination, by name."""
        return {"arxiv": self.arxiv, "pmc": self.pmc, "commonpool": self.commonpool}

    def decontaminated_sources(self) -> dict[str, Path]:
        """The decontaminated training sources, by name (what analysis and training read)."""
        return {source: self.decontaminated / source for source in self.sources()}

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    @property
    def train(self) -> Path:
        """One folder per training condition: ``train/<condition>``."""
        return self.root / "train"

    @property
    def eval(self) -> Path:
        """One folder per evaluated condition: ``eval/<condition>/eval_results.jsonl``."""
        return self.root / "eval"


def paths(profile: str, runs: str | Path | None = None) -> RunPaths:
    """The run folders of ``profile``: under ``runs``, else ``$SCICLIP_RUNS``, else ``<repo>/runs``."""
    get_profile(profile)
    base = runs or os.environ.get(RUNS_ENV) or project_root() / "runs"
    return RunPaths(Path(base) / profile)


def run_dir(profile: str) -> Path:
    """Where a profile's data and models go (``paths(profile).root``)."""
    return paths(profile).root


def add_profile_option(parser: argparse.ArgumentParser) -> None:
    """``--profile NAME`` (default ``tiny``), the source of every default a verb leaves as ``None``."""
    parser.add_argument(
        "--profile", default="tiny", help="named parameter profile for the defaults (see `sciclip profiles`)"
    )


def apply_profile(args: argparse.Namespace, stage: str) -> dict[str, Any]:
    """Fill the ``None`` attributes of ``args`` that name ``stage`` parameters from ``args.profile``."""
    params = stage_params(args.profile, stage)
    for key, value in params.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return params


def cli_configure(parser: argparse.ArgumentParser) -> None:
    """``sciclip profiles [NAME]``."""
    parser.add_argument("name", nargs="?", help="show one profile in full")


def cli_run(args: argparse.Namespace) -> int:
    """Print the known profiles, or one profile's parameters stage by stage."""
    if args.name:
        for stage, params in get_profile(args.name).items():
            for key, value in params.items():
                print(f"{stage:14} {key:18} {value}")
        return 0
    for name in sorted(PROFILES):
        train = PROFILES[name]["train"]
        print(f"{name:8} model={train['model']} samples_seen={train['samples_seen']:,}")
    return 0
