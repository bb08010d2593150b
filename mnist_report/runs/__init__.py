"""Where runs come from: the store of records (``store``), else training on Dask workers (``executor``,
``task``), started only when a run is missing."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import filelock

from mnist_report import data
from mnist_report.config import TrainConfig
from mnist_report.paths import shown
from mnist_report.runs import executor as executor_
from mnist_report.runs import store
from mnist_report.runs.store import RecordError, Run

__all__ = ["Run", "RecordError", "get", "seeds_of", "used"]

POLL_S = 0.2  # seconds between looks at the runs in progress
_USED: dict[str, str] = {}  # record key -> its content hash: the runs this process has read (a notebook's inputs)


def used() -> dict[str, str]:
    """The records read so far by this process (a notebook's kernel), by key."""
    return dict(sorted(_USED.items()))


def seeds_of(config: TrainConfig, seeds: Sequence[int]) -> list[TrainConfig]:
    seeds = list(seeds)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct; got {seeds}")
    return [replace(config, seed=s) for s in seeds]


def _line(run: Run) -> str:
    return f"seed {run.seed}: test accuracy {run.test_accuracy:.2%}"


def get(
    configs: Sequence[TrainConfig],
    raw: data.RawMNIST,
    *,
    test: bool = True,
    keep_models: Sequence[TrainConfig] = (),
    describe: Callable[[Run], str] = _line,
    scheduler: str | None = None,
    workers: int | None = None,
    print_fn=print,
) -> list[Run]:
    """Each configuration's run, in order: read from the store, or trained on Dask workers (a local
    cluster, or ``scheduler``'s) started only when a run is missing, and then stored. Lines are printed
    only for runs trained here. ``keep_models``: the runs whose network is stored too (the ones the
    report ships). ``test=False``: the runs never see the test images, and keep their history only."""
    configs = list(configs)
    fingerprint = data.fingerprint(raw)
    keys = [store.key(c, fingerprint, test) for c in configs]
    if len(set(keys)) != len(keys):
        raise ValueError("two of the runs asked for are the same run (same configuration and seed)")
    keep = {store.key(c, fingerprint, test) for c in keep_models}
    results: list[Run | None] = [store.find(k, c, k in keep) for k, c in zip(keys, configs, strict=True)]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        _train(
            todo,
            configs,
            keys,
            keep,
            results,
            fingerprint,
            test,
            describe,
            scheduler,
            workers,
            print_fn or (lambda line: None),
        )
    for run in results:
        _USED[run.key] = run.sha256
    return results


def _train(todo, configs, keys, keep, results, fingerprint, test, describe, scheduler, workers, say) -> None:
    root = store.places()[1]
    locks = store.cache() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    threads = sorted({configs[i].threads for i in todo})
    with executor_.start(scheduler, workers, max(threads)) as ex:
        say(f"training {len(todo)} of {len(configs)} run(s) on {ex.describe()}, into {shown(root)}/")
        start, done = time.perf_counter(), 0
        pending: dict = {}
        waiting = list(todo)
        try:
            while waiting or pending:
                for future in [f for f in pending if f.done()]:
                    i, lock = pending.pop(future)
                    try:
                        result = future.result()
                        path = store.write(root, keys[i], configs[i], result, keep_model=keys[i] in keep)
                        results[i] = replace(store.read(path, configs[i], keys[i]), trained_now=True)
                        store.remove_backup(keys[i])
                    finally:
                        lock.release()
                    done += 1
                    minutes = (time.perf_counter() - start) / 60
                    resumed = f", resumed after epoch {result['resumed_at']}" if result["resumed_at"] else ""
                    say(
                        f"[{done}/{len(todo)} in {minutes:.0f} min] {describe(results[i])} "
                        f"(trained in {results[i].train_seconds:.0f} s{resumed})"
                    )
                free = ex.n_workers() - len(pending)
                for i in list(waiting):
                    if free <= 0:
                        break
                    lock = filelock.FileLock(locks / f"{keys[i]}.lock")
                    try:
                        lock.acquire(timeout=0)
                    except filelock.Timeout:  # another process trains it: look again later
                        continue
                    waiting.remove(i)
                    results[i] = store.find(keys[i], configs[i], keys[i] in keep)  # it may have finished meanwhile
                    if results[i] is not None:
                        lock.release()
                        done += 1
                        continue
                    future = ex.client.submit(
                        task_run,
                        configs[i],
                        fingerprint,
                        str(store.backup_dir(keys[i])),
                        test,
                        key=f"run-{keys[i]}",
                        pure=False,
                    )
                    pending[future] = (i, lock)
                    free -= 1
                time.sleep(POLL_S)
        finally:
            for future, (_, lock) in pending.items():
                future.cancel()
                lock.release()


def task_run(*args):
    from mnist_report.runs.task import run_task

    return run_task(*args)
