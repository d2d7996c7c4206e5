"""The machinery every extractor shares: Dask distribution, per-item isolation, manifest and resume.

Each input item (a paper or article) is processed by a source-specific function on a Dask worker, which
stores its pairs and its manifest row atomically under ``out_dir/parts/``. A rerun skips items whose part
exists. When all items are done, the parts are assembled in sorted key order into CommonPool shards, so the
final output is the same whether the run was interrupted or not (killed at any moment, resumed any number
of times).

Isolation: by default items run in a sandbox, a child process forked from the worker (or from this process
with ``workers=0``) that takes one item at a time under a wall-clock timeout and an address-space cap, and
is replaced when an item kills it. A hang (a regex, pdfium, Ghostscript), a memory blow-up or a native crash
then costs one item - its manifest row says ``failed`` with stage ``timeout``, ``memory`` or ``crash`` -
and never the batch; anything the item started (Ghostscript) is killed with it. Temporary files of items
live in ``out_dir/tmp/`` and are removed after each item. A Dask worker that dies anyway (isolation off)
is replaced by its nanny and its item is marked ``failed`` (stage ``worker``).

The ``sciclip extract SOURCE`` commands share their run options and exit codes (:func:`run_extraction_cli`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import io
import json
import math
import os
import pickle
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from sciclip_utils.archives import ArchiveError, read_file_capped, read_member
from sciclip_utils.commonpool import Record, WriteStats, atomic_write, write_dataset
from sciclip_utils.images import PreparedImage, jpeg_size

MANIFEST_COLUMNS = (
    "input", "paper_id", "status", "stage", "reason", "main_file", "figures_found", "pairs_written",
    "seconds", "problem_count", "problems",
)  # fmt: skip
STATUSES = ("ok", "skipped", "failed")
DEFAULT_ITEM_TIMEOUT_S = 600.0
DEFAULT_ITEM_MEMORY_BYTES = 4 * 2**30
ENV_ITEM_TIMEOUT = "SCICLIP_ITEM_TIMEOUT_S"  # seconds; 0 = no timeout
ENV_ITEM_MEMORY = "SCICLIP_ITEM_MEMORY_MB"  # MiB; 0 = no cap
ENV_ISOLATE = "SCICLIP_ISOLATE"  # 0 = run items without a child process (no timeout, no memory cap)
_EXIT_GRACE_S = 1.0  # after the child exits, how long its result pipe may stay open


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


@dataclass(frozen=True)
class ItemLimits:
    """Limits on one item's child process: wall-clock seconds and address space beyond the worker's own
    (None = unlimited)."""

    timeout_s: float | None = DEFAULT_ITEM_TIMEOUT_S
    memory_bytes: int | None = DEFAULT_ITEM_MEMORY_BYTES

    @property
    def memory_note(self) -> str:
        """Appended to memory-related failure reasons."""
        return "" if self.memory_bytes is None else f" (item memory cap {self.memory_bytes // 2**20} MiB)"

    @classmethod
    def from_env(cls) -> ItemLimits:
        """The defaults, or ``SCICLIP_ITEM_TIMEOUT_S`` / ``SCICLIP_ITEM_MEMORY_MB`` when set (0 = none)."""
        timeout = float(os.environ.get(ENV_ITEM_TIMEOUT, DEFAULT_ITEM_TIMEOUT_S))
        memory = int(float(os.environ.get(ENV_ITEM_MEMORY, DEFAULT_ITEM_MEMORY_BYTES / 2**20)) * 2**20)
        return cls(timeout if timeout > 0 else None, memory if memory > 0 else None)


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


def process_item(
    item: WorkItem,
    process: Callable[[WorkItem], ItemResult],
    parts_dir: str,
    limits: ItemLimits | None = None,
) -> dict[str, Any]:
    """Run ``process`` on one item, store its part atomically, return its manifest row.

    With ``limits`` the item runs in this thread's sandbox process under those limits (see the module
    doc); without, in this process.
    """
    if limits is None or not hasattr(os, "fork"):
        return _process_here(item, process, parts_dir)
    return _process_isolated(item, process, Path(parts_dir), limits)


def _process_here(
    item: WorkItem, process: Callable[[WorkItem], ItemResult], parts_dir: str, memory_note: str = ""
) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        result = process(item)
    except ExtractionError as exc:
        result = ItemResult([], status="failed", stage=exc.stage, reason=exc.reason)
    except MemoryError:
        result = ItemResult([], status="failed", stage="memory", reason=f"out of memory{memory_note}")
    except Exception as exc:  # one bad item must never stop the batch
        result = ItemResult([], status="failed", stage="unknown", reason=f"{type(exc).__name__}: {exc}")
    row = manifest_row(item, result, time.perf_counter() - start)
    write_part(part_path(Path(parts_dir), item.key), result.records, row)
    return row


def _process_isolated(
    item: WorkItem, process: Callable[[WorkItem], ItemResult], parts_dir: Path, limits: ItemLimits
) -> dict[str, Any]:
    """Run the item in this thread's sandbox; on a timeout or a dead sandbox store a ``failed`` part."""
    start = time.perf_counter()
    for _ in range(2):  # a sandbox that had left on its own (idle) is replaced once
        sandbox = _Sandbox.get(process, parts_dir, limits)
        kind, value = sandbox.run(item)
        if kind != "gone":
            break
    if kind == "ok":
        return value
    if kind == "error" and not isinstance(value, MemoryError):
        raise value  # not the item's fault (e.g. its part could not be stored): stop the run
    part = part_path(parts_dir, item.key)
    if kind != "error" and part.is_file():  # stored just before the sandbox was killed
        return read_part_row(part)
    part.with_name(f"{part.name}.{sandbox.pid}.tmp").unlink(missing_ok=True)
    if kind == "error":
        stage, reason = "memory", f"out of memory{limits.memory_note}"
    elif kind == "timeout":
        stage, reason = "timeout", f"no result after {limits.timeout_s:g} s: item process killed"
    elif os.WIFSIGNALED(value):
        name = _signal_name(os.WTERMSIG(value))
        stage, reason = (
            "crash",
            f"item process killed by {name}{limits.memory_note if name in _NATIVE_OOM else ''}",
        )
    else:
        stage, reason = (
            "crash",
            f"item process exited with code {os.waitstatus_to_exitcode(value)}, no result",
        )
    result = ItemResult([], status="failed", stage=stage, reason=reason)
    row = manifest_row(item, result, time.perf_counter() - start)
    write_part(part, [], row)
    return row


