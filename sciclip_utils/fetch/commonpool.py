"""``sciclip fetch commonpool``: DataComp's CommonPool metadata from the Hub, then the images from the web.

Metadata: the parquets of the Hub dataset ``mlfoundations/datacomp_<scale>`` (``uid``, ``url``, ``text``,
``original_width``, ``original_height``, ``clip_b32_similarity_score``, ``clip_l14_similarity_score``,
``face_bboxes``, ``sha256``), into ``<dest>/metadata/`` (``small``: ~1.3 GB). ``--hf-endpoint`` points it
elsewhere (a mirror; the tests' local server); ``--metadata-dir`` uses parquets already on disk.

Images: DataComp runs img2dataset (``download_upstream.py``) with 512 px ``keep_ratio_largest`` resizing
(only shrinking), JPEG, 10,000 samples per shard, the ``uid`` column kept, face boxes blurred, webdataset
output with a parquet and ``_stats.json`` per shard. img2dataset is not a dependency here: it pins
``opencv-python-headless<5`` and pulls wandb and albumentations, which this project's environment
(OpenCV 5) cannot take. This module does the same with the same settings, in the package:

- input rows in file order, cut into shards of ``samples_per_shard``; sample key = ``shard * 10**4 +
  row index in the shard`` (img2dataset's, so failed rows leave gaps), 12 digits;
- each URL fetched once (``retries=0``) with a ``timeout_s`` limit and img2dataset's browser user agent;
  a response whose ``X-Robots-Tag`` says ``noai``/``noimageai``/``noindex``/``noimageindex`` is refused,
  as img2dataset does by default;
- the image resized like the extracted figures (:func:`sciclip_utils.images.prepare_image`: longest side
  <= 512, only shrinking, RGB JPEG quality 95), then the ``face_bboxes`` blurred as img2dataset's
  ``BoundingBoxBlurrer`` does (boxes grown by 10% of the largest box side, Gaussian kernel
  ``2*ceil(0.1*side)+1``, a blurred mask blending the blurred image in) and re-encoded;
- per shard ``shards/{shard:08d}.tar`` (``.jpg``/``.txt``/``.json``), ``.parquet`` (the successful rows:
  the project's CommonPool columns, ``uid`` and ``url`` and the CLIP scores kept) and ``_stats.json``
  (``count``, ``successes``, ``failed_to_download``, ``failed_to_resize``, ``status_dict`` of errors);
  the stats file is written last, and a shard with one is complete: a rerun skips it.

Expect ~35 KB per image: ~450 GB for ``small`` (12.8M samples), 4.5 TB for ``medium``; some 10-20% of the
URLs fail. Use many threads (DataComp: 16 processes x 128 threads) on a machine with a good connection.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import multiprocessing
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sciclip_utils.commonpool import BASE_COLUMNS, KEY_DIGITS, TarWriter, atomic_write, key_multiplier
from sciclip_utils.fetch.hf import default_endpoint, download_repo_files, list_repo_files
from sciclip_utils.fetch.transfer import (
    DEFAULTS,
    add_common_options,
    describe_plan,
    destination,
    run_reporting_errors,
)
from sciclip_utils.images import JPEG_QUALITY, ImageError, image_kind, prepare_image

SCALE_SAMPLES = {"small": 12_800_000, "medium": 128_000_000, "large": 1_280_000_000, "xlarge": 12_800_000_000}
BYTES_PER_IMAGE = 35_000  # a 512 px JPEG, on average (450 GB / 12.8M)
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"
DISALLOWED_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")
KEPT_COLUMNS = ("clip_b32_similarity_score", "clip_l14_similarity_score")
REQUIRED_COLUMNS = ("uid", "url", "text")
MAX_IMAGE_BYTES = 64 * 2**20  # a response past this is dropped (the pixel cap of prepare_image follows)


@dataclass(frozen=True)
class DownloadSettings:
    """img2dataset's settings as DataComp runs it (see the module docstring)."""

    samples_per_shard: int = DEFAULTS["samples_per_shard"]
    threads: int = DEFAULTS["threads"]
    timeout_s: float = DEFAULTS["timeout_s"]
    retries: int = DEFAULTS["retries"]
    blur_faces: bool = True


@dataclass
class PoolFetch:
    """Totals over the shards of a run (the complete ones found on disk included)."""

    shards: int = 0
    skipped_shards: int = 0
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


