"""The extraction runner: Dask distribution, resume and assembly.

Each input item (a paper or article) is processed by a source-specific function on a Dask worker (a few
consecutive items per Dask task), in a sandbox (:mod:`.sandbox`), which stores its pairs and its manifest
row atomically as a part (:mod:`.parts`). A rerun skips items whose part exists. When all items are done,
the parts are assembled in sorted key order into CommonPool shards, so the final output is the same
whether the run was interrupted or not (killed at any moment, resumed any number of times). A Dask worker
that dies anyway (isolation off) is replaced by its nanny and its item is marked ``failed`` (stage
``worker``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sciclip_utils.cluster import dask_client
from sciclip_utils.commonpool import Record, WriteStats, dedup_key, record_uid, write_dataset
from sciclip_utils.extract.items import STATUSES, ItemResult, WorkItem
from sciclip_utils.extract.parts import (
    MANIFEST_COLUMNS,
    manifest_row,
    part_path,
    read_part,
    read_part_row,
    write_part,
)
from sciclip_utils.extract.sandbox import ENV_ISOLATE, ItemLimits, close_sandbox, run_item
from sciclip_utils.files import atomic_write
from sciclip_utils.files import progress as show_progress


@dataclass
class ExtractionSummary:
    """The outcome of a run: the manifest (one row per item), counts by status and pairs written."""

    out_dir: Path
    manifest: Any
    counts: dict[str, int]
    pairs: int
    write_stats: WriteStats


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
    limits: ItemLimits | None = None,
    isolate: bool | None = None,
) -> ExtractionSummary:
    """Process ``items`` (resuming), then assemble shards, ``sizes.json`` and ``manifest.parquet``.

    ``workers=0`` runs in this process (no Dask); otherwise an embedded ``LocalCluster`` with ``workers``
    processes (default: CPU count), or the cluster at ``scheduler`` (its workers must see ``out_dir``).
    ``isolate`` (default: on, unless ``SCICLIP_ISOLATE=0``) runs each item in a child process under
    ``limits`` (default: :meth:`ItemLimits.from_env`).
    """
    out = Path(out_dir).absolute()  # workers and converters (Ghostscript) run in other directories
    parts_dir = out / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    for leftover in parts_dir.glob("*/*.tmp"):  # parts being written when a run was killed
        leftover.unlink(missing_ok=True)
    if isolate is None:
        isolate = hasattr(os, "fork") and os.environ.get(ENV_ISOLATE, "1") != "0"
    item_limits = (limits or ItemLimits.from_env()) if isolate else None
    unique = sorted({item.key: item for item in items}.values(), key=lambda item: item.key)
    selected = unique[:max_items] if max_items is not None else unique
    todo = [item for item in selected if not part_path(parts_dir, item.key).is_file()]
    if todo:
        if workers == 0 and scheduler is None:
            try:
                for item in show_progress(todo, progress, f"extract {source}", "item"):
                    run_item(item, process, str(parts_dir), item_limits)
            finally:
                close_sandbox()
        else:
            _run_on_dask(
                todo,
                process,
                parts_dir,
                source=source,
                workers=workers,
                scheduler=scheduler,
                progress=progress,
                limits=item_limits,
            )
    shutil.rmtree(out / "tmp", ignore_errors=True)
    return assemble(selected, out, source=source, samples_per_shard=samples_per_shard)


DASK_SETTINGS = {  # of the LocalCluster run_extraction starts
    "distributed.scheduler.allowed-failures": 1,  # a task that kills its worker twice is failed
    "distributed.scheduler.worker-saturation": 1.0,  # one task per worker: a death blames only it
    # Dask's own periodic work (a statistical profiler sampling every task 100 times a second, event-loop
    # ticks, system and memory monitors) takes about 12 % of a core with two idle workers, more under load:
    # CPU the items' processes need when there are as many workers as cores. Items run in sandboxes under
    # their own memory cap (unless isolation is off), so the memory monitor need not look ten times a second.
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
}
TASKS_PER_WORKER = 8  # tasks per worker at least: the last ones still even out the workers' loads
MAX_ITEMS_PER_TASK = 8


def _run_on_dask(
    todo: list[WorkItem],
    process: Callable[[WorkItem], ItemResult],
    parts_dir: Path,
    *,
    source: str,
    workers: int | None,
    scheduler: str | None,
    progress: bool,
    limits: ItemLimits | None,
) -> None:
    """Run ``todo`` on Dask in tasks of several items (see :func:`task_batches`); the items left without a
    part by a task that failed (its worker died twice) run again one per task, so that only the item that
    kills its worker is marked ``failed`` (stage ``worker``)."""
    with dask_client(workers, scheduler, parts_dir.parent / "tmp" / "dask", DASK_SETTINGS) as client:
        batches = task_batches(todo, sum(client.nthreads().values()))
        bar = show_progress(None, progress, f"extract {source}", "item", len(todo))
        failed = _run_batches(client, batches, process, parts_dir, limits, bar)
        left = [item for batch, _ in failed for item in batch if not part_path(parts_dir, item.key).is_file()]
        for (item,), exc in _run_batches(client, [[item] for item in left], process, parts_dir, limits, bar):
            reason = f"worker died or task errored ({type(exc).__name__}: {exc})"
            result = ItemResult([], status="failed", stage="worker", reason=reason)
            write_part(part_path(parts_dir, item.key), [], manifest_row(item, result, 0.0))
        if progress:
            bar.close()


def task_batches(todo: list[WorkItem], threads: int) -> list[list[WorkItem]]:
    """``todo``, largest input first, in consecutive batches, one Dask task each: up to
    :data:`MAX_ITEMS_PER_TASK` items, and at least :data:`TASKS_PER_WORKER` tasks per worker thread.

    Fewer, larger tasks cost the scheduler, the client and the workers less per item (what two workers on
    two cores compete with them for). Dask starts tasks in the order they are submitted, so the largest
    items start first and the last tasks to finish are small ones: the workers finish close together.
    """
    ordered = sorted(todo, key=_input_bytes, reverse=True)  # stable: equal sizes keep their order
    size = max(1, min(MAX_ITEMS_PER_TASK, len(ordered) // (max(threads, 1) * TASKS_PER_WORKER)))
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


def _input_bytes(item: WorkItem) -> int:
    """The bytes an item reads, roughly how long it takes: a bulk-tar member's size, a file's size (one
    ``stat``, as the check for its part costs); 0 for a folder (listing millions of article folders
    would cost more than it saves) or a file that cannot be read."""
    if item.size is not None:
        return item.size
    try:
        info = os.stat(item.input)
    except OSError:
        return 0
    return 0 if stat.S_ISDIR(info.st_mode) else info.st_size


def _run_batches(
    client: Any,
    batches: list[list[WorkItem]],
    process: Callable[[WorkItem], ItemResult],
    parts_dir: Path,
    limits: ItemLimits | None,
    bar: Any,
) -> list[tuple[list[WorkItem], BaseException]]:
    """Run each batch as one task; the batches whose task failed, with the exception."""
    from distributed import as_completed

    futures = client.map(
        run_items, batches, process=process, parts_dir=str(parts_dir), limits=limits, pure=False
    )
    by_key = {future.key: batch for future, batch in zip(futures, batches, strict=True)}
    failed = []
    for future in as_completed(futures):
        batch = by_key[future.key]
        if future.status == "error":
            failed.append((batch, future.exception()))
        if bar is not None:
            bar.update(len(batch))
        future.release()
    return failed


def run_items(
    items: list[WorkItem],
    process: Callable[[WorkItem], ItemResult],
    parts_dir: str,
    limits: ItemLimits | None = None,
) -> int:
    """:func:`run_item` on each item that has no part yet (a task run again after its worker died resumes
    where it stopped); the number of items run."""
    todo = [item for item in items if not part_path(Path(parts_dir), item.key).is_file()]
    for item in todo:
        run_item(item, process, parts_dir, limits)
    return len(todo)


def _iter_parts(items: Sequence[WorkItem], parts_dir: Path) -> Iterator[tuple[dict[str, Any], list[Record]]]:
    for item in items:
        yield read_part(part_path(parts_dir, item.key))


def assemble(
    items: Sequence[WorkItem], out: Path, *, source: str, samples_per_shard: int = 10_000
) -> ExtractionSummary:
    """Write shards and the manifest from the parts of ``items`` (all must be processed).

    Exact duplicates (same image bytes and caption as a pair written before) are not written again: an
    item's manifest row counts them apart (``pairs_written`` excludes them, ``pairs_duplicate`` and
    ``duplicate_of``, the uids they repeat, name them), and an item whose pairs were all duplicates is
    ``skipped`` at stage ``duplicates``.

    Crash-safe: ``assembling.json`` marks shards being written for this item set (a rerun continues them),
    ``assembled.json`` marks them complete; both are written atomically, and shards of any other item set
    (or shard size) are removed before a new assembly starts.
    """
    import pandas as pd

    parts_dir = out / "parts"
    identity = "\n".join([source, str(samples_per_shard), *(item.key for item in items)])
    fingerprint = hashlib.sha256(identity.encode()).hexdigest()
    marker, started = out / "assembled.json", out / "assembling.json"
    finished = _read_json(marker)
    done = finished is not None and finished.get("fingerprint") == fingerprint and "duplicates" in finished
    rows: list[dict[str, Any]] = []
    duplicates: dict[str, list[str]] = {}  # item key -> uids its dropped pairs duplicate
    if done:
        rows = [read_part_row(part_path(parts_dir, item.key)) for item in items]
        stats = WriteStats(**finished["write_stats"])
        duplicates = finished["duplicates"]
    else:
        if (_read_json(started) or {}).get("fingerprint") != fingerprint:
            marker.unlink(missing_ok=True)
            shutil.rmtree(out / "shards", ignore_errors=True)  # another item set's shards: start afresh
            (out / "sizes.json").unlink(missing_ok=True)
            _write_json(started, {"fingerprint": fingerprint})
        marker.unlink(missing_ok=True)

        def records() -> Iterator[Record]:
            written: dict[tuple[str, str], str] = {}  # dedup key -> uid of the pair written with it
            for row, item_records in _iter_parts(items, parts_dir):
                rows.append(row)
                for record in item_records:
                    key = dedup_key(record.image.jpeg, record.text)
                    if key in written:
                        duplicates.setdefault(row["key"], []).append(written[key])
                    else:
                        written[key] = record_uid(record, key[0])
                yield from item_records

        stats = write_dataset(records(), out, samples_per_shard)
    for row in rows:
        _count_duplicates(row, duplicates.get(row["key"], []))
    manifest = pd.DataFrame(rows, columns=None if rows else ["key", *MANIFEST_COLUMNS])
    for column in MANIFEST_COLUMNS:
        if column not in manifest:
            manifest[column] = None
    manifest = manifest[
        ["key", *MANIFEST_COLUMNS, *[c for c in manifest if c not in MANIFEST_COLUMNS and c != "key"]]
    ]
    buffer = io.BytesIO()
    manifest.to_parquet(buffer, index=False)
    atomic_write(out / "manifest.parquet", buffer.getvalue())
    if not done:
        _write_json(
            marker,
            {
                "fingerprint": fingerprint,
                "source": source,
                "write_stats": stats.__dict__,
                "duplicates": duplicates,
            },
        )
    started.unlink(missing_ok=True)
    counts = {status: int((manifest["status"] == status).sum()) for status in STATUSES}
    return ExtractionSummary(out, manifest, counts, stats.written, stats)


def _count_duplicates(row: dict[str, Any], duplicate_of: list[str]) -> None:
    """Record in an item's manifest row which of its pairs were dropped as exact duplicates."""
    row["pairs_written"] -= len(duplicate_of)
    row["pairs_duplicate"] = len(duplicate_of)
    row["duplicate_of"] = duplicate_of
    if duplicate_of and row["pairs_written"] == 0 and row["status"] == "ok":
        row["status"], row["stage"] = "skipped", "duplicates"
        row["reason"] = f"all {len(duplicate_of)} pairs duplicate pairs written before"


def _read_json(path: Path) -> dict[str, Any] | None:
    """A marker's content, or None if it is missing or unreadable."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_json(path: Path, value: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(value, sort_keys=True).encode())
