"""Training one run: seeding and determinism, the batches of each epoch, the schedule, and fit."""

from __future__ import annotations

from mnist_report import quiet_tf  # noqa: F401  (first: TensorFlow imported without its probe noise)

# isort: split
import contextlib
import inspect
import math
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mnist_report.config import TrainConfig
from mnist_report.data import Splits, one_hot
from mnist_report.machine import bf16_native
from mnist_report.modeling.model import build_model
from mnist_report.modeling.resume import Backup, BackupError, PatienceStop, Snapshots
from mnist_report.paths import shown


def configure_threads(threads: int) -> None:
    """Give TensorFlow ``threads`` intra-op and inter-op threads in this process.

    TensorFlow's numbers depend on its thread count, and it can be set only before TensorFlow runs its
    first operation; a process already running with another count cannot train this run.
    """
    current = (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
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


def batches(
    images, labels, batch_size: int, shuffle_seed: int | None = None, epochs: int = 1, first_epoch: int = 0
) -> tf.data.Dataset:
    """(images, one-hot labels) batches.  Unseeded: one pass in order.  Seeded: epochs
    ``first_epoch`` to ``epochs - 1`` one after another, each in ``epoch_order``; pass
    ``steps_per_epoch`` and ``initial_epoch=first_epoch`` to ``fit``. A tf.data pipeline, because Keras'
    adapter for NumPy arrays sometimes ran epochs at half speed (mnist_report/README.md)."""
    y = one_hot(labels)
    if shuffle_seed is None:
        return tf.data.Dataset.from_tensor_slices((images, y)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    orders = np.stack([epoch_order(len(labels), shuffle_seed, e) for e in range(first_epoch, epochs)])
    x_all, y_all = tf.constant(images), tf.constant(y)
    ds = tf.data.Dataset.from_tensor_slices(orders.astype(np.int32))
    ds = ds.flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
    return ds.map(lambda i: (tf.gather(x_all, i), tf.gather(y_all, i))).prefetch(tf.data.AUTOTUNE)


def fit(
    model: keras.Model,
    splits: Splits,
    config: TrainConfig,
    callbacks=(),
    print_fn=print,
    backup_dir: str | Path | None = None,
) -> Run:
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
    return Run(
        model=model,
        config=config,
        history=logger.history,
        epoch_seconds=logger.seconds,
        resumed_at=start,
        snapshots=snapshots.arrays() if snapshots else {},
    )


def build_state(model: keras.Model, batch_spec) -> None:
    """Create the optimizer's and the compiled loss's and metrics' variables before ``fit`` traces its
    training step. Left to ``fit``, TensorFlow traces that step twice: once only to create them, then
    again to run it, a large share of a small run's time. The numbers are the same bit for bit
    (tests/test_train.py).

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
