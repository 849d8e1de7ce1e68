"""One way to reach Dask: a scheduler address, or a `LocalCluster` of this machine.

Every scale-out step (the partitioned feature build, batch scoring, the partitioned audit)
opens its client here, so `--scheduler ADDRESS` means the same thing in every command.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Memory a LocalCluster worker may use before Dask pauses it (the scale goal: under 4 GB).
DEFAULT_WORKER_MEMORY = "4GB"


@contextmanager
def dask_client(
    scheduler: str | None = None,
    *,
    n_workers: int | None = None,
    memory_limit: str = DEFAULT_WORKER_MEMORY,
) -> Iterator[Any]:
    """A `distributed.Client` on `scheduler`, or on a LocalCluster of `n_workers` one-thread
    worker processes (default: the `GOVRISK_THREADS` thread count) closed on exit."""
    import distributed

    from features.settings import thread_count

    dask: Any = distributed  # distributed ships without type hints
    cluster = None
    if scheduler is None:
        cluster = dask.LocalCluster(
            n_workers=n_workers or thread_count(),
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=":0",  # any free port: never two clusters fighting over one
        )
    try:
        client = dask.Client(cluster if cluster is not None else scheduler)
    except OSError as exc:
        if cluster is not None:
            cluster.close()
        raise OSError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (on a worker: the worker's own peak)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def worker_peaks(client: Any) -> dict[str, int]:
    """Peak resident memory of every worker of `client`, by worker address."""
    return {str(k): int(v) for k, v in client.run(peak_rss_bytes).items()}
