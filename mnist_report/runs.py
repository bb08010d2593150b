"""Cached training runs: trained once, on the executor's workers, then read back.

A run is stored under ``<cache_root>/<key>/seed-<seed>/``. The key is a hash of everything that
decides its numbers except the seed: the configuration (thread count included), the training code
(``TRAINING_CODE``: its syntax tree without docstrings, comments or the text of its messages, plus
``TRAINING_CODE_VERSION``; ``SAME_NUMBERS_AS`` for code shown to give an earlier version's numbers),
the data's content, the versions of the numerical packages and the machine. Report prose (verdicts,
progress lines, this module) is not part of it, so rewording the report keeps every cached run.

Runs are trained as Dask tasks (see ``fanout``) and their results come back to this process, which
alone writes the cache: ``model.keras``, ``predictions.npz`` (validation and test probabilities) and
``run.json``, written last so that a run interrupted halfway is never half-read. While a run
trains, ``backup/`` holds its state after each epoch, and a run killed halfway resumes from it.
A lock file per run keeps two processes from training the same run at once: the second waits, then
reads the first one's result.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import shutil
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import distributed
import filelock
import numpy as np
from tqdm import tqdm

from mnist_report import data, fanout, machine, train
from mnist_report.config import TrainConfig
from mnist_report.io import atomic_path, read_json, write_json
from mnist_report.paths import from_root, shown

# The modules whose code decides a run's numbers: the configuration, the data pipeline, the models,
# the training loop and the executor's setup. Their docstrings, comments, layout and the text of their
# messages are not part of the key; anything else in them is (see ``code_text``).
TRAINING_CODE = ("config.py", "data.py", "model.py", "train.py", "fanout.py")
# Bump for a change that alters the numbers but not the code above (say, a dependency's behaviour).
TRAINING_CODE_VERSION = 1
PACKAGE_DIR = Path(__file__).resolve().parent
POLL_S = 0.2  # seconds between looks at the runs in progress and at those locked by another process


# Calls whose text is a message for people (warnings, progress lines), not an input of a run's numbers.
MESSAGE_CALLS = ("warn", "print", "say", "print_fn")


def code_text(path: Path) -> bytes:
    """A module's code without its prose (its syntax tree): no docstrings, comments or layout, and no
    message text (the string constants, f-strings' literal parts included, in the arguments of a raised
    exception and of ``MESSAGE_CALLS``; the exception's type, the expressions and other arguments stay),
    so that rewording them does not invalidate results computed by the same code."""
    tree = ast.parse(Path(path).read_bytes(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):  # fmt: skip
                node.body = body[1:] or [ast.Pass()]
        message = None
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            message = node.exc
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in MESSAGE_CALLS:
            message = node
        if message is not None:
            for part in ast.walk(message):
                if isinstance(part, ast.JoinedStr):  # an f-string: its expressions, without the text between
                    part.values = [v for v in part.values if not isinstance(v, ast.Constant)]
                elif isinstance(part, ast.Constant) and isinstance(part.value, str):
                    part.value = ""
    return ast.dump(tree).encode()


def source_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """A hash of the training code's files in ``package_dir``."""
    h = hashlib.sha256(f"version {TRAINING_CODE_VERSION}\0".encode())
    for name in TRAINING_CODE:
        h.update(name.encode() + b"\0" + code_text(Path(package_dir) / name) + b"\0")
    return h.hexdigest()


# Training code shown to give the same numbers, bit for bit, as an earlier version of it keeps that version's
# key (source hash: an earlier source hash; entries are followed one after another, so a new entry may name
# the hash of the code it replaces), so that a change made for speed or for messages alone does not throw
# away the cached runs (a day of training for the report). An entry needs a test that trains both ways and
# compares, named beside it with what it covers; `make reproduce` on the report's machine checks it again,
# end to end. Any later edit of the training code gives a hash that no entry names, and the key changes as
# usual (then remove the entries: tests/test_runs.py fails on an entry that names no code of this tree).
SAME_NUMBERS_AS = {
    # train.build_state (one trace of the training step per run, not two) and message text out of the key
    # (MESSAGE_CALLS), 2026-11-28: tests/test_train.py::test_one_trace_per_run_gives_the_numbers_of_two
    # (float32, the baseline and the better network with weight averaging and label smoothing, on CPU)
    "ca717a69b7b1e2cb32dd5aa5abc423e87e68550508b87cb969bf09099387b24b":
        "8151f7ba05e62232924745f22c0f7af91563e0c473f73316b16f00f0d89bcd8e",
    # fanout.QUIET (the local cluster's profiler off, its monitors waking less often, kept by restarted
    # workers) and fanout.cores replaced by machine.cores (the same rule), 2026-11-28: tests/test_runs.py::
    # test_a_scheduler_and_workers_started_by_hand_train_the_same_numbers (workers at Dask's defaults
    # against the local cluster's, bit for bit) and test_one_worker_and_two_workers_give_the_same_numbers
    "0b6f64bd8b18f6983f547f784ba57a211345036065bdcaf48c8bd603bc5bb37b":
        "ca717a69b7b1e2cb32dd5aa5abc423e87e68550508b87cb969bf09099387b24b",
}


def training_code_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """``source_hash``, or the earliest version's that ``SAME_NUMBERS_AS`` leads to from it."""
    h, seen = source_hash(package_dir), set()
    while h in SAME_NUMBERS_AS and h not in seen:
        seen.add(h)
        h = SAME_NUMBERS_AS[h]
    return h


# Read once, when the package is imported: the code that runs is the code imported, so a file edited
# afterwards (in a long-lived notebook kernel, say) cannot give old results a new key.
_SOURCE_HASH = training_code_hash()


@functools.cache
def code_version() -> str:
    """The training code as imported, the numerical packages' versions and this machine."""
    h = hashlib.sha256(_SOURCE_HASH.encode())
    h.update(json.dumps({"packages": machine.versions(machine.TRAINING_PACKAGES), "machine": machine.fingerprint()},
                        sort_keys=True).encode())  # fmt: skip
    return h.hexdigest()


def _worker_code_version() -> str:
    return code_version()  # in a Dask worker: its own checkout, packages and machine


def check_workers(executor: fanout.Executor) -> None:
    """Refuse to train on workers whose training code, numerical packages or machine differ from this
    process's: the runs they trained would be stored under this process's cache key (a cluster of
    other machines, or workers started from another checkout or environment). The workers connected
    now are checked; one that joins later is not."""
    # a worker that cannot even run this (another checkout, without this function) answers with its error
    theirs = executor.client.run(_worker_code_version, on_error="return")
    other = sorted(address for address, version in theirs.items() if version != code_version())
    if other:
        raise RuntimeError(
            f"{len(other)} of the {len(theirs)} Dask workers ({', '.join(other)}) run other training code, package "
            "versions or another kind of machine than this process, so their runs would be cached under a key that "
            "does not describe them: start every worker from the same checkout and environment, on machines with "
            "the same vector instructions")  # fmt: skip


def cache_key(config: TrainConfig, raw: data.RawMNIST, test: bool = True, fingerprint: str | None = None) -> str:
    """The directory name shared by every seed of ``config`` (its seed is not part of the key).

    ``test=False``: runs stored without test predictions (the search's trials) have keys of their own.
    ``fingerprint``: ``data.fingerprint(raw)`` where the caller has it already (it hashes 55 MB).
    """
    settings = {k: v for k, v in config.to_dict().items() if k != "seed"}
    fields = {"config": settings, "code": code_version(), "data": fingerprint or data.fingerprint(raw)}
    if not test:
        fields["test"] = False
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class StoredRun:
    """One trained network (one configuration, one seed), summarised by its predictions."""

    config: TrainConfig
    y_val: np.ndarray
    val_proba: np.ndarray  # (n_val, 10)
    y_test: np.ndarray
    test_proba: np.ndarray  # (n_test, 10); (0, 10) for a run made without the test set
    history: dict[str, list[float]]
    train_seconds: float
    path: Path
    key: str  # the cache key of its configuration (shared by all its seeds)
    cached: bool  # read back from the cache rather than trained now
    resumed_at: int = 0  # epochs restored from the backup of a run killed earlier
    worker: str = ""  # the worker that trained it, if trained now
    # (cycles, n_val, 10) and (cycles, n_test, 10): the network at the end of each cycle of its learning-rate
    # schedule (``TrainConfig.cycles`` > 1), the last being the final network; empty otherwise
    snapshot_val_proba: np.ndarray | None = None
    snapshot_test_proba: np.ndarray | None = None

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def test_pred(self) -> np.ndarray:
        return self.test_proba.argmax(axis=1)

    @property
    def test_accuracy(self) -> float:
        return float(np.mean(self.test_pred == self.y_test))

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def snapshot_paths(self) -> list[Path]:
        """The network at the end of each cycle (``TrainConfig.cycles`` > 1); the last is ``model_path``'s."""
        n = 0 if self.snapshot_test_proba is None else len(self.snapshot_test_proba)
        return [self.path / f"snapshot-{i + 1}.keras" for i in range(n)]


def run_seed(config: TrainConfig, raw: data.RawMNIST, cache_root: str | Path, executor: fanout.Executor) -> StoredRun:
    """Train ``config`` (with its own seed) and store the result, or read it back if already stored."""
    return run_many([config], raw, cache_root, executor, print_fn=None)[0]


def run_seeds(config: TrainConfig, seeds: Sequence[int], raw: data.RawMNIST, cache_root: str | Path,
              executor: fanout.Executor, print_fn=print) -> list[StoredRun]:  # fmt: skip
    """Every seed of ``config``, trained or read from the cache, with one progress line per run."""
    seeds = list(seeds)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct; got {seeds}")
    return run_many([replace(config, seed=s) for s in seeds], raw, cache_root, executor, print_fn)


def _line(run: StoredRun) -> str:
    return f"seed {run.seed:>3}: test accuracy {run.test_accuracy:.2%}"


def run_many(
    configs: Sequence[TrainConfig],
    raw: data.RawMNIST,
    cache_root: str | Path,
    executor: fanout.Executor,
    print_fn=print,
    describe: Callable[[StoredRun], str] = _line,
    test: bool = True,
) -> list[StoredRun]:
    """Each configuration's run, in order: read from the cache, or trained on ``executor``'s workers,
    all at once. ``print_fn`` gets one line per finished run (``describe(run)``, how it was got and
    by which worker, and how many runs are done, running and queued). ``test=False``: the runs
    never see the test images (a search that must select on validation only)."""
    configs = list(configs)
    say = print_fn or (lambda line: None)
    root = from_root(cache_root)
    fingerprint = data.fingerprint(raw)
    keys = [cache_key(c, raw, test, fingerprint) for c in configs]
    dirs = [root / k / f"seed-{c.seed}" for k, c in zip(keys, configs, strict=True)]
    if len(set(dirs)) != len(dirs):
        raise ValueError("two of the runs asked for are the same run (same configuration and seed)")
    results: list[StoredRun | None] = [_cached(d, c, k) for d, c, k in zip(dirs, configs, keys, strict=True)]
    todo = [i for i, r in enumerate(results) if r is None]
    threads = sorted({configs[i].threads for i in todo})
    header = f"{len(configs)} run(s), {len(configs) - len(todo)} of them cached under {shown(root)}/"
    if todo:
        check_workers(executor)
        header += f"; training {len(todo)} on {executor.describe()}, {'/'.join(map(str, threads))} thread(s) per run"
    say(header)
    start = time.perf_counter()
    done = 0

    def report(i: int) -> None:
        nonlocal done
        done += 1
        run = results[i]
        how = "cached" if run.cached else f"trained in {run.train_seconds:.0f} s on worker {run.worker}"
        if run.resumed_at:
            how += f", resumed after epoch {run.resumed_at}"
        bar = tqdm.format_meter(done, len(configs), time.perf_counter() - start, ncols=60, ascii=True, unit="run")
        running = executor.running(list(pending)) if pending else 0
        queued = len(pending) - running + len(waiting)  # waiting for a free worker
        say(f"{bar}  {describe(run)} ({how})  [{running} running, {queued} queued]")

    pending: dict[distributed.Future, tuple[int, filelock.BaseFileLock]] = {}
    waiting = list(todo)  # runs not yet submitted: locked by another process, or not tried yet
    for i in range(len(configs)):
        if results[i] is not None:
            report(i)
    try:
        while waiting or pending:
            finished = []
            for future in [f for f in pending if f.done()]:
                i, lock = pending.pop(future)
                try:
                    results[i] = _store(dirs[i], configs[i], keys[i], future.result())
                finally:
                    lock.release()
                finished.append(i)
            # A run is locked and submitted only when a worker is free for it, so that a second study
            # over the same runs takes the ones this one has not started.
            free = executor.n_workers() - len(pending) if waiting else 0
            for i in list(waiting):
                if free <= 0:
                    break
                lock = filelock.FileLock(dirs[i].parent / f"{dirs[i].name}.lock")
                dirs[i].parent.mkdir(parents=True, exist_ok=True)
                try:
                    lock.acquire(timeout=0)
                except filelock.Timeout:  # another process is training it: look again later
                    continue
                waiting.remove(i)
                results[i] = _cached(dirs[i], configs[i], keys[i])  # it may have finished it meanwhile
                if results[i] is not None:
                    lock.release()
                    finished.append(i)
                    continue
                future = executor.client.submit(train.run_task, configs[i], fingerprint, str(dirs[i] / "backup"), test,
                                                key=f"run-{keys[i]}-seed-{configs[i].seed}", pure=False)
                pending[future] = (i, lock)
                free -= 1
            for i in finished:  # after the next runs were submitted, so that the counts are current
                report(i)
            if not finished:
                time.sleep(POLL_S)
    finally:
        for future, (_, lock) in pending.items():
            future.cancel()
            lock.release()
    return results


def _store(run_dir: Path, config: TrainConfig, key: str, result: dict) -> StoredRun:
    """Write what a worker returned into the cache (this process alone writes it) and read it back."""
    with atomic_path(run_dir / "model.keras") as tmp:
        tmp.write_bytes(result["model"])
    snapshots = dict(result.get("snapshots", {}))
    for i, blob in enumerate(snapshots.pop("snapshot_models", [])):
        with atomic_path(run_dir / f"snapshot-{i + 1}.keras") as tmp:
            tmp.write_bytes(blob)
    with atomic_path(run_dir / "predictions.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{k: result[k] for k in ("y_val", "val_proba", "y_test", "test_proba")},
                                **snapshots)
    write_json(run_dir / "run.json", {
        "key": key,
        "config": config.to_dict(),
        "code_version": code_version(),
        "history": result["history"],
        "epoch_seconds": result["epoch_seconds"],
        "train_seconds": float(sum(result["epoch_seconds"])),
        "threads": result["threads"],
        "worker": result["worker"],
    })  # fmt: skip
    shutil.rmtree(run_dir / "backup", ignore_errors=True)  # the run is whole: its backup is not needed
    return replace(_load(run_dir, config, key), cached=False, resumed_at=result["resumed_at"], worker=result["worker"])


def _cached(run_dir: Path, config: TrainConfig, key: str) -> StoredRun | None:
    """The stored run, or None if there is none or it is damaged (then it is trained again, and a line says
    so even where progress lines are off: a damaged cache is news)."""
    if not (run_dir / "run.json").is_file():
        return None
    try:
        return _load(run_dir, config, key)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        print(f"cached run {shown(run_dir)} is unreadable ({e}); training it again")
        return None


def _load(run_dir: Path, config: TrainConfig, key: str) -> StoredRun:
    """Read a stored run back, checking that it is the run asked for."""
    meta = read_json(run_dir / "run.json")
    if meta["key"] != key or meta["config"] != config.to_dict():
        raise ValueError("its run.json records another key or configuration")
    with np.load(run_dir / "predictions.npz") as z:
        arrays = {k: z[k] for k in ("y_val", "val_proba", "y_test", "test_proba")}
        for split in ("val", "test"):
            name = f"snapshot_{split}_proba"
            arrays[name] = z[name] if name in z else np.zeros((0, len(arrays[f"y_{split}"]), data.NUM_CLASSES))
    # one snapshot per cycle; fewer where early stopping (patience) ended the run before its last cycle
    n_snapshots = len(arrays["snapshot_test_proba"])
    for split in ("val", "test"):
        y, proba, snaps = arrays[f"y_{split}"], arrays[f"{split}_proba"], arrays[f"snapshot_{split}_proba"]
        if proba.shape != (len(y), data.NUM_CLASSES):
            raise ValueError(f"{split} probabilities have shape {proba.shape} for {len(y)} labels")
        if snaps.shape != (n_snapshots, len(y), data.NUM_CLASSES) or n_snapshots > max(config.cycles, 1) or \
                (config.cycles == 1 and n_snapshots):  # fmt: skip
            raise ValueError(f"{split} snapshots have shape {snaps.shape}: at most {config.cycles} cycle(s) of "
                             f"{len(y)} images expected")
    for path in (run_dir / "model.keras", *(run_dir / f"snapshot-{i + 1}.keras" for i in range(n_snapshots))):
        if not path.is_file():
            raise ValueError(f"its {path.name} is missing")
    return StoredRun(
        config=config,
        history=meta["history"],
        train_seconds=float(meta["train_seconds"]),
        path=run_dir,
        key=key,
        cached=True,
        worker=meta.get("worker", ""),
        **arrays,
    )


def export(run: StoredRun, run_dir: str | Path) -> Path:
    """Copy a run's model (and a cyclic run's snapshots) beside its ``config.json`` and ``history.json`` into
    ``run_dir`` (the report's ``runs/`` folder), each written atomically; the config is the one the model was
    trained with."""
    run_dir = from_root(run_dir)
    for path in (run.model_path, *run.snapshot_paths):  # a cyclic run's snapshots too
        with atomic_path(run_dir / path.name) as tmp:
            shutil.copyfile(path, tmp)
    for old in set(run_dir.glob("snapshot-*.keras")) - {run_dir / p.name for p in run.snapshot_paths}:
        old.unlink()  # an earlier export's, of more cycles: the folder holds what its config.json says
    write_json(run_dir / "config.json", run.config.to_dict())
    write_json(run_dir / "history.json", {"history": run.history, "train_seconds": run.train_seconds})
    return run_dir
