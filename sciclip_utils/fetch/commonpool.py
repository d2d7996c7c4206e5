"""``sciclip fetch commonpool``: DataComp's CommonPool metadata from the Hub, then the images with img2dataset.

Metadata: the parquets of the Hub dataset ``mlfoundations/datacomp_<scale>`` (``uid``, ``url``, ``text``,
``original_width``, ``original_height``, ``clip_b32_similarity_score``, ``clip_l14_similarity_score``,
``face_bboxes``, ``sha256``), into ``<dest>/metadata/`` (``small``: ~1.3 GB). ``--hf-endpoint`` points it
elsewhere (a mirror; the tests' local server); ``--metadata-dir`` uses parquets already on disk (directly in
that folder: img2dataset reads ``<folder>/*.parquet``).

Images: :func:`img2dataset.download` with the settings of DataComp's ``download_upstream.py`` (see
:data:`DATACOMP_SETTINGS`): 512 px ``keep_ratio_largest``, only shrinking, JPEG quality 95, 10,000 samples
per shard, 8-digit shard names and 12-digit keys ``shard * 10**4 + row``, the ``uid`` column kept, the
``face_bboxes`` blurred, webdataset output, 2 retries, no wandb, 16 processes x 128 threads. As img2dataset
does by default, a response whose ``X-Robots-Tag`` says ``noai``/``noimageai``/``noindex``/``noimageindex``
is refused. Each metadata parquet is cut into shards of its own (a shard never spans two files). Reruns
resume (``incremental_mode="incremental"``): a shard with a ``_stats.json`` is complete and skipped.

img2dataset writes per shard ``shards/{shard:08d}.tar`` (``.jpg``/``.txt``/``.json``), ``.parquet`` (every
row, failures included, caption in ``caption``) and ``_stats.json`` (``count``, ``successes``,
``failed_to_download``, ``failed_to_resize``, ``status_dict``). :func:`finish_shards` then makes the folder
what the other stages read: each shard parquet keeps the rows with an image, ``caption`` becomes ``text``,
the project's columns are added (``source`` ``commonpool``, caption lengths; ``exif`` and the status columns
dropped); files of shards without stats (a shard that failed twice) are removed for a rerun to redo; and
``sizes.json`` (images per tar) is written beside the shards and in ``<dest>``. ``shards/sizes.json`` is
removed before img2dataset runs, which would read it as a shard's stats.

Expect ~35 KB per image: ~450 GB for ``small`` (12.8M samples), 4.5 TB for ``medium``; some 10-20% of the
URLs fail. Run it on a machine with many cores and a good connection and DNS resolver.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sciclip_utils.commonpool import BASE_COLUMNS
from sciclip_utils.fetch.hf import default_endpoint, download_repo_files, list_repo_files
from sciclip_utils.fetch.transfer import (
    DEFAULTS,
    add_common_options,
    describe_plan,
    destination,
    run_reporting_errors,
)
from sciclip_utils.files import atomic_write, read_parquet

SCALE_SAMPLES = {"small": 12_800_000, "medium": 128_000_000, "large": 1_280_000_000, "xlarge": 12_800_000_000}
BYTES_PER_IMAGE = 35_000  # a 512 px JPEG, on average (450 GB / 12.8M)
REQUIRED_COLUMNS = ("uid", "url", "text")
FACE_BOXES = "face_bboxes"
DATACOMP_SETTINGS: dict[str, Any] = {
    "image_size": 512,
    "resize_mode": "keep_ratio_largest",
    "resize_only_if_bigger": True,
    "encode_format": "jpg",
    "encode_quality": 95,
    "output_format": "webdataset",
    "input_format": "parquet",
    "url_col": "url",
    "caption_col": "text",
    "oom_shard_count": 8,
    "enable_wandb": False,
    "distributor": "multiprocessing",
    "incremental_mode": "incremental",
}
DROPPED_COLUMNS = ("status", "error_message", "exif")  # img2dataset's, not needed past the download


@dataclass(frozen=True)
class DownloadSettings:
    """What may differ from DataComp's run of img2dataset (defaults: DataComp's)."""

    samples_per_shard: int = DEFAULTS["samples_per_shard"]
    processes: int = DEFAULTS["processes"]
    threads: int = DEFAULTS["threads"]
    timeout_s: float = DEFAULTS["timeout_s"]
    retries: int = DEFAULTS["retries"]
    blur_faces: bool = True


@dataclass
class PoolFetch:
    """Totals over the complete shards on disk (those of earlier runs included)."""

    shards: int = 0
    skipped_shards: int = 0
    incomplete_shards: int = 0
    count: int = 0
    successes: int = 0
    failed_to_download: int = 0
    failed_to_resize: int = 0

    def add(self, stats: dict[str, Any]) -> None:
        self.shards += 1
        for name in ("count", "successes", "failed_to_download", "failed_to_resize"):
            setattr(self, name, getattr(self, name) + int(stats[name]))


# ---------------------------------------------------------------------------------------------- metadata
def fetch_metadata(
    endpoint: str,
    repo: str,
    dest: Path,
    *,
    threads: int = DEFAULTS["hf_threads"],
    dry_run: bool = False,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """The scale's metadata parquets, downloaded (verified, resumable) under ``dest``; sorted paths."""
    files = [f for f in list_repo_files(endpoint, repo) if f.path.endswith(".parquet")]
    if not files:
        raise FileNotFoundError(f"no parquet files in {repo} at {endpoint}")
    log(
        describe_plan(
            f"CommonPool metadata ({repo})", len(files), "parquet files", sum(f.size for f in files)
        )
    )
    if dry_run:
        return []
    outcomes = download_repo_files(endpoint, repo, files, dest, threads=threads)
    log(f"metadata: {dict(Counter(outcomes.values()))} -> {dest}")
    return sorted(dest / f.path for f in files)


