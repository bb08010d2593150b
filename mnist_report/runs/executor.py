"""Where the report's training runs execute: a Dask cluster, local by default.

Every run is independent of the others, so the runs of a study are submitted as Dask tasks and
trained at the same time, each in a worker process of its own with a fixed number of TensorFlow
threads (``TrainConfig.threads``, part of a run's key). The number of workers decides only how
many runs train at once, never a number in the report.

- Default: a ``LocalCluster`` of ``cores // threads_per_run`` worker processes, one task at a time each.
- A cluster: ``scheduler="tcp://host:8786"`` or ``$MNIST_REPORT_SCHEDULER`` connects to a running
  ``dask scheduler``; its workers need this project installed (package and data/). A scheduler runs
  code for anyone who reaches its port: bind it to loopback or a private network, or use TLS
  (mnist_report/README.md shows how).
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass

import dask
import distributed

from mnist_report.machine import cores

SCHEDULER_ENV = "MNIST_REPORT_SCHEDULER"
PRE_SPAWN = "distributed.nanny.pre-spawn-environ"
MALLOC_TRIM = "MALLOC_TRIM_THRESHOLD_"
CONNECT_TIMEOUT_S = 10
# A local cluster's own bookkeeping, quieter: nothing reads the profiles, and the monitors need not wake
# every few ms; more of the CPU goes to the runs (mnist_report/README.md), and no number changes.
QUIET = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


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
    # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536, which slows TensorFlow's steps (mnist_report/README.md):
    # workers keep glibc's default.
    with dask.config.set({f"{PRE_SPAWN}.{MALLOC_TRIM}": None, **QUIET}):
        cluster = distributed.LocalCluster(
            n_workers=workers or default_workers(threads_per_run),
            threads_per_worker=1,  # one run at a time per worker process; TensorFlow's threads are set per run
            processes=True,
            dashboard_address=":0",  # a free port: a second cluster on this machine does not warn about 8787
            silence_logs=logging.ERROR,
            # the nannies' own copy, so that a worker they restart (after a crash) has it too: a nanny's
            # default is a shallow copy of this process's configuration, which leaves this block's settings
            config=copy.deepcopy(dask.config.config),
        )
        client = distributed.Client(cluster, set_as_default=False)
    logging.getLogger("distributed").setLevel(logging.ERROR)  # its INFO lines when the cluster closes, too
    return Executor(client, cluster, cluster.scheduler_address)