def check_metadata(parquets: list[Path]) -> int:
    """The number of rows of ``parquets``; ValueError (before anything is downloaded) when there are none
    or one lacks a column the download needs."""
    import pyarrow.parquet as pq

    if not parquets:
        raise ValueError("no metadata parquet files")
    rows = 0
    for path in parquets:
        parquet = pq.ParquetFile(path)
        missing = [c for c in REQUIRED_COLUMNS if c not in parquet.schema_arrow.names]
        if missing:
            raise ValueError(f"{path}: not CommonPool metadata (missing columns {missing})")
        rows += parquet.metadata.num_rows
    return rows


def iter_input_shards(
    parquets: list[Path], samples_per_shard: int
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(shard id, rows) over the parquets in order, ``samples_per_shard`` rows a shard."""
    import pyarrow.parquet as pq

    shard, rows = 0, []
    for path in parquets:
        parquet = pq.ParquetFile(path)
        columns = [
            c for c in (*REQUIRED_COLUMNS, "face_bboxes", *KEPT_COLUMNS) if c in parquet.schema_arrow.names
        ]
        for batch in parquet.iter_batches(batch_size=samples_per_shard, columns=columns):
            rows.extend(batch.to_pylist())
            while len(rows) >= samples_per_shard:
                yield shard, rows[:samples_per_shard]
                shard, rows = shard + 1, rows[samples_per_shard:]
    if rows:
        yield shard, rows


# ------------------------------------------------------------------------------------------------ images
_local = threading.local()


class RefusedDownload(Exception):
    """A response not taken: the site opts out (``X-Robots-Tag``) or it is too large."""


def _session() -> Any:
    import requests

    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def download_image(url: str, timeout_s: float, retries: int = 0) -> bytes:
    """The bytes at ``url``, tried ``retries + 1`` times; raises the last ``requests`` error, or
    :class:`RefusedDownload` (not retried)."""
    import requests

    error: Exception | None = None
    for _ in range(retries + 1):
        try:
            with _session().get(
                url, timeout=timeout_s, headers={"User-Agent": USER_AGENT}, stream=True
            ) as response:
                response.raise_for_status()
                robots = response.headers.get("X-Robots-Tag", "").lower()
                if any(directive in robots for directive in DISALLOWED_DIRECTIVES):
                    raise RefusedDownload("Use of image disallowed by X-Robots-Tag directive")
                data = bytearray()
                for chunk in response.iter_content(2**16):
                    data += chunk
                    if len(data) > MAX_IMAGE_BYTES:
                        raise RefusedDownload(f"image larger than {MAX_IMAGE_BYTES // 2**20} MiB")
                return bytes(data)
        except requests.RequestException as caught:
            error = caught
    assert error is not None
    raise error


def blur_boxes(jpeg: bytes, boxes: list[list[float]]) -> bytes:
    """img2dataset's ``BoundingBoxBlurrer`` on a JPEG: boxes ``[x0, y0, x1, y1]`` relative to the image."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    height, width = image.shape[:2]
    mask = np.zeros_like(image, dtype=np.float32)
    largest = 0
    for box in boxes:
        x0, y0, x1, y1 = int(box[0] * width), int(box[1] * height), int(box[2] * width), int(box[3] * height)
        side = max(x1 - x0, y1 - y0)
        largest = max(largest, side)
        grow = 0.1 * side
        x0, y0 = int(np.clip(int(x0 - grow), 0, width - 1)), int(np.clip(int(y0 - grow), 0, height - 1))
        x1, y1 = int(np.clip(int(x1 + grow), 0, width - 1)), int(np.clip(int(y1 + grow), 0, height - 1))
        mask[y0:y1, x0:x1] = 1
    kernel = max(3, int(2 * math.ceil(0.1 * largest) + 1))
    kernel += 1 - kernel % 2
    pixels = image.astype(np.float32) / 255.0
    blurred = cv2.GaussianBlur(pixels, (kernel, kernel), 0)
    soft_mask = cv2.GaussianBlur(mask, (kernel, kernel), 0)
    result = ((pixels * (1 - soft_mask) + blurred * soft_mask) * 255.0).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", result, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ImageError("could not re-encode the blurred image")
    return encoded.tobytes()


def _process(row: dict[str, Any], settings: DownloadSettings) -> tuple[str, Any]:
    """("success", (jpeg, width, height, original size)) or (failure kind, error message)."""
    try:
        data = download_image(row["url"], settings.timeout_s, settings.retries)
    except Exception as error:  # noqa: BLE001 (every failure of one URL is counted, none stops the shard)
        return "failed_to_download", str(error) or type(error).__name__
    try:
        if image_kind(data) != "raster":
            raise ImageError("not a raster image")
        prepared = prepare_image(data)
        jpeg = prepared.jpeg
        boxes = row.get("face_bboxes")
        if settings.blur_faces and boxes is not None and len(boxes):
            jpeg = blur_boxes(jpeg, [list(box) for box in boxes])
    except (ImageError, cv2.error, ValueError) as error:
        return "failed_to_resize", str(error) or type(error).__name__
    return "success", (jpeg, prepared)


def download_shard(
    shard: int, rows: list[dict[str, Any]], shards_dir: Path, settings: DownloadSettings
) -> dict:
    """Download one shard's rows and write its tar, parquet and stats (stats last); returns the stats."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.time()
    name = f"{shard:08d}"
    multiplier = key_multiplier(settings.samples_per_shard)
    with ThreadPoolExecutor(max(1, settings.threads)) as pool:
        results = list(pool.map(lambda row: _process(row, settings), rows))
    tar = TarWriter(shards_dir / f"{name}.tar.tmp")
    table_rows, status = [], Counter()
    for index, (row, (kind, value)) in enumerate(zip(rows, results, strict=True)):
        if kind != "success":
            status[value] += 1
            continue
        jpeg, prepared = value
        key = f"{shard * multiplier + index:0{KEY_DIGITS}d}"
        text = " ".join(str(row["text"] or "").split())
        width, height = (prepared.width, prepared.height)
        record = {
            "uid": row["uid"], "key": key, "url": row["url"], "text": text,
            "original_width": prepared.original_width, "original_height": prepared.original_height,
            "width": width, "height": height, "sha256": hashlib.sha256(jpeg).hexdigest(),
            "source": "commonpool", "paper_id": "", "figure_id": "", "license": None,
            "caption_chars": len(text), "caption_words": len(text.split()),
            **{column: row[column] for column in KEPT_COLUMNS if column in row},
        }  # fmt: skip
        tar.add(f"{key}.jpg", jpeg)
        tar.add(f"{key}.txt", text.encode())
        tar.add(f"{key}.json", json.dumps({**record, "caption": text}, sort_keys=True).encode())
        table_rows.append(record)
    tar.close()
    os.replace(shards_dir / f"{name}.tar.tmp", shards_dir / f"{name}.tar")
    columns = [*BASE_COLUMNS, *(c for c in KEPT_COLUMNS if any(c in r for r in table_rows))]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in table_rows]), buffer)
    atomic_write(shards_dir / f"{name}.parquet", buffer.getvalue())
    kinds = Counter(kind for kind, _ in results)
    stats = {
        "count": len(rows),
        "successes": kinds["success"],
        "failed_to_download": kinds["failed_to_download"],
        "failed_to_resize": kinds["failed_to_resize"],
        "duplicates": 0,
        "status_dict": dict(status.most_common()),
        "start_time": started,
        "end_time": time.time(),
        "settings": asdict(settings),
    }
    atomic_write(shards_dir / f"{name}_stats.json", json.dumps(stats, indent=2, sort_keys=True).encode())
    return stats


def download_images(
    parquets: list[Path],
    out_dir: Path,
    settings: DownloadSettings = DownloadSettings(),
    *,
    processes: int = 1,
    max_shards: int | None = None,
    log: Callable[[str], None] = print,
) -> PoolFetch:
    """Download the images of ``parquets`` into CommonPool shards under ``out_dir/shards`` (resumable)."""
    check_metadata(parquets)
    shards_dir = out_dir / "shards"
    shards_dir.mkdir(parents=True, exist_ok=True)
    for leftover in shards_dir.glob("*.tmp"):
        leftover.unlink()
    result = PoolFetch()

    def finish(shard: int, stats: dict[str, Any]) -> None:
        result.add(stats)
        log(f"shard {shard:08d}: {stats['successes']}/{stats['count']} images")

    # shards are read, downloaded and written one after another (a few in flight per process), so memory
    # holds a handful of shards' rows, not the pool's
    pool = (
        ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
        if processes > 1
        else None
    )
    pending: deque[tuple[int, Future]] = deque()
    try:
        for shard, rows in iter_input_shards(parquets, settings.samples_per_shard):
            if max_shards is not None and shard >= max_shards:
                break
            stats_file = shards_dir / f"{shard:08d}_stats.json"
            if stats_file.is_file():
                result.add(json.loads(stats_file.read_text()))
                result.skipped_shards += 1
            elif pool is None:
                finish(shard, download_shard(shard, rows, shards_dir, settings))
            else:
                pending.append((shard, pool.submit(download_shard, shard, rows, shards_dir, settings)))
                while len(pending) >= 2 * processes:
                    done_shard, future = pending.popleft()
                    finish(done_shard, future.result())
        while pending:
            done_shard, future = pending.popleft()
            finish(done_shard, future.result())
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    sizes = {}
    for stats_file in sorted(shards_dir.glob("*_stats.json")):
        sizes[stats_file.name.replace("_stats.json", ".tar")] = json.loads(stats_file.read_text())[
            "successes"
        ]
    encoded = json.dumps(sizes, indent=2, sort_keys=True).encode()
    atomic_write(shards_dir / "sizes.json", encoded)
    atomic_write(out_dir / "sizes.json", encoded)
    return result


# ------------------------------------------------------------------------------------------------ CLI
def cli_configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sciclip fetch commonpool``."""
    parser.add_argument("--scale", choices=sorted(SCALE_SAMPLES), default="small")
    add_common_options(parser, s3=False)
    parser.add_argument(
        "--hf-endpoint",
        default=None,
        metavar="URL",
        help="Hub endpoint (default: $HF_ENDPOINT or huggingface.co)",
    )
    parser.add_argument(
        "--repo", default=None, help=f"metadata dataset repo (default: {DEFAULTS['commonpool_repo']})"
    )
    parser.add_argument(
        "--metadata-dir", default=None, metavar="DIR", help="use these parquets, fetch no metadata"
    )
    parser.add_argument("--metadata-only", action="store_true", help="fetch the metadata, not the images")
    parser.add_argument(
        "--threads", type=int, default=DEFAULTS["threads"], metavar="N", help="threads per process"
    )
    parser.add_argument("--processes", type=int, default=DEFAULTS["processes"], metavar="N")
    parser.add_argument("--timeout-s", type=float, default=DEFAULTS["timeout_s"], metavar="S")
    parser.add_argument("--retries", type=int, default=DEFAULTS["retries"], metavar="N")
    parser.add_argument("--max-shards", type=int, default=None, metavar="N", help="only the first N shards")
    parser.add_argument("--no-blur", action="store_true", help="do not blur the face boxes")
    parser.add_argument("--samples-per-shard", type=int, default=DEFAULTS["samples_per_shard"], metavar="N")


def cli_run(args: argparse.Namespace) -> int:
    """Run ``sciclip fetch commonpool``."""
    for name in ("threads", "processes", "samples_per_shard", "max_shards"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if args.metadata_dir and not Path(args.metadata_dir).is_dir():
        raise FileNotFoundError(f"--metadata-dir {args.metadata_dir} is not a folder")
    dest = destination(args, "commonpool")
    settings = DownloadSettings(
        args.samples_per_shard, args.threads, args.timeout_s, args.retries, not args.no_blur
    )

    def run() -> int:
        if args.metadata_dir:
            parquets = sorted(Path(args.metadata_dir).rglob("*.parquet"))
        else:
            repo = args.repo or DEFAULTS["commonpool_repo"].format(scale=args.scale)
            endpoint = args.hf_endpoint or default_endpoint()
            parquets = fetch_metadata(endpoint, repo, dest / "metadata", dry_run=args.dry_run)
        # a dry run has not downloaded the metadata: the scale's size stands in for its row count
        known = bool(parquets) or args.metadata_dir is not None
        samples = check_metadata(parquets) if known else SCALE_SAMPLES[args.scale]
        if args.max_shards:
            samples = min(samples, args.max_shards * args.samples_per_shard)
        what = f"CommonPool {args.scale} images" + ("" if known else " (expected)")
        print(describe_plan(what, samples, "samples", samples * BYTES_PER_IMAGE))
        print(
            f"  {math.ceil(samples / args.samples_per_shard):,} shards; ~35 KB an image, 10-20% of URLs fail"
        )
        if args.dry_run or args.metadata_only:
            return 0
        result = download_images(
            parquets, dest, settings, processes=args.processes, max_shards=args.max_shards
        )
        print(
            f"CommonPool: {result.successes:,}/{result.count:,} images in {result.shards} shards "
            f"({result.failed_to_download:,} failed to download, {result.failed_to_resize:,} to resize; "
            f"{result.skipped_shards} shards already complete) -> {dest / 'shards'}"
        )
        return 0

    return run_reporting_errors(run)