_NATIVE_OOM = {"SIGABRT", "SIGSEGV", "SIGBUS", "SIGKILL"}  # how native code may die at the memory cap


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Sandbox:
    """A child process forked from this one that runs items one at a time under :class:`ItemLimits`.

    Forking once per item would cost ~10 ms on a VM; the sandbox is reused until an item times out,
    crashes it, hits the memory cap, or it has run ``MAX_ITEMS`` items (or grown by half its memory cap).
    Items travel as pickles over one pipe, results over another; only the result row comes back, the
    child stores the item's part itself.
    """

    MAX_ITEMS = 2_000
    IDLE_EXIT_S = 120.0
    _local = threading.local()
    _parent_fds: set[int] = set()  # every sandbox's pipe ends in this process (closed in new children)

    @classmethod
    def get(cls, process: Callable[[WorkItem], ItemResult], parts_dir: Path, limits: ItemLimits) -> _Sandbox:
        """This thread's sandbox for ``process``, started (again) if needed."""
        try:
            identity: Any = pickle.dumps(process)
        except Exception:  # a closure: only this very object
            identity = id(process)
        key = (identity, str(parts_dir), limits)
        current: _Sandbox | None = getattr(cls._local, "sandbox", None)
        if current is not None and (current.key != key or not current.alive):
            current.close()
            current = None
        if current is None:
            current = cls._local.sandbox = _Sandbox(key, process, parts_dir, limits)
        return current

    @classmethod
    def close_current(cls) -> None:
        """Stop this thread's sandbox (at the end of a run)."""
        current: _Sandbox | None = getattr(cls._local, "sandbox", None)
        if current is not None:
            current.close()
            cls._local.sandbox = None

    def __init__(
        self, key: Any, process: Callable[[WorkItem], ItemResult], parts_dir: Path, limits: ItemLimits
    ) -> None:
        _prepare_parent()
        self.key, self.limits, self.alive = key, limits, True
        self.scratch_root = parts_dir.parent / "tmp"
        child_in, self._to_child = os.pipe()
        self._from_child, child_out = os.pipe()
        _flush_output()
        pid = os.fork()
        if pid == 0:
            for fd in (self._to_child, self._from_child, *self._parent_fds):
                with contextlib.suppress(OSError):
                    os.close(fd)
            _sandbox_main(process, parts_dir, limits, child_in, child_out)
        os.close(child_in)
        os.close(child_out)
        self._parent_fds.update((self._to_child, self._from_child))
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # the child does it too: whichever runs first
        self.pid = pid
        self._pidfd = _pidfd(pid)

    def run(self, item: WorkItem) -> tuple[str, Any]:
        """``("ok", row)``, ``("error", exception)``, ``("timeout", None)``, ``("died", wait status)``, or
        ``("gone", None)`` if the child had left on its own (idle) before taking the item."""
        try:
            _send(self._to_child, item)
        except OSError:  # it had exited (idle)
            self.close(kill=True)
            return "gone", None
        deadline = None if self.limits.timeout_s is None else time.monotonic() + self.limits.timeout_s
        try:
            message = _receive(self._from_child, deadline, self._pidfd)
        except TimeoutError:
            self.close(kill=True)
            return "timeout", None
        except BaseException:
            self.close(kill=True)
            raise
        if message is None:
            status = self.close(kill=True)
            return (
                ("gone", None) if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else ("died", status)
            )
        kind, value, recycle = message
        if recycle:
            self.close()
        return kind, value

    def close(self, *, kill: bool = False) -> int:
        """Stop the child (EOF on its input, or SIGKILL to its process group); returns its wait status."""
        if not self.alive:
            return 0
        self.alive = False
        for fd in (self._to_child, self._from_child):
            self._parent_fds.discard(fd)
            os.close(fd)
        if kill or not _exits_within(self._pidfd, _EXIT_GRACE_S * 5):
            _kill_group(self.pid)
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: its group id is ours
        _kill_group(self.pid)  # anything it started and left behind
        status = os.waitpid(self.pid, 0)[1]
        if self._pidfd is not None:
            os.close(self._pidfd)
        shutil.rmtree(self.scratch_root / f"sandbox-{self.pid}", ignore_errors=True)
        return status


