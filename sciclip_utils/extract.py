"""The machinery every extractor shares: Dask distribution, per-item results, manifest and resume.

Each input item (a paper or article) is processed by a source-specific function on a Dask worker, which
stores its pairs and its manifest row atomically under ``out_dir/parts/``. A rerun skips items whose part
exists. When all items are done, the parts are assembled in sorted key order into CommonPool shards, so the
final output is the same whether the run was interrupted or not.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sciclip_utils.archives import read_file_capped, read_member
from sciclip_utils.commonpool import Record, WriteStats, write_dataset
from sciclip_utils.images import PreparedImage

MANIFEST_COLUMNS = (
    "input", "paper_id", "status", "stage", "reason", "main_file", "figures_found", "pairs_written",
    "seconds", "problem_count", "problems",
)  # fmt: skip
STATUSES = ("ok", "skipped", "failed")


@dataclass(frozen=True)
class WorkItem:
    """One unit of extraction work; ``key`` is unique and stable (it names the item's part for resume)."""

    key: str
    input: str
    paper_id: str
    member: str | None = None
    offset: int | None = None
    size: int | None = None


class ExtractionError(Exception):
    """Raised by a process function: the item fails at ``stage`` for ``reason``."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


@dataclass
class ItemResult:
    """What processing one item produced: its pairs (with prepared images) and its manifest fields."""

    records: list[Record]
    status: str = "ok"
    stage: str | None = None
    reason: str | None = None
    main_file: str | None = None
    figures_found: int = 0
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExtractionSummary:
    """The outcome of a run: the manifest (one row per item), counts by status and pairs written."""

    out_dir: Path
    manifest: Any
    counts: dict[str, int]
    pairs: int
    write_stats: WriteStats


def item_bytes(item: WorkItem) -> bytes:
    """The raw bytes of an item: a member of a bulk tar (by offset) or a whole file."""
    if item.offset is not None and item.size is not None:
        return read_member(item.input, item.offset, item.size)
    return read_file_capped(item.input)


def part_path(parts_dir: Path, key: str) -> Path:
    """Where the result of the item with ``key`` is stored."""
    digest = hashlib.sha1(key.encode()).hexdigest()
    return parts_dir / digest[:2] / f"{digest}.parquet"


def process_item(item: WorkItem, process: Callable[[WorkItem], ItemResult], parts_dir: str) -> dict[str, Any]:
    """Run ``process`` on one item (on a worker), store its part atomically, return its manifest row."""
    start = time.perf_counter()
    try:
        result = process(item)
    except ExtractionError as exc:
        result = ItemResult([], status="failed", stage=exc.stage, reason=exc.reason)
    except Exception as exc:  # one bad item must never stop the batch
        result = ItemResult([], status="failed", stage="unknown", reason=f"{type(exc).__name__}: {exc}")
    row = manifest_row(item, result, time.perf_counter() - start)
    write_part(part_path(Path(parts_dir), item.key), result.records, row)
    return row


def manifest_row(item: WorkItem, result: ItemResult, seconds: float) -> dict[str, Any]:
    """One manifest row for an item."""
    if result.status not in STATUSES:
        raise ValueError(f"unknown status {result.status!r}")
    return {
        "key": item.key,
        "input": item.input if item.member is None else f"{item.input}!{item.member}",
        "paper_id": item.paper_id,
        "status": result.status,
        "stage": result.stage,
        "reason": result.reason,
        "main_file": result.main_file,
        "figures_found": result.figures_found,
        "pairs_written": len(result.records),
        "seconds": round(seconds, 4),
        "problem_count": len(result.problems),
        "problems": list(result.problems),
        **result.extra,
    }


def write_part(path: Path, records: list[Record], row: dict[str, Any]) -> None:
    """Store an item's records and manifest row as one parquet file, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [r.image for r in records]
    if not all(isinstance(image, PreparedImage) for image in images):
        raise TypeError("records must carry PreparedImage images (prepare them in the worker)")
    table = pa.table(
        {
            "jpeg": pa.array([image.jpeg for image in images], pa.binary()),
            "original_width": pa.array([image.original_width for image in images], pa.int64()),
            "original_height": pa.array([image.original_height for image in images], pa.int64()),
            "text": pa.array([r.text for r in records], pa.string()),
            "source": pa.array([r.source for r in records], pa.string()),
            "paper_id": pa.array([r.paper_id for r in records], pa.string()),
            "figure_id": pa.array([r.figure_id for r in records], pa.string()),
            "license": pa.array([r.license for r in records], pa.string()),
            "url": pa.array([r.url for r in records], pa.string()),
            "extra": pa.array([json.dumps(r.extra, sort_keys=True) for r in records], pa.string()),
        }
    ).replace_schema_metadata({"sciclip_row": json.dumps(row, sort_keys=True, default=str)})
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


def read_part(path: Path) -> tuple[dict[str, Any], list[Record]]:
    """Load an item's manifest row and records from its part file."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    row = json.loads(table.schema.metadata[b"sciclip_row"])
    records = [
        Record(
            image=PreparedImage(r["jpeg"], r["original_width"], r["original_height"]),
            text=r["text"],
            source=r["source"],
            paper_id=r["paper_id"],
            figure_id=r["figure_id"],
            license=r["license"],
            url=r["url"],
            extra=json.loads(r["extra"]),
        )
        for r in table.to_pylist()
    ]
    return row, records


def run_extraction(
    items: Sequence[WorkItem],
    process: Callable[[WorkItem], ItemResult],
    out_dir: str | Path,
    *,
    source: str,
    workers: int | None = None,
    scheduler: str | None = None,
    max_items: int | None = None,
    samples_per_shard: int = 10_000,
    progress: bool = True,
) -> ExtractionSummary:
    """Process ``items`` (resuming), then assemble shards, ``sizes.json`` and ``manifest.parquet``.

    ``workers=0`` runs in this process (no Dask); otherwise an embedded ``LocalCluster`` with ``workers``
    processes (default: CPU count), or the cluster at ``scheduler`` (its workers must see ``out_dir``).
    """
    out = Path(out_dir)
    parts_dir = out / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    unique = sorted({item.key: item for item in items}.values(), key=lambda item: item.key)
    selected = unique[:max_items] if max_items is not None else unique
    todo = [item for item in selected if not part_path(parts_dir, item.key).is_file()]
    if todo:
        if workers == 0 and scheduler is None:
            for item in _progress(todo, progress, source):
                process_item(item, process, str(parts_dir))
        else:
            _run_on_dask(
                todo,
                process,
                parts_dir,
                source=source,
                workers=workers,
                scheduler=scheduler,
                progress=progress,
            )
    return assemble(selected, out, source=source, samples_per_shard=samples_per_shard)


def _progress(iterable: Any, enabled: bool, source: str, total: int | None = None) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=f"extract {source}", unit="item")


def _run_on_dask(
    todo: list[WorkItem],
    process: Callable[[WorkItem], ItemResult],
    parts_dir: Path,
    *,
    source: str,
    workers: int | None,
    scheduler: str | None,
    progress: bool,
) -> None:
    import dask
    from distributed import Client, LocalCluster, as_completed

    with dask.config.set({"distributed.scheduler.allowed-failures": 1, "distributed.worker.daemon": False}):
        if scheduler is not None:
            client, cluster = Client(scheduler), None
        else:
            n_workers = workers or os.cpu_count() or 1
            cluster = LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
        try:
            futures = client.map(process_item, todo, process=process, parts_dir=str(parts_dir), pure=False)
            by_key = {future.key: item for future, item in zip(futures, todo, strict=True)}
            for future in _progress(
                as_completed(futures), progress, todo[0].paper_id[:0] or "items", len(todo)
            ):
                if future.status == "error":
                    item = by_key[future.key]
                    exc = future.exception()
                    reason = f"worker died or task errored ({type(exc).__name__}: {exc})"
                    result = ItemResult([], status="failed", stage="worker", reason=reason)
                    write_part(part_path(parts_dir, item.key), [], manifest_row(item, result, 0.0))
                future.release()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _iter_parts(items: Sequence[WorkItem], parts_dir: Path) -> Iterator[tuple[dict[str, Any], list[Record]]]:
    for item in items:
        yield read_part(part_path(parts_dir, item.key))


def assemble(
    items: Sequence[WorkItem], out: Path, *, source: str, samples_per_shard: int = 10_000
) -> ExtractionSummary:
    """Write shards and the manifest from the parts of ``items`` (all must be processed)."""
    import pandas as pd

    parts_dir = out / "parts"
    fingerprint = hashlib.sha256("\n".join(item.key for item in items).encode()).hexdigest()
    marker = out / "assembled.json"
    done = marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == fingerprint
    if not done and (out / "shards").is_dir():
        started = out / "assembling.json"
        if not (started.is_file() and json.loads(started.read_text()).get("fingerprint") == fingerprint):
            shutil.rmtree(out / "shards")  # assembled for another item set: rebuild
    rows: list[dict[str, Any]] = []

    def records() -> Iterator[Record]:
        for row, item_records in _iter_parts(items, parts_dir):
            rows.append(row)
            yield from item_records

    if done:
        rows = [read_part(part_path(parts_dir, item.key))[0] for item in items]
        stats = WriteStats(**json.loads(marker.read_text())["write_stats"])
    else:
        (out / "assembling.json").write_text(json.dumps({"fingerprint": fingerprint}))
        stats = write_dataset(records(), out, samples_per_shard)
    manifest = pd.DataFrame(rows, columns=None if rows else ["key", *MANIFEST_COLUMNS])
    for column in MANIFEST_COLUMNS:
        if column not in manifest:
            manifest[column] = None
    manifest = manifest[
        ["key", *MANIFEST_COLUMNS, *[c for c in manifest if c not in MANIFEST_COLUMNS and c != "key"]]
    ]
    tmp = out / "manifest.parquet.tmp"
    manifest.to_parquet(tmp, index=False)
    os.replace(tmp, out / "manifest.parquet")
    if not done:
        marker.write_text(
            json.dumps({"fingerprint": fingerprint, "source": source, "write_stats": stats.__dict__})
        )
        (out / "assembling.json").unlink()
    counts = {status: int((manifest["status"] == status).sum()) for status in STATUSES}
    return ExtractionSummary(out, manifest, counts, stats.written, stats)
