"""Seeding and determinism, fitting with one log line per epoch, and saving a run."""

from __future__ import annotations

from mnist_report import quiet_tf  # noqa: F401  (first: TensorFlow imported without its probe noise)

# isort: split
import contextlib
import dataclasses
import inspect
import math
import os
import shutil
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mnist_report.config import TrainConfig
from mnist_report.data import Splits, one_hot
from mnist_report.io import atomic_path, read_json, write_json
from mnist_report.model import build_model
from mnist_report.paths import shown


def configure_threads(threads: int) -> None:
    """Give TensorFlow ``threads`` intra-op and inter-op threads in this process.

    TensorFlow's numbers depend on its thread count, and it can be set only before TensorFlow runs its
    first operation; a process already running with another count cannot train this run.
    """
    current = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())  # fmt: skip
    if current == (threads, threads):
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        raise RuntimeError(
            f"TensorFlow in this process already runs with {current[0] or 'its default'} intra-op threads, and a "
            f"run with threads={threads} needs {threads}: train it in a fresh process (the executor's workers are), "
            "or restart the kernel and set the thread count first"
        ) from None


def predict_proba(model, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities (N, 10) from a trained model, in inference mode (dropout off)."""
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float64)


def _proba(model, images: np.ndarray) -> np.ndarray:
    return predict_proba(model, images) if len(images) else np.zeros((0, 10))


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and the backend, and make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class EpochLogger(keras.callbacks.Callback):
    """Prints one plain line per epoch (no carriage-return bar) and records each epoch's metrics and
    seconds (``Backup.restore`` fills in those of the epochs a resumed run has already done)."""

    def __init__(self, epochs: int, print_fn=print):
        super().__init__()
        self.epochs = epochs
        self.print_fn = print_fn
        self.history: dict[str, list[float]] = {}
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))
        width = len(str(self.epochs))
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items() if k != "learning_rate")
        self.print_fn(f"epoch {epoch + 1:>{width}}/{self.epochs}  {metrics}  [{self.seconds[-1]:.1f} s]")


class BackupError(ValueError):
    """A backup that cannot be restored into the model being trained."""


class Backup(keras.callbacks.Callback):
    """The whole training state, saved in ``directory`` at the end of every epoch, so that a run
    killed at any moment resumes from its last completed epoch and ends with the same numbers.

    Keras' ``BackupAndRestore`` is not enough for that: ``save_weights`` (which it uses) leaves out
    the random-number states of the dropout and augmentation layers, and it tells the resumed epoch
    to ``fit`` only, after the input pipeline is built. So this saves the weights and optimizer
    state with ``save_weights``, the variables that leaves out, and the epoch and history so far in
    ``state.json``; the weights file is written beside and renamed, then ``state.json`` (which names
    it) likewise, so a kill mid-save leaves the previous epoch's state whole.
    """

    def __init__(self, directory: str | Path, logger: EpochLogger, config: TrainConfig,
                 snapshots: Snapshots | None = None):  # fmt: skip
        super().__init__()
        self.directory, self.logger, self.config, self.snapshots = Path(directory), logger, config, snapshots

    @staticmethod
    def _other_variables(model: keras.Model) -> list:
        saved = {id(v) for v in model.weights}
        return [v for v in model.variables if id(v) not in saved]  # the layers' random-number states

    def restore(self, model: keras.Model) -> int:
        """Load the saved state into ``model`` (compiled, built by ``fit``'s caller); the epoch to resume at."""
        state_file = self.directory / "state.json"
        if not state_file.is_file():
            return 0
        try:
            state = read_json(state_file)
            if state.get("config") != self.config.to_dict():
                raise ValueError("it was made by a run of another configuration")
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(self.directory / state["weights"])
            others = self._other_variables(model)
            for v, value in zip(others, state["other_variables"], strict=True):
                v.assign(value)
            self.logger.history = {k: list(v) for k, v in state["history"].items()}
            self.logger.seconds = list(state["epoch_seconds"])
            if self.snapshots is not None:
                self.snapshots.restore(self.directory, state.get("snapshots", 0))
            return int(state["epoch"])
        except Exception as e:  # damaged, or saved by other code: the caller starts afresh
            why = f"{type(e).__name__}: {e}"
            raise BackupError(f"the backup in {shown(self.directory)} cannot be restored ({why})") from e

    def on_epoch_end(self, epoch, logs=None):
        name = f"epoch-{epoch + 1}.weights.h5"
        tmp = self.directory / f".{name}.partial.weights.h5"  # Keras wants the .weights.h5 suffix
        self.directory.mkdir(parents=True, exist_ok=True)
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, self.directory / name)
        if self.snapshots is not None and self.snapshots.taken:
            self.snapshots.save(self.directory)
        write_json(self.directory / "state.json", {
            "epoch": epoch + 1, "weights": name, "config": self.config.to_dict(),
            "snapshots": len(self.snapshots.taken) if self.snapshots is not None else 0,
            "other_variables": [v.numpy().tolist() for v in self._other_variables(self.model)],
            "history": self.logger.history, "epoch_seconds": self.logger.seconds,
        })  # fmt: skip
        for old in self.directory.glob("epoch-*.weights.h5"):  # (snapshot-N.keras files stay: they are the snapshots)
            if old.name != name:
                old.unlink()


class Snapshots(keras.callbacks.Callback):
    """The network at the end of each cycle of the learning-rate schedule (``config.cycles`` > 1), the
    members of a snapshot ensemble from a single run: its validation and test probabilities, and the
    network itself (``.keras`` bytes), so that each member can be evaluated again on its own.

    ``Backup`` saves them with the training state, so a resumed run keeps the snapshots taken before.
    """

    def __init__(self, config: TrainConfig, splits: Splits):
        super().__init__()
        self.cycle = config.epochs // config.cycles
        self.images = (splits.x_val, splits.x_test)
        self.taken: list[tuple[np.ndarray, np.ndarray, bytes]] = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.cycle == 0:
            val, test = (_proba(self.model, x).astype(np.float32) for x in self.images)
            self.taken.append((val, test, model_bytes(self.model)))

    def arrays(self) -> dict:
        """``snapshot_val_proba`` and ``snapshot_test_proba``, each (snapshots, images, 10), and
        ``snapshot_models``, a list of ``.keras`` bytes."""
        out = {f"snapshot_{split}_proba": np.stack([t[i] for t in self.taken]) if self.taken
               else np.zeros((0, len(x), 10), np.float32)
               for i, (split, x) in enumerate(zip(("val", "test"), self.images, strict=True))}  # fmt: skip
        return {**out, "snapshot_models": [t[2] for t in self.taken]}

    def save(self, directory: Path) -> None:
        for i, (_, _, blob) in enumerate(self.taken):
            path = directory / f"snapshot-{i + 1}.keras"
            if not path.is_file():
                with atomic_path(path) as tmp:
                    tmp.write_bytes(blob)
        with atomic_path(directory / "snapshots.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{k: v for k, v in self.arrays().items() if k != "snapshot_models"})

    def restore(self, directory: Path, count: int) -> None:
        self.taken = []
        if not count:
            return
        with np.load(directory / "snapshots.npz") as z:
            val, test = z["snapshot_val_proba"], z["snapshot_test_proba"]
        if len(val) < count:
            raise ValueError(f"snapshots.npz holds {len(val)} snapshots, and the state names {count}")
        self.taken = [(val[i], test[i], (directory / f"snapshot-{i + 1}.keras").read_bytes()) for i in range(count)]


def model_bytes(model: keras.Model) -> bytes:
    """``model`` as the bytes of a ``.keras`` file."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model.keras")
        return (Path(tmp) / "model.keras").read_bytes()


class PatienceStop(keras.callbacks.Callback):
    """Stops training once ``patience`` epochs have passed without a better validation accuracy.

    Keras' ``EarlyStopping`` keeps its count in memory, so a run resumed from its backup would count
    afresh; this decides from the history alone, which the backup restores, so a resumed run stops
    where an uninterrupted one does.
    """

    def __init__(self, patience: int, logger: EpochLogger):
        super().__init__()
        self.patience, self.logger = patience, logger

    @staticmethod
    def stopped(history: dict, patience: int | None) -> bool:
        scores = history.get("val_accuracy", [])
        return patience is not None and bool(scores) and len(scores) - 1 - int(np.argmax(scores)) >= patience

    def on_epoch_end(self, epoch, logs=None):
        if self.stopped(self.logger.history, self.patience):
            self.model.stop_training = True


@dataclass
class Run:
    """What training produced; ``history`` maps a metric name to its per-epoch values."""

    model: keras.Model
    config: TrainConfig
    history: dict[str, list[float]]
    epoch_seconds: list[float] = field(default_factory=list)
    resumed_at: int = 0  # epochs restored from a backup rather than trained in this call
    snapshots: dict = field(default_factory=dict)  # ``Snapshots.arrays()`` where cycles > 1

    @property
    def train_seconds(self) -> float:
        return float(sum(self.epoch_seconds))


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of ``n`` training images in ``epoch`` (0-based): a permutation drawn from the seed and
    the epoch alone, so a run resumed at any epoch sees the batches an uninterrupted run sees."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def batches(images, labels, batch_size: int, shuffle_seed: int | None = None, epochs: int = 1,
            first_epoch: int = 0) -> tf.data.Dataset:  # fmt: skip
    """(images, one-hot labels) batches.  Unseeded: one pass in order.  Seeded: epochs
    ``first_epoch`` to ``epochs - 1`` one after another, each in ``epoch_order``; pass
    ``steps_per_epoch`` and ``initial_epoch=first_epoch`` to ``fit``.

    Measured on a 2-core CPU: Keras' own adapter for NumPy arrays sometimes ran epochs at half
    speed (about 10.4 s instead of 6 s per 20,000 images); a tf.data pipeline ran at the fast speed.
    """
    y = one_hot(labels)
    if shuffle_seed is None:
        return tf.data.Dataset.from_tensor_slices((images, y)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    orders = np.stack([epoch_order(len(labels), shuffle_seed, e) for e in range(first_epoch, epochs)])
    x_all, y_all = tf.constant(images), tf.constant(y)
    ds = tf.data.Dataset.from_tensor_slices(orders.astype(np.int32))
    ds = ds.flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
    return ds.map(lambda i: (tf.gather(x_all, i), tf.gather(y_all, i))).prefetch(tf.data.AUTOTUNE)


def fit(model: keras.Model, splits: Splits, config: TrainConfig, callbacks=(), print_fn=print,
        backup_dir: str | Path | None = None) -> Run:  # fmt: skip
    """Train ``model`` on the training split, validating on the validation split (never the test set).

    ``print_fn`` receives one line per epoch (None: silent). With ``backup_dir``, the training state
    is saved there after every epoch and a run killed earlier resumes from it (see ``Backup``).
    """
    say = print_fn or (lambda line: None)
    logger = EpochLogger(config.epochs, say)
    snapshots = Snapshots(config, splits) if config.cycles > 1 else None
    callbacks = [*callbacks, *([snapshots] if snapshots else []), logger]  # snapshots first: the backup saves them
    start = 0
    if backup_dir is not None:
        backup = Backup(backup_dir, logger, config, snapshots)
        start = backup.restore(model)
        if start:
            say(f"resuming after epoch {start} of {config.epochs}, from the backup in {shown(Path(backup_dir))}")
        callbacks = [*callbacks, backup]
    if config.patience is not None:
        callbacks = [*callbacks, PatienceStop(config.patience, logger)]  # after the logger: it reads the history
    if config.ema_momentum > 0:  # validation scores the averaged weights (swapped in for it, then back)
        callbacks = [keras.callbacks.SwapEMAWeights(swap_on_epoch=False), *callbacks]
    if config.architecture == "better":  # cosine decay of the learning rate, epoch by epoch, to 1% of it
        schedule = cosine_schedule(config.learning_rate, config.epochs, cycles=config.cycles)
        callbacks = [keras.callbacks.LearningRateScheduler(schedule), *callbacks]
    if start >= config.epochs or PatienceStop.stopped(logger.history, config.patience):
        # the backup holds a finished run: end as model.fit ends (with the averaged weights, if any)
        model.optimizer.finalize_variable_values(model.trainable_weights)
    else:
        validation = batches(splits.x_val, splits.y_val, config.batch_size) if len(splits.y_val) else None
        train_batches = batches(splits.x_train, splits.y_train, config.batch_size, config.seed, config.epochs, start)
        build_state(model, train_batches.element_spec)
        model.fit(
            train_batches,
            epochs=config.epochs,
            initial_epoch=start,
            steps_per_epoch=steps_per_epoch(len(splits.y_train), config.batch_size),
            validation_data=validation,
            shuffle=False,  # the pipeline orders each epoch, from the seed
            verbose=0,
            callbacks=callbacks,
        )
    return Run(model=model, config=config, history=logger.history, epoch_seconds=logger.seconds,
               resumed_at=start, snapshots=snapshots.arrays() if snapshots else {})  # fmt: skip


def build_state(model: keras.Model, batch_spec) -> None:
    """Create the optimizer's and the compiled loss's and metrics' variables before ``fit`` traces its
    training step. Left to ``fit``, TensorFlow traces that step twice: once only to create them, then
    again to run it. A small run spends about 40% of its time on that (8.1 s against 4.8 s for a narrow
    better network with weight averaging, 2 epochs on 900 images, on a 2-core AMD EPYC). The numbers
    are the same bit for bit (tests/test_train.py).

    Keras does this itself only under a distribution strategy (``_maybe_symbolic_build``), with its
    ``_symbolic_build``, a private method: where a Keras version lacks it (or its ``data_batch``
    argument), ``fit`` builds as before."""
    symbolic_build = getattr(model, "_symbolic_build", None)
    if symbolic_build is not None and "data_batch" in inspect.signature(symbolic_build).parameters:
        with model.distribute_strategy.scope():
            symbolic_build(data_batch=batch_spec)


def cosine_schedule(learning_rate: float, epochs: int, floor: float = 0.01, cycles: int = 1):
    """Epoch -> learning rate: from ``learning_rate`` down to ``floor`` times it, along a half cosine;
    with ``cycles`` > 1, that many times, each over ``epochs // cycles`` epochs (a warm restart each)."""
    length = epochs // cycles

    def schedule(epoch: int, lr=None) -> float:
        progress = (epoch % length) / max(1, length - 1)
        return float(learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))))

    return schedule