def _sandbox_main(
    process: Callable[[WorkItem], ItemResult],
    parts_dir: Path,
    limits: ItemLimits,
    read_fd: int,
    write_fd: int,
) -> NoReturn:
    """The sandbox child: receive items, process them (each stores its part), send back the rows."""
    try:
        gc.freeze()  # the inherited heap is never scanned (no copy-on-write of all of it)
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        _die_with_parent()
        keep_freed_memory()
        _use_file_descriptors_for_output()
        scratch = parts_dir.parent / "tmp" / f"sandbox-{os.getpid()}"
        tempfile.tempdir = os.environ["TMPDIR"] = str(scratch)
        base = _address_space()
        if limits.memory_bytes is not None:
            _cap_address_space(base + limits.memory_bytes)
        for count in range(1, _Sandbox.MAX_ITEMS + 1):
            try:
                item = _receive(read_fd, time.monotonic() + _Sandbox.IDLE_EXIT_S, None)
            except TimeoutError:
                break
            if item is None:
                break
            _empty_folder(scratch)
            try:
                kind, value = "ok", _process_here(item, process, str(parts_dir), limits.memory_note)
            except BaseException as exc:  # reported to the parent, which decides
                kind, value = "error", exc
            grown = limits.memory_bytes is not None and _address_space() > base + limits.memory_bytes // 2
            recycle = kind == "error" or grown or count == _Sandbox.MAX_ITEMS
            try:
                _send(write_fd, (kind, value, recycle))
            except (pickle.PicklingError, TypeError, AttributeError):
                _send(write_fd, ("error", RuntimeError(f"{type(value).__name__}: {value}"), True))
            if recycle:
                break
        _flush_output()
    finally:
        os._exit(0)