def check_metadata(folder: Path, columns: tuple[str, ...] = REQUIRED_COLUMNS) -> int:
    """The number of rows of the parquets directly in ``folder`` (what img2dataset reads); ValueError
    (before anything is downloaded) when there are none or one lacks one of ``columns``."""
    import pyarrow.parquet as pq

    parquets = sorted(folder.glob("*.parquet"))
    if not parquets:
        raise ValueError(f"no metadata parquet files directly in {folder}")
    rows = 0
    for path in parquets:
        with pq.ParquetFile(path) as parquet:
            missing = [c for c in columns if c not in parquet.schema_arrow.names]
            if missing:
                raise ValueError(f"{path}: not CommonPool metadata (missing columns {missing})")
            rows += parquet.metadata.num_rows
    return rows


# ------------------------------------------------------------------------------------------------ images
def download_images(
    metadata_dir: Path, out_dir: Path, settings: DownloadSettings = DownloadSettings()
) -> PoolFetch:
    """Download the images of the parquets in ``metadata_dir`` with img2dataset into ``out_dir/shards``
    (resumable), then :func:`finish_shards`."""
    columns = (*REQUIRED_COLUMNS, FACE_BOXES) if settings.blur_faces else REQUIRED_COLUMNS
    check_metadata(metadata_dir, columns)
    shards_dir = out_dir / "shards"
    shards_dir.mkdir(parents=True, exist_ok=True)
    (shards_dir / "sizes.json").unlink(missing_ok=True)  # img2dataset would take it for a shard's stats
    complete_before = len(list(shards_dir.glob("*_stats.json")))
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations (via img2dataset) asks PyPI
    import img2dataset

    interrupt_handler = signal.getsignal(signal.SIGINT)
    try:
        img2dataset.download(
            url_list=str(metadata_dir),
            output_folder=str(shards_dir),
            number_sample_per_shard=settings.samples_per_shard,
            processes_count=settings.processes,
            thread_count=settings.threads,
            timeout=settings.timeout_s,
            retries=settings.retries,
            bbox_col=FACE_BOXES if settings.blur_faces else None,
            save_additional_columns=["uid"],
            **DATACOMP_SETTINGS,
        )
    finally:
        signal.signal(signal.SIGINT, interrupt_handler)  # img2dataset's handler exits with status 0
    return finish_shards(out_dir, skipped=complete_before)


def finish_shards(out_dir: Path, skipped: int = 0) -> PoolFetch:
    """Make img2dataset's ``out_dir/shards`` the project's CommonPool format (see the module docstring);
    idempotent. Returns the totals of the complete shards."""
    shards_dir = out_dir / "shards"
    result = PoolFetch(skipped_shards=skipped)
    sizes: dict[str, int] = {}
    for stats_file in sorted(shards_dir.glob("*_stats.json")):
        name = stats_file.name.removesuffix("_stats.json")
        stats = json.loads(stats_file.read_text())
        result.add(stats)
        project_shard_metadata(shards_dir / f"{name}.parquet")
        sizes[f"{name}.tar"] = int(stats["successes"])
    written = {p.stem for p in (*shards_dir.glob("*.tar"), *shards_dir.glob("*.parquet"))}
    for name in sorted(written - {tar.removesuffix(".tar") for tar in sizes}):
        for suffix in (".tar", ".parquet"):
            (shards_dir / f"{name}{suffix}").unlink(missing_ok=True)
        result.incomplete_shards += 1
    encoded = json.dumps(sizes, indent=2, sort_keys=True).encode()
    atomic_write(shards_dir / "sizes.json", encoded)
    atomic_write(out_dir / "sizes.json", encoded)
    return result