def train(
    config: TrainConfig,
    splits: Splits,
    strategy: tf.distribute.Strategy | None = None,
    print_fn=print,
    backup_dir: str | Path | None = None,
) -> Run:
    """Seed everything, build ``config.architecture``'s network and fit it (``print_fn``: one line per epoch,
    None: silent).

    ``strategy``: an optional ``tf.distribute`` strategy (``MirroredStrategy`` for several GPUs,
    ``MultiWorkerMirroredStrategy`` for several machines); ``config.batch_size`` stays the global
    batch size, split across the replicas. ``backup_dir``: see ``fit``.
    """
    configure_threads(config.threads)
    set_determinism(config.seed)
    if config.precision != "float32" and not bf16_native():
        warnings.warn(
            f"precision={config.precision!r}: this machine has no Ampere-or-later GPU and its CPU lacks native "
            "bfloat16 instructions (AVX512_BF16 or AMX), so bfloat16 is emulated and slower than float32",
            stacklevel=2,
        )
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build_model(config)
    try:
        return fit(model, splits, config, print_fn=print_fn, backup_dir=backup_dir)
    except BackupError as e:  # raised before any training: start again from nothing
        warnings.warn(f"{e}; training from the start", stacklevel=2)
        shutil.rmtree(backup_dir, ignore_errors=True)
        return train(config, splits, strategy, print_fn, backup_dir)