def _empty_folder(folder: Path) -> None:
    """Make ``folder`` exist and be empty (an item's temporary files are gone before the next item)."""
    try:
        with os.scandir(folder) as entries:
            dirty = any(True for _ in entries)
    except FileNotFoundError:
        dirty = False
    if dirty:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def _send(fd: int, value: Any) -> None:
    """Write one length-prefixed pickle to a pipe."""
    payload = pickle.dumps(value)
    view = memoryview(len(payload).to_bytes(8, "little") + payload)
    while view:
        view = view[os.write(fd, view) :]


def _receive(fd: int, deadline: float | None, pidfd: int | None) -> Any:
    """Read one length-prefixed pickle; None if the writer is gone; TimeoutError after ``deadline``."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    buffer = bytearray()
    size: int | None = None
    while size is None or len(buffer) < size + 8:
        wait_ms = None if deadline is None else max(0.0, deadline - time.monotonic()) * 1000
        events = poller.poll(wait_ms)
        if not events:
            raise TimeoutError
        for ready, _ in events:
            if ready != fd:  # the writer exited: what it wrote is still readable, then EOF
                poller.unregister(ready)
                grace = time.monotonic() + _EXIT_GRACE_S
                deadline = grace if deadline is None else min(deadline, grace)
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            buffer += chunk
            if size is None and len(buffer) >= 8:
                size = int.from_bytes(buffer[:8], "little")
    return pickle.loads(buffer[8:])


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _exits_within(pidfd: int | None, seconds: float) -> bool:
    """Whether the process behind ``pidfd`` exits within ``seconds`` (True if it cannot be watched)."""
    if pidfd is None:
        return True
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(seconds * 1000))


def _kill_group(pid: int) -> None:
    """SIGKILL the item's process group (the child and anything it started, e.g. Ghostscript)."""
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
            return
        except (ProcessLookupError, PermissionError):
            continue


_PARENT_READY = False


def _prepare_parent() -> None:
    """Import and initialise once, in the forking process, what every sandbox needs (else each new sandbox
    pays for it again: pyarrow's first parquet write alone takes ~0.5 s)."""
    global _PARENT_READY
    if _PARENT_READY:
        return
    from PIL import Image

    from sciclip_utils.images import prepare_image

    with contextlib.suppress(ImportError):
        import pypdfium2  # noqa: F401
    Image.init()
    record = Record(prepare_image(Image.new("RGB", (4, 4))), "warm-up", "warm-up", "warm-up", "warm-up")
    _part_bytes([record], {})
    _PARENT_READY = True


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()


def _use_file_descriptors_for_output() -> None:
    """In the child, write stdout/stderr straight to fds 1/2 (a notebook's streams belong to its threads)."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        try:
            getattr(sys, name).fileno()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            setattr(sys, name, open(fd, "w", closefd=False, errors="replace"))


def _die_with_parent() -> None:
    """Linux: the child is killed if the process waiting for it dies (no orphaned hung items)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_KEEP_FREED_BYTES = 32 * 2**20  # glibc's largest mmap threshold


