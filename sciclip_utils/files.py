"""File plumbing every stage shares: the one atomic write, the one parquet reader, the one progress bar."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: bytes, *, per_process: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part: via
    ``<name>.tmp`` (which a rerun after a crash overwrites), then a rename. Creates the parent folder.

    ``per_process`` names the temporary file after this process (``<name>.<pid>.tmp``), for files that
    several processes may write at once (a retried extraction item)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + (f".{os.getpid()}.tmp" if per_process else ".tmp"))
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_parquet(path: str | Path, columns: Sequence[str] | None = None) -> Any:
    """A parquet file as a ``pyarrow.Table``, read from its path without worker threads.

    Every parquet read of the package goes through here: pyarrow's thread pool, left busy by a threaded
    read through a Python file object (what ``pandas.read_parquet`` passes it), can abort the interpreter
    at exit ("terminate called without an active exception", apache/arrow#34314, #50482).
    """
    import pyarrow.parquet as pq

    with pq.ParquetFile(str(path)) as handle:  # no dataset discovery: half the cost of read_table
        return handle.read(columns=list(columns) if columns is not None else None, use_threads=False)


def read_schema_metadata(path: str | Path) -> dict[bytes, bytes]:
    """The key-value metadata of a parquet file's schema (no column data is read)."""
    import pyarrow.parquet as pq

    return pq.read_schema(str(path)).metadata or {}


def read_frame(path: str | Path, columns: Sequence[str] | None = None) -> Any:
    """A parquet file as a pandas DataFrame (through :func:`read_parquet`)."""
    return read_parquet(path, columns).to_pandas(use_threads=False)


def progress(
    items: Iterable[Any], enabled: bool, desc: str, unit: str = "it", total: int | None = None
) -> Any:
    """``items`` behind a tqdm progress bar (notebook or terminal), or as they are when not ``enabled``."""
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=unit, total=total)
