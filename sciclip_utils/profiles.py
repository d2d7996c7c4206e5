"""Named parameter sets for every stage, kept in one place (DataComp ``scale_configs.py`` style).

Notebooks and the CLI read their defaults from a profile; explicit parameters override them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_TRAINING_SMALL: dict[str, Any] = {
    "model": "ViT-B-32",
    "batch_size": 4096,
    "lr": 5e-4,
    "warmup": 500,
    "beta2": 0.98,
    "samples_seen": 12_800_000,
    "checkpoints": 5,
    "precision": "amp",
}

PROFILES: dict[str, dict[str, Any]] = {
    # A 2-core CPU laptop or CI: the whole study on the generated sample corpus in minutes.
    "tiny": {
        "seed": 0,
        "corpus_size": "tiny",
        "workers": 2,
        "samples_per_shard": 256,
        "max_papers": None,
        "decontam_descriptor": "dct",
        # The sample corpus draws its eval sets with the same generators as its training figures, so at the
        # dct's web-calibrated 0.757 most figures are look-alikes of some eval image; 0.97 keeps the
        # look-alikes and still catches the planted copies (resize, re-encode, flip). See 04_decontaminate.
        "decontam_threshold": 0.97,
        "model": "sciclip-tiny",
        "batch_size": 64,
        "lr": 1e-3,
        "warmup": 20,
        "beta2": 0.98,
        "samples_seen": 20_000,
        "checkpoints": 2,
        "precision": "fp32",
        "eval_tasks": "sample",
    },
    # The paper's setup (DataComp "small"): ViT-B-32, 12.8M samples seen, on GPUs.
    "small": {
        "seed": 0,
        "corpus_size": "small",
        "workers": 16,
        "samples_per_shard": 10_000,
        "max_papers": None,
        "decontam_descriptor": "isc",
        "decontam_threshold": 0.604169,
        **_TRAINING_SMALL,
        "eval_tasks": "datacomp",
    },
    # DataComp "medium": same recipe, 10x the samples seen.
    "medium": {
        "seed": 0,
        "corpus_size": "small",
        "workers": 32,
        "samples_per_shard": 10_000,
        "max_papers": None,
        "decontam_descriptor": "isc",
        "decontam_threshold": 0.604169,
        **_TRAINING_SMALL,
        "samples_seen": 128_000_000,
        "eval_tasks": "datacomp",
    },
}


def get_profile(name: str, **overrides: Any) -> dict[str, Any]:
    """Return a copy of profile ``name`` with ``overrides`` applied (``None`` values are ignored)."""
    if name not in PROFILES:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown profile {name!r}; known profiles: {known}")
    profile = dict(PROFILES[name], profile=name)
    unknown = set(overrides) - set(profile)
    if unknown:
        raise ValueError(f"unknown profile keys {sorted(unknown)}; known keys: {sorted(profile)}")
    profile.update({key: value for key, value in overrides.items() if value is not None})
    return profile


def project_root() -> Path:
    """The repository root (the folder holding ``_toc.yml``), searched upwards from the working directory."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return here


def run_dir(profile: str) -> Path:
    """Where a profile's data and models go: ``$SCICLIP_RUNS/<profile>`` or ``<repo>/runs/<profile>``."""
    get_profile(profile)
    base = os.environ.get("SCICLIP_RUNS")
    return (Path(base) if base else project_root() / "runs") / profile


def cli_configure(parser: Any) -> None:
    """``sciclip profiles [NAME]``."""
    parser.add_argument("name", nargs="?", help="show one profile in full")


def cli_run(args: Any) -> int:
    """Print the known profiles, or one profile's parameters."""
    names = [args.name] if args.name else sorted(PROFILES)
    for name in names:
        profile = get_profile(name)
        if args.name:
            for key, value in profile.items():
                print(f"{key:20} {value}")
        else:
            print(f"{name:8} model={profile['model']} samples_seen={profile['samples_seen']:,}")
    return 0