def keep_freed_memory() -> None:
    """glibc: serve image-sized buffers (up to 32 MiB) from the heap and keep up to 32 MiB of freed heap,
    rather than map fresh pages for every buffer and unmap them again. A first touch of a page costs ~1 us
    on a VM: about 0.8 ms per figure (decode, resize and encode buffers), a quarter of its processing.
    Called in the sandbox process that runs extraction items (its own process, never the user's)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_FREED_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES)
    except (OSError, AttributeError):  # not glibc
        pass


def _address_space() -> int:
    """This process's virtual memory size in bytes (0 if unknown)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _cap_address_space(total_bytes: int) -> None:
    """Limit this process's address space (allocations beyond fail: MemoryError, or a native abort)."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = total_bytes if hard == resource.RLIM_INFINITY else min(total_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


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
    data = _part_bytes(records, row)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")  # per process: a retried item may overlap
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _part_bytes(records: list[Record], row: dict[str, Any]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [r.image for r in records]
    if not all(isinstance(image, PreparedImage) for image in images):
        raise TypeError("records must carry PreparedImage images (prepare them in the worker)")
    table = pa.table(
        {
            "jpeg": pa.array([image.jpeg for image in images], pa.binary()),
            "width": pa.array([image.width for image in images], pa.int64()),
            "height": pa.array([image.height for image in images], pa.int64()),
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
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="none", use_dictionary=False)  # snappy: < 1% off figure JPEGs
    return buffer.getvalue()


def read_part_row(path: Path) -> dict[str, Any]:
    """Only the manifest row of an item's part (its parquet metadata)."""
    import pyarrow.parquet as pq

    return json.loads(pq.read_schema(path).metadata[b"sciclip_row"])


def read_part(path: Path) -> tuple[dict[str, Any], list[Record]]:
    """Load an item's manifest row and records from its part file."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as part:  # half the cost of read_table (no dataset discovery)
        table = part.read()
    row = json.loads(table.schema.metadata[b"sciclip_row"])
    records = []
    for r in table.to_pylist():
        size = (r["width"], r["height"]) if "width" in r else jpeg_size(r["jpeg"])  # older parts: no size
        records.append(
            Record(
                image=PreparedImage(r["jpeg"], *size, r["original_width"], r["original_height"]),
                text=r["text"],
                source=r["source"],
                paper_id=r["paper_id"],
                figure_id=r["figure_id"],
                license=r["license"],
                url=r["url"],
                extra=json.loads(r["extra"]),
            )
        )
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
                for item in _progress(todo, progress, source):
                    process_item(item, process, str(parts_dir), item_limits)
            finally:
                _Sandbox.close_current()
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
    limits: ItemLimits | None,
) -> None:
    import dask
    from distributed import Client, LocalCluster, as_completed

    settings = {
        "distributed.scheduler.allowed-failures": 1,  # an item that kills its worker twice is failed
        "distributed.scheduler.worker-saturation": 1.0,  # one task per worker: a death blames only it
        "distributed.worker.daemon": False,
        "temporary-directory": str(parts_dir.parent / "tmp" / "dask"),  # Dask's scratch files and locks too
    }
    with dask.config.set(settings):
        if scheduler is not None:
            client, cluster = Client(scheduler), None
        else:
            n_workers = workers or os.cpu_count() or 1
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",  # nothing listens beyond this machine
                dashboard_address="127.0.0.1:0",  # the scheduler's HTTP server: any free port
            )
            client = Client(cluster)
        try:
            futures = client.map(
                process_item, todo, process=process, parts_dir=str(parts_dir), limits=limits, pure=False
            )
            by_key = {future.key: item for future, item in zip(futures, todo, strict=True)}
            for future in _progress(as_completed(futures), progress, source, len(todo)):
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
    """Write shards and the manifest from the parts of ``items`` (all must be processed).

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
    done = finished is not None and finished.get("fingerprint") == fingerprint
    rows: list[dict[str, Any]] = []
    if done:
        rows = [read_part_row(part_path(parts_dir, item.key)) for item in items]
        stats = WriteStats(**finished["write_stats"])
    else:
        if (_read_json(started) or {}).get("fingerprint") != fingerprint:
            marker.unlink(missing_ok=True)
            shutil.rmtree(out / "shards", ignore_errors=True)  # another item set's shards: start afresh
            (out / "sizes.json").unlink(missing_ok=True)
            _write_json(started, {"fingerprint": fingerprint})
        marker.unlink(missing_ok=True)

        def records() -> Iterator[Record]:
            for row, item_records in _iter_parts(items, parts_dir):
                rows.append(row)
                yield from item_records

        stats = write_dataset(records(), out, samples_per_shard)
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
        _write_json(marker, {"fingerprint": fingerprint, "source": source, "write_stats": stats.__dict__})
    started.unlink(missing_ok=True)
    counts = {status: int((manifest["status"] == status).sum()) for status in STATUSES}
    return ExtractionSummary(out, manifest, counts, stats.written, stats)