def bf16_native() -> bool:
    """Whether bfloat16 math runs natively here: an NVIDIA GPU of compute capability 8.0 (Ampere) or
    later, or a CPU with AVX512_BF16 or AMX-BF16."""
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability is not None and tuple(capability) >= (8, 0):
            return True
    from mnist_report import machine

    return bool({"avx512_bf16", "amx_bf16"} & set(machine.cpu()["flags"]))


def save_run(run: Run, run_dir: str | Path) -> Path:
    """Write ``model.keras``, ``config.json`` and ``history.json`` into ``run_dir``, each atomically."""
    run_dir = Path(run_dir)
    with atomic_path(run_dir / "model.keras") as tmp:
        run.model.save(tmp)
    write_json(run_dir / "config.json", run.config.to_dict())
    write_json(run_dir / "history.json", {"history": run.history, "epoch_seconds": run.epoch_seconds})
    return run_dir


def load_model(path: str | Path) -> keras.Model:
    """Load a saved model, with a clear error if the file is missing or not a Keras model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such model file (train one with `make report` or "
            f"`python -m mnist_report train --save-model {path}`)"
        )
    # Keras says "File not found" for a .keras file that is there but not a zip (.h5 files are HDF5)
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a Keras model file: a .keras model is a zip archive written by Keras "
                         "(`model.save`), and this file is not one")
    try:
        return keras.models.load_model(path)
    except Exception as e:
        raise ValueError(f"{path} is not a Keras model that loads ({type(e).__name__}: {e})") from e


def load_history(run_dir: str | Path) -> dict:
    return read_json(Path(run_dir) / "history.json")


_WORKER_DATA: dict[str, object] = {}  # the data a worker process has loaded, by fingerprint


def _worker_data(fingerprint: str):
    """The MNIST arrays whose fingerprint is ``fingerprint``, loaded (and checksum-verified) by this
    process from its own copy of the project's data, once."""
    from mnist_report import data

    if fingerprint not in _WORKER_DATA:
        raw = data.load_raw()
        if data.fingerprint(raw) != fingerprint:
            raise data.DataError(
                f"this worker's MNIST ({raw.source}) differs from the client's (fingerprint {fingerprint[:12]}...): "
                "give every worker the project's data/mnist/ files"
            )
        _WORKER_DATA[fingerprint] = raw
    return _WORKER_DATA[fingerprint]


