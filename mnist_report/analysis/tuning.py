"""A hyperparameter search over the baseline network: KerasTuner's random-search oracle draws the trials,
the executor trains them all at once, and the validation split alone scores them.

Each trial is an ordinary stored run (``runs.get``) made without the test set, so an interrupted or
repeated search reads its finished trials back, under the same key rule as every other run.

Why not KerasTuner's own ``Tuner.search``: it trains one trial at a time in this process, and its
distributed mode needs one long-lived tuner process per worker, talking to a chief over gRPC. Drawing
the trials from its oracle and handing them to Dask as tasks keeps one executor for every run of the
report, a cluster included, and one store. A random search draws each trial independently of the
scores so far, so drawing them all first gives the same trials as KerasTuner's sequential loop would.
"""

from __future__ import annotations

from mnist_report import quiet_tf  # noqa: F401  (first: TensorFlow imported without its probe noise)

# isort: split
import contextlib
import dataclasses
import io
import tempfile

import keras_tuner as kt

from mnist_report import data, runs
from mnist_report.config import TrainConfig

# The search space: the baseline network's hyperparameters. Epochs are chosen by early stopping on the
# validation accuracy, up to max_epochs; the best epoch count is reported with each trial.
SPACE = {
    "learning_rate": (3e-4, 3e-3),  # log-uniform
    "batch_size": (64, 128, 256),
    "dropout": (0.25, 0.4, 0.5),
    "dense_units": (64, 128, 256),
}
PATIENCE = 3  # epochs without a better validation accuracy before a trial stops


def hyperparameters() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    lo, hi = SPACE["learning_rate"]
    hp.Float("learning_rate", lo, hi, sampling="log")
    for name in ("batch_size", "dropout", "dense_units"):
        hp.Choice(name, list(SPACE[name]))
    return hp


def trial_configs(base: TrainConfig, max_trials: int, max_epochs: int, seed: int = 0) -> list[TrainConfig]:
    """The search's trials, as run configurations: ``base`` with the hyperparameters KerasTuner's
    random-search oracle draws, at most ``max_epochs`` epochs and early stopping."""
    oracle = kt.oracles.RandomSearchOracle(
        objective=kt.Objective("val_accuracy", direction="max"),
        max_trials=max_trials,
        hyperparameters=hyperparameters(),
        seed=seed + 1,  # KerasTuner takes a seed of 0 for "none" and draws a random one
    )
    configs = []
    with tempfile.TemporaryDirectory() as scratch:
        oracle._set_project_dir(scratch, "search")  # where a Tuner would point it; nothing here is read back
        for i in range(max_trials):
            with contextlib.redirect_stdout(io.StringIO()):  # its "Running Trial #N" table: the progress lines say it
                trial = oracle.create_trial(f"task-{i}")  # one id per trial in flight
            if trial.status != kt.engine.trial.TrialStatus.RUNNING:  # the space is exhausted
                break
            configs.append(
                dataclasses.replace(base, **trial.hyperparameters.values, epochs=max_epochs, patience=PATIENCE)
            )
    return configs


def search(
    base: TrainConfig,
    raw: data.RawMNIST,
    max_trials: int,
    max_epochs: int,
    seed: int = 0,
    scheduler: str | None = None,
    workers: int | None = None,
    print_fn=print,
) -> list[dict]:
    """Run (or read back) the search; every trial, best validation accuracy first.

    Each row: the hyperparameters, the validation accuracy at the best epoch, that epoch, and the
    trial's number in the order the oracle drew it.
    """
    if base.validation_fraction <= 0:
        raise ValueError("the search selects on a validation split: validation_fraction must be > 0")
    for name, value, low in (("max_trials", max_trials, 1), ("max_epochs", max_epochs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    configs = trial_configs(base, max_trials, max_epochs, seed)
    number = {c: i + 1 for i, c in enumerate(configs)}

    def describe(run: runs.Run) -> str:
        row = _row(run)
        hp = ", ".join(f"{k} {_fmt(row[k])}" for k in SPACE)
        return (
            f"trial {number[run.config]:>{len(str(len(configs)))}}/{len(configs)}: best val_accuracy "
            f"{row['val_accuracy']:.4f} after epoch {row['best_epoch']} ({hp})"
        )

    trials = runs.get(
        configs, raw, test=False, describe=describe, scheduler=scheduler, workers=workers, print_fn=print_fn
    )
    rows = [{**_row(run), "trial": number[run.config]} for run in trials]
    return sorted(rows, key=lambda r: (-r["val_accuracy"], r["trial"]))


def _row(run: runs.Run) -> dict:
    scores = run.history["val_accuracy"]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # the first of equal bests
    return {**{k: getattr(run.config, k) for k in SPACE}, "val_accuracy": float(scores[best]), "best_epoch": best + 1}


def _fmt(v) -> str:
    return f"{v:.2e}" if isinstance(v, float) and v < 0.01 else str(v)