def _read_json(path: Path) -> dict[str, Any] | None:
    """A marker's content, or None if it is missing or unreadable."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_json(path: Path, value: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(value, sort_keys=True).encode())


# ------------------------------------------------------------------------------------------------------ CLI
def _at_least(minimum: int, kind: type = int) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        number = kind(value)
        if not minimum <= number < math.inf:
            raise argparse.ArgumentTypeError(f"must be a number >= {minimum}, got {value}")
        return number

    return parse


def add_extraction_options(parser: argparse.ArgumentParser) -> None:
    """The options every ``sciclip extract SOURCE`` has (read by :func:`run_extraction_cli`)."""
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (shards/, sizes.json, manifest.parquet)"
    )
    parser.add_argument(
        "--workers",
        type=_at_least(0),
        default=None,
        metavar="N",
        help="Dask worker processes (default: CPU count; 0 = in this process)",
    )
    parser.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    parser.add_argument(
        "--max-papers", type=_at_least(1), default=None, metavar="N", help="process at most N papers"
    )
    parser.add_argument(
        "--samples-per-shard", type=_at_least(1), default=10_000, metavar="N", help="samples per shard"
    )
    parser.add_argument(
        "--item-timeout-s",
        type=_at_least(0, float),
        default=None,
        metavar="S",
        help=f"seconds per item before it is killed and failed (0 = none; default: ${ENV_ITEM_TIMEOUT} or "
        f"{DEFAULT_ITEM_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--item-memory-mb",
        type=_at_least(0),
        default=None,
        metavar="MIB",
        help=f"address space per item beyond the worker's, MiB (0 = none; default: ${ENV_ITEM_MEMORY} or "
        f"{DEFAULT_ITEM_MEMORY_BYTES // 2**20})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _writable_problem(out_dir: Path) -> str | None:
    """Why ``out_dir`` cannot be created or written to, or None."""
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"output directory {out_dir} cannot be created: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"output directory {out_dir} is not writable"
    return None


def run_extraction_cli(
    args: argparse.Namespace, extract: Callable[..., ExtractionSummary], source: str, unit: str
) -> int:
    """Call ``extract`` (an ``extract_*`` with its inputs and own options bound) with the shared options.

    Returns 0 when the batch ran to the end (failed items are in the manifest), 2 for bad inputs or
    options or an unusable ``--out``, 1 when the run itself could not go on (scheduler unreachable, disk
    full).
    """
    problem = _writable_problem(Path(args.out))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        limits = ItemLimits.from_env()
        if args.item_timeout_s is not None:
            limits = replace(limits, timeout_s=args.item_timeout_s or None)
        if args.item_memory_mb is not None:
            limits = replace(limits, memory_bytes=args.item_memory_mb * 2**20 or None)
        summary = extract(
            workers=args.workers,
            scheduler=args.scheduler,
            max_papers=args.max_papers,
            samples_per_shard=args.samples_per_shard,
            progress=not args.no_progress,
            limits=limits,
        )
    except (FileNotFoundError, PermissionError, ValueError, ArchiveError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: the extraction could not run: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    print(f"{source}: {len(summary.manifest)} {unit} ({counts}), {summary.pairs} pairs -> {summary.out_dir}")
    return 0
