"""Resuming a killed run: the whole training state after every epoch, the snapshots of a cyclic
schedule, and early stopping decided from the history alone (so a resumed run stops where an
uninterrupted one does)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from mnist_report.config import TrainConfig
from mnist_report.data import Splits
from mnist_report.io import atomic_path, read_json, write_json
from mnist_report.modeling.model import predict_proba
from mnist_report.paths import shown

if TYPE_CHECKING:
    from mnist_report.modeling.train import EpochLogger


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

    def __init__(
        self, directory: str | Path, logger: EpochLogger, config: TrainConfig, snapshots: Snapshots | None = None
    ):
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
        write_json(
            self.directory / "state.json",
            {
                "epoch": epoch + 1,
                "weights": name,
                "config": self.config.to_dict(),
                "snapshots": len(self.snapshots.taken) if self.snapshots is not None else 0,
                "other_variables": [v.numpy().tolist() for v in self._other_variables(self.model)],
                "history": self.logger.history,
                "epoch_seconds": self.logger.seconds,
            },
        )
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
            val, test = (predict_proba(self.model, x).astype(np.float32) for x in self.images)
            self.taken.append((val, test, model_bytes(self.model)))

    def arrays(self) -> dict:
        """``snapshot_val_proba`` and ``snapshot_test_proba``, each (snapshots, images, 10), and
        ``snapshot_models``, a list of ``.keras`` bytes."""
        out = {
            f"snapshot_{split}_proba": np.stack([t[i] for t in self.taken])
            if self.taken
            else np.zeros((0, len(x), 10), np.float32)
            for i, (split, x) in enumerate(zip(("val", "test"), self.images, strict=True))
        }
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