def project_shard_metadata(path: Path) -> None:
    """Rewrite an img2dataset shard parquet as the project's: rows with an image, ``caption`` as ``text``,
    the project's columns first (``source`` ``commonpool``), img2dataset's status and exif columns dropped.
    A parquet without a ``status`` column is already done."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = read_parquet(path)
    if "status" not in table.column_names:
        return
    table = table.filter(pc.equal(table["status"], "success"))
    table = table.drop_columns([c for c in DROPPED_COLUMNS if c in table.column_names])
    table = table.rename_columns(["text" if c == "caption" else c for c in table.column_names])
    text = pc.fill_null(table["text"], "")
    rows = table.num_rows
    added = {
        "text": text,
        "source": pa.array(["commonpool"] * rows, pa.string()),
        "paper_id": pa.array([""] * rows, pa.string()),
        "figure_id": pa.array([""] * rows, pa.string()),
        "license": pa.nulls(rows, pa.string()),
        "caption_chars": pc.utf8_length(text),
        "caption_words": pa.array([len(caption.split()) for caption in text.to_pylist()], pa.int64()),
    }
    for name, column in added.items():
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    order = [*BASE_COLUMNS, *(c for c in table.column_names if c not in BASE_COLUMNS)]
    buffer = io.BytesIO()
    pq.write_table(table.select(order), buffer)
    atomic_write(path, buffer.getvalue())


# ------------------------------------------------------------------------------------------------ CLI
def cli_configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sciclip fetch commonpool``."""
    parser.add_argument("--scale", choices=sorted(SCALE_SAMPLES), default="small")
    add_common_options(parser, s3=False, hub=True)
    parser.add_argument(
        "--repo", default=None, help=f"metadata dataset repo (default: {DEFAULTS['commonpool_repo']})"
    )
    parser.add_argument(
        "--metadata-dir",
        default=None,
        metavar="DIR",
        help="use the parquets directly in this folder, fetch no metadata",
    )
    parser.add_argument("--metadata-only", action="store_true", help="fetch the metadata, not the images")
    parser.add_argument(
        "--processes",
        type=int,
        default=DEFAULTS["processes"],
        metavar="N",
        help="img2dataset processes (default: DataComp's %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULTS["threads"],
        metavar="N",
        help="download threads per process (default: DataComp's %(default)s)",
    )
    parser.add_argument(
        "--timeout-s", type=float, default=DEFAULTS["timeout_s"], metavar="S", help="per image request"
    )
    parser.add_argument(
        "--retries", type=int, default=DEFAULTS["retries"], metavar="N", help="per failed image request"
    )
    parser.add_argument("--no-blur", action="store_true", help="do not blur the face boxes")
    parser.add_argument(
        "--samples-per-shard",
        type=int,
        default=DEFAULTS["samples_per_shard"],
        metavar="N",
        help="rows of metadata per shard (default: %(default)s)",
    )


def cli_run(args: argparse.Namespace) -> int:
    """Run ``sciclip fetch commonpool``."""
    for name in ("threads", "processes", "samples_per_shard"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if args.retries < 0:
        raise ValueError("--retries must not be negative")
    if args.metadata_dir and not Path(args.metadata_dir).is_dir():
        raise FileNotFoundError(f"--metadata-dir {args.metadata_dir} is not a folder")
    dest = destination(args, "commonpool")
    settings = DownloadSettings(
        args.samples_per_shard, args.processes, args.threads, args.timeout_s, args.retries, not args.no_blur
    )

    def run() -> int:
        if args.metadata_dir:
            metadata_dir = Path(args.metadata_dir)
        else:
            repo = args.repo or DEFAULTS["commonpool_repo"].format(scale=args.scale)
            endpoint = args.hf_endpoint or default_endpoint()
            metadata_dir = dest / "metadata"
            fetched = fetch_metadata(endpoint, repo, metadata_dir, dry_run=args.dry_run)
            nested = [path for path in fetched if path.parent != metadata_dir]
            if nested:
                raise ValueError(
                    f"{repo}: parquets in subfolders (img2dataset reads one folder): {nested[0]}"
                )
        # a dry run has not downloaded the metadata: the scale's size stands in for its row count
        known = args.metadata_dir is not None or not args.dry_run
        samples = check_metadata(metadata_dir) if known else SCALE_SAMPLES[args.scale]
        what = f"CommonPool {args.scale} images" + ("" if known else " (expected)")
        print(describe_plan(what, samples, "samples", samples * BYTES_PER_IMAGE))
        print(
            f"  ~{math.ceil(samples / args.samples_per_shard):,} shards; ~35 KB an image, 10-20% of URLs fail"
        )
        if args.dry_run or args.metadata_only:
            return 0
        result = download_images(metadata_dir, dest, settings)
        print(
            f"CommonPool: {result.successes:,}/{result.count:,} images in {result.shards} shards "
            f"({result.failed_to_download:,} failed to download, {result.failed_to_resize:,} to resize; "
            f"{result.skipped_shards} shards already complete) -> {dest / 'shards'}"
        )
        if result.incomplete_shards:
            print(f"{result.incomplete_shards} shards failed and were removed: run the command again")
            return 1
        return 0

    return run_reporting_errors(run)
