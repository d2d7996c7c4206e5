"""The Dask client of the distributed stages (extraction, decontamination): an embedded ``LocalCluster`` on
this machine or an existing cluster by its scheduler address."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def dask_client(
    workers: int | None, scheduler: str | None, scratch: Path, settings: dict[str, Any] | None = None
) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler`` if given, else to a ``LocalCluster`` of ``workers``
    single-threaded processes (default: CPU count) listening on 127.0.0.1 only.

    Dask's scratch files and locks go to ``scratch``; workers are not daemonic, so a task may start processes
    of its own (sandboxes, DataLoader workers); ``settings`` add Dask config for the client's lifetime.
    """
    import dask
    from distributed import Client, LocalCluster

    config = {"distributed.worker.daemon": False, "temporary-directory": str(scratch), **(settings or {})}
    with dask.config.set(config):
        if scheduler is not None:
            client, cluster = Client(scheduler), None
        else:
            cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",  # nothing listens beyond this machine
                dashboard_address="127.0.0.1:0",  # the scheduler's HTTP server: any free port
            )
            client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