def run_task(config: TrainConfig, data_fingerprint: str, backup_dir: str | None, test: bool = True) -> dict:
    """One run, as a worker executes it: its splits from the configuration, training (resumed from
    ``backup_dir`` if a backup is there), and everything the client stores, returned to the client
    (so the workers need no shared filesystem): probabilities, history, timings and the model's bytes.
    ``test=False``: the test images are not looked at (no test probabilities)."""
    import socket

    from mnist_report import data

    raw = _worker_data(data_fingerprint)
    splits = data.splits_for(raw, config)
    if not test:
        splits = dataclasses.replace(splits, x_test=splits.x_test[:0], y_test=splits.y_test[:0])
    run = train(config, splits, print_fn=None, backup_dir=backup_dir)
    val_proba = _proba(run.model, splits.x_val)
    try:
        from distributed import get_worker

        worker = str(get_worker().name)
    except (ImportError, ValueError):  # called outside a Dask worker
        worker = "this process"
    if os.environ.get("MALLOC_TRIM_THRESHOLD_"):  # see fanout.start: training about 2x slower
        worker += ", MALLOC_TRIM_THRESHOLD_ set: slow, see the README"
    return {
        "history": run.history,
        "epoch_seconds": run.epoch_seconds,
        "resumed_at": run.resumed_at,
        "y_val": splits.y_val, "val_proba": val_proba.astype(np.float32),
        "y_test": splits.y_test, "test_proba": _proba(run.model, splits.x_test).astype(np.float32),
        "snapshots": run.snapshots,
        "model": model_bytes(run.model),
        "worker": f"{worker} ({socket.gethostname()})",
        "threads": tf.config.threading.get_intra_op_parallelism_threads(),
    }  # fmt: skip
