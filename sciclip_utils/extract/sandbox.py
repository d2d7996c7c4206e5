"""Per-item isolation: each item runs in a sandbox, a child process forked from the worker (or from the
runner's process with ``workers=0``) that takes one item at a time under a wall-clock timeout and an
address-space cap, and is replaced when an item kills it. A hang (a regex, pdfium, Ghostscript), a memory
blow-up or a native crash then costs one item - its manifest row says ``failed`` with stage ``timeout``,
``memory`` or ``crash`` - and never the batch; anything the item started (Ghostscript) is killed with it.
Temporary files of items live in ``out_dir/tmp/`` and are removed after each item.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import pickle
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from sciclip_utils.commonpool import Record
from sciclip_utils.extract.items import ExtractionError, ItemResult, WorkItem
from sciclip_utils.extract.parts import manifest_row, part_bytes, part_path, read_part_row, write_part

DEFAULT_ITEM_TIMEOUT_S = 600.0
DEFAULT_ITEM_MEMORY_BYTES = 4 * 2**30
ENV_ITEM_TIMEOUT = "SCICLIP_ITEM_TIMEOUT_S"  # seconds; 0 = no timeout
ENV_ITEM_MEMORY = "SCICLIP_ITEM_MEMORY_MB"  # MiB; 0 = no cap
ENV_ISOLATE = "SCICLIP_ISOLATE"  # 0 = run items without a child process (no timeout, no memory cap)
_EXIT_GRACE_S = 1.0  # after the child exits, how long its result pipe may stay open


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


def run_item(
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


def close_sandbox() -> None:
    """Stop this thread's sandbox (at the end of a run in this process)."""
    _Sandbox.close_current()


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
    part_bytes([record], {})
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
