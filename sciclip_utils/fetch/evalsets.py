"""``sciclip fetch evalsets``: DataComp's evaluation sets as clip_benchmark webdatasets, from the Hub.

Each task's Hub dataset repo is mirrored into ``<dest>/<folder>/`` (``folder`` from ``tasklist.yml``: the
repo's name, ``djghosh/wds_vtab-pcam_test`` -> ``wds_vtab-pcam_test``, the folder DataComp's
``download_evalsets.py`` writes and its ``eval_utils`` reads as ``<data_root>/wds_<task>_test``), keeping
its top-level files (``classnames.txt``, ``zeroshot_classification_templates.txt``, ...) and its ``test/``
split (``nshards.txt``, ``0.tar``, ...), which is the layout ``clip_benchmark --dataset wds/<key>
--dataset_root <dest>/<folder>`` reads.
Files are checked against the sizes and sha256 digests the Hub lists; a rerun skips verified files and
continues partial ones.

Sources (DataComp's ``download_evalsets.py``): ``djghosh/wds_<key with / as ->_test`` (fairness tasks
without their ``fairness/`` prefix); Flickr30k and MSCOCO retrieval from clip_benchmark's webdataset
repos (``clip-benchmark/wds_flickr30k``, ``wds_mscoco_captions``: the same Karpathy test splits DataComp
loads from ``nlphuji``); WinoGAViL only exists as the ``nlphuji/winogavil`` Hub dataset, mirrored as is
(no ``test/`` webdataset: its loading script, ``winogavil_dataset.csv`` and ``winogavil_images.zip``, which
``evaluate.winogavil`` reads in place). DataComp itself loads these three through ``datasets`` into
``<data_root>/hf_cache``, a cache layout we do not reproduce. All 40 take about 50 GB.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sciclip_utils.fetch.hf import RepoFile, default_endpoint, download_repo_files, list_repo_files
from sciclip_utils.fetch.transfer import DEFAULTS, add_common_options, describe_plan, run_reporting_errors
from sciclip_utils.profiles import paths
from sciclip_utils.tasks import load_tasks

_DJGHOSH = (
    "imagenet1k imagenet_sketch imagenetv2 imagenet-a imagenet-o imagenet-r objectnet vtab/caltech101 "
    "vtab/cifar100 vtab/clevr_count_all vtab/clevr_closest_object_distance vtab/dtd vtab/eurosat "
    "vtab/kitti_closest_vehicle_distance vtab/flowers vtab/pets vtab/pcam vtab/resisc45 vtab/svhn sun397 "
    "cifar10 country211 fgvc_aircraft food101 gtsrb mnist voc2007 renderedsst2 cars stl10 wilds/iwildcam "
    "wilds/camelyon17 wilds/fmow fairness/dollar_street fairness/geode fairness/fairface fairness/utkface"
)
# DataComp's 40 tasklist entries -> the Hub dataset repo holding each one's test set
EVALSET_REPOS: dict[str, str] = {
    **{
        key: f"djghosh/wds_{key.removeprefix('fairness/').replace('/', '-')}_test" for key in _DJGHOSH.split()
    },
    "retrieval/flickr30k": "clip-benchmark/wds_flickr30k",
    "retrieval/mscoco_2014_5k_test_image_text_retrieval": "clip-benchmark/wds_mscoco_captions",
    "misc/winogavil": "nlphuji/winogavil",
}


def task_folder(key: str) -> str:
    """The folder of a task under the eval-set root, as ``tasklist.yml`` names it (where evaluation reads)."""
    return load_tasks("datacomp")[key].folder


def wanted(path: str) -> bool:
    """Top-level files and the test split; not other splits (train/), nor the Hub's .gitattributes."""
    return (path.startswith("test/") or "/" not in path) and path != ".gitattributes"


def fetch_evalsets(
    dest: str | Path,
    *,
    tasks: list[str] | None = None,
    endpoint: str | None = None,
    repos: dict[str, str] | None = None,
    threads: int = DEFAULTS["hf_threads"],
    dry_run: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, str]]:
    """Mirror the test sets of ``tasks`` (default: all 40) under ``dest``; task -> {path: outcome}."""
    repos = repos or EVALSET_REPOS
    tasks = tasks or list(repos)
    unknown = [task for task in tasks if task not in repos]
    if unknown:
        raise ValueError(f"unknown eval task(s) {unknown}; the tasks are DataComp's: {', '.join(repos)}")
    endpoint = endpoint or default_endpoint()
    listed: dict[str, list[RepoFile]] = {}
    for task in tasks:
        listed[task] = [f for f in list_repo_files(endpoint, repos[task]) if wanted(f.path)]
    nbytes = sum(f.size for files in listed.values() for f in files)
    log(describe_plan("DataComp eval sets", len(tasks), "tasks", nbytes))
    if dry_run:
        return {}
    dest = Path(dest)
    outcomes = {}
    for task, files in listed.items():
        folder = dest / task_folder(task)
        outcomes[task] = download_repo_files(endpoint, repos[task], files, folder, threads=threads)
        shards = folder / "test" / "nshards.txt"
        if shards.is_file():
            expected = int(shards.read_text().split()[0])
            found = len(list((folder / "test").glob("*.tar")))
            if found != expected:
                raise FileNotFoundError(
                    f"{folder}/test: nshards.txt says {expected} shards, {found} downloaded"
                )
            note = f"{expected} shards"
        else:
            note = "no test/ webdataset (a Hub dataset, mirrored as is)"
        log(f"{task}: {dict(Counter(outcomes[task].values()))}, {note} -> {folder}")
    return outcomes


# ------------------------------------------------------------------------------------------------ CLI
def cli_configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sciclip fetch evalsets``."""
    add_common_options(
        parser, s3=False, hub=True, dest_default="<profile run>/datacomp_evalsets, where evaluation reads"
    )
    parser.add_argument("--tasks", default=None, metavar="KEY,...", help="only these tasks (default: all 40)")
    parser.add_argument(
        "--threads", type=int, default=DEFAULTS["hf_threads"], metavar="N", help="parallel file downloads"
    )


def cli_run(args: argparse.Namespace) -> int:
    """Run ``sciclip fetch evalsets``."""
    tasks = [task.strip() for task in args.tasks.split(",") if task.strip()] if args.tasks else None
    unknown = [task for task in tasks or [] if task not in EVALSET_REPOS]
    if unknown:
        raise ValueError(
            f"unknown eval task(s) {unknown}; the tasks are DataComp's: {', '.join(EVALSET_REPOS)}"
        )
    # where evaluation looks for the datacomp suite's data
    dest = Path(args.dest) if args.dest else paths(args.profile).datacomp_evalsets

    def run() -> int:
        fetch_evalsets(
            dest, tasks=tasks, endpoint=args.hf_endpoint, threads=args.threads, dry_run=args.dry_run
        )
        return 0

    return run_reporting_errors(run)
