"""Where the report's training runs execute: a Dask cluster, local by default.

Every run is independent of the others, so the runs of a study are submitted as Dask tasks and
trained at the same time, each in a worker process of its own with a fixed number of TensorFlow
threads (``TrainConfig.threads``, part of a run's cache key). The number of workers decides only how
many runs train at once, never a number in the report.

- Default: a ``LocalCluster`` of ``cores // threads_per_run`` worker processes, one task at a time each.
- A cluster: ``scheduler="tcp://host:8786"`` or ``$MNIST_REPORT_SCHEDULER`` connects to a running
  ``dask scheduler``; its workers need this project installed (package and data/).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import dask
import distributed

SCHEDULER_ENV = "MNIST_REPORT_SCHEDULER"
PRE_SPAWN = "distributed.nanny.pre-spawn-environ"
MALLOC_TRIM = "MALLOC_TRIM_THRESHOLD_"
CONNECT_TIMEOUT_S = 10


def cores() -> int:
    """The cores this process may use (the affinity mask, not the machine's count, where they differ)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(threads_per_run: int) -> int:
    """As many runs at once as the cores hold at ``threads_per_run`` TensorFlow threads each."""
    return max(1, cores() // threads_per_run)


@dataclass
class Executor:
    """A Dask client and, for a local cluster, the cluster it started (closed with the executor)."""

    client: distributed.Client
    cluster: distributed.LocalCluster | None
    address: str

    def describe(self) -> str:
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        where = "a local cluster" if self.cluster is not None else f"the scheduler at {self.address}"
        return f"{len(workers)} worker{'s' * (len(workers) != 1)} on {where}"

    def n_workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def running(self, futures) -> int:
        """How many of ``futures`` a worker is computing now (the rest of the unfinished are queued)."""
        keys = {f.key for f in futures}
        return sum(len(keys.intersection(ks)) for ks in self.client.processing().values())

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start(scheduler: str | None = None, workers: int | None = None, threads_per_run: int = 1) -> Executor:
    """Connect to ``scheduler`` (or ``$MNIST_REPORT_SCHEDULER``), else start a local cluster.

    ``workers``: the local cluster's worker processes (None: ``default_workers(threads_per_run)``).
    An unreachable scheduler is a ``ConnectionError`` naming its address, raised before anything trains.
    """
    address = scheduler or os.environ.get(SCHEDULER_ENV) or None
    if address:
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as e:
            origin = "scheduler parameter" if scheduler else f"${SCHEDULER_ENV}"
            raise ConnectionError(
                f"cannot reach the Dask scheduler at {address} (from the {origin}) within {CONNECT_TIMEOUT_S} s: "
                f"{e}. Start one with `dask scheduler` and workers with `dask worker {address}`, or leave the "
                f"scheduler unset to train on this machine's cores"
            ) from None
        return Executor(client, None, address)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be None or an integer >= 1; got {workers!r}")
    # Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's adaptive
    # mmap threshold: TensorFlow's per-batch tensors are then mapped and unmapped at every step, and an
    # epoch took 2.2x as long as in a plain process (measured here). Workers keep glibc's default.
    with dask.config.set({f"{PRE_SPAWN}.{MALLOC_TRIM}": None}):
        cluster = distributed.LocalCluster(
            n_workers=workers or default_workers(threads_per_run),
            threads_per_worker=1,  # one run at a time per worker process; TensorFlow's threads are set per run
            processes=True,
            dashboard_address=":0",  # a free port: a second cluster on this machine does not warn about 8787
            silence_logs=logging.ERROR,
        )
    logging.getLogger("distributed").setLevel(logging.ERROR)  # its INFO lines when the cluster closes, too
    return Executor(distributed.Client(cluster, set_as_default=False), cluster, cluster.scheduler_address)
