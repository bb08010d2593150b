"""A hyperparameter search over the seed network with KerasTuner, selecting on the validation split.

The tuner only ever sees ``splits.x_train`` (to fit) and ``splits.x_val`` (to score); the test
images are not passed to anything in this module. Finished trials are stored under ``directory``
(KerasTuner's own format), so an interrupted or repeated search continues instead of starting over.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import keras
import keras_tuner as kt

from mnist_report import runs, train
from mnist_report.config import TrainConfig
from mnist_report.data import Splits
from mnist_report.model import build_seed_model

# The search space: the seed network's hyperparameters. Epochs are chosen by early stopping on the
# validation accuracy, up to max_epochs; the best epoch count is reported with each trial.
SPACE = {
    "learning_rate": (3e-4, 3e-3),  # log-uniform
    "batch_size": (64, 128, 256),
    "dropout": (0.25, 0.4, 0.5),
    "dense_units": (64, 128, 256),
}
PATIENCE = 3  # epochs without a better validation accuracy before a trial stops
_CODE = runs.code_text(Path(__file__))  # this module as imported (see runs.source_hash)


class SeedHyperModel(kt.HyperModel):
    """The seed network with its hyperparameters drawn by the tuner."""

    def __init__(self, base: TrainConfig, splits: Splits, max_epochs: int, patience: int = PATIENCE):
        super().__init__(name="seed_network")
        self.base, self.splits, self.max_epochs, self.patience = base, splits, max_epochs, patience

    def config(self, hp: kt.HyperParameters) -> TrainConfig:
        lo, hi = SPACE["learning_rate"]
        return dataclasses.replace(
            self.base,
            learning_rate=hp.Float("learning_rate", lo, hi, sampling="log"),
            batch_size=hp.Choice("batch_size", list(SPACE["batch_size"])),
            dropout=hp.Choice("dropout", list(SPACE["dropout"])),
            dense_units=hp.Choice("dense_units", list(SPACE["dense_units"])),
            epochs=self.max_epochs,
        )

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        config = self.config(hp)
        train.set_determinism(config.seed)
        return build_seed_model(config)

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args, callbacks=(), **kwargs):
        config = self.config(hp)
        s = self.splits
        # the same quantity chooses the epoch and scores the trial: validation accuracy
        stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=self.patience,
                                             restore_best_weights=True)  # fmt: skip
        return model.fit(
            train.batches(s.x_train, s.y_train, config.batch_size, config.seed, config.epochs),
            validation_data=train.batches(s.x_val, s.y_val, 1000),
            epochs=config.epochs,
            steps_per_epoch=train.steps_per_epoch(len(s.y_train), config.batch_size),
            shuffle=False,
            verbose=0,
            callbacks=[*callbacks, stop],
        )


class _Search(kt.RandomSearch):
    """RandomSearch that prints one plain line per finished trial."""

    def __init__(self, *args, print_fn=print, max_trials: int, **kwargs):
        super().__init__(*args, max_trials=max_trials, **kwargs)
        self._print, self._start = print_fn, time.perf_counter()

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # KerasTuner imports TensorBoard here to patch a TensorBoard callback; this search passes none,
        # and TensorBoard is not a dependency of this project.
        return

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        done = len([t for t in self.oracle.trials.values() if t.status == "COMPLETED"])
        hp = ", ".join(f"{k} {_fmt(v)}" for k, v in trial.hyperparameters.values.items())
        score = trial.score if trial.score is not None else float("nan")
        self._print(f"trial {done}/{self.oracle.max_trials}: val_accuracy {score:.4f}  ({hp})  "
                    f"[{time.perf_counter() - self._start:.0f} s so far]")  # fmt: skip


def _fmt(v) -> str:
    return f"{v:.2e}" if isinstance(v, float) and v < 0.01 else str(v)


def search(
    base: TrainConfig,
    splits: Splits,
    max_trials: int,
    max_epochs: int,
    directory: str | Path,
    seed: int = 0,
    print_fn=print,
) -> list[dict]:
    """Run (or continue) the search; return every completed trial, best validation accuracy first.

    Each row: the hyperparameters, the validation accuracy at the best epoch, and that epoch.
    """
    if len(splits.y_val) == 0:
        raise ValueError("the search selects on a validation split: validation_fraction must be > 0")
    for name, value, low in (("max_trials", max_trials, 1), ("max_epochs", max_epochs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    # Finished trials are read back from the directory only for exactly this search: the same base
    # settings, search space, budget and seed, the same code (this module and the training code, comments
    # aside), package versions and machine.
    settings = json.dumps({"base": base.to_dict(), "space": SPACE, "max_trials": max_trials, "max_epochs": max_epochs,
                           "patience": PATIENCE, "seed": seed, "n_train": len(splits.y_train),
                           "n_val": len(splits.y_val)}, sort_keys=True)  # fmt: skip
    key = hashlib.sha256(settings.encode() + runs.code_version().encode() + _CODE).hexdigest()[:16]
    tuner = _Search(
        SeedHyperModel(base, splits, max_epochs, PATIENCE),
        objective=kt.Objective("val_accuracy", direction="max"),
        max_trials=max_trials,
        seed=seed + 1,  # KerasTuner takes a seed of 0 for "none" and draws a random one
        directory=str(directory),
        project_name=f"search-{key}",
        overwrite=False,
        print_fn=print_fn or (lambda line: None),
    )
    tuner.search(verbose=0)  # its own display redraws lines; ours prints one line per trial
    completed = [t for t in tuner.oracle.get_best_trials(num_trials=max_trials) if t.status == "COMPLETED"]
    if not completed:
        raise RuntimeError(f"no trial of the search in {directory} completed; see the errors above")
    rows = []
    for trial in completed:
        history = trial.metrics.get_history("val_accuracy")
        best_step = max(history, key=lambda o: o.value[0]).step if history else max_epochs - 1
        rows.append({**trial.hyperparameters.values, "val_accuracy": float(trial.score),
                     "best_epoch": best_step + 1, "trial": trial.trial_id})  # fmt: skip
    return rows
