"""The hyperparameter search: KerasTuner's oracle draws the trials, the executor trains them, the
validation split alone scores them, and a repeated search reads its trials back."""

import dataclasses

import numpy as np
import pytest

from mnist_report import data, runs
from mnist_report.analysis import tuning
from mnist_report.config import TrainConfig
from mnist_report.modeling import train
from mnist_report.runs import store, task

BASE = TrainConfig(n_train=1000, n_test=500)


def test_the_oracle_draws_the_same_trials_for_the_same_seed_and_others_for_another():
    a = tuning.trial_configs(BASE, max_trials=5, max_epochs=3)
    assert a == tuning.trial_configs(BASE, max_trials=5, max_epochs=3)
    assert a != tuning.trial_configs(BASE, max_trials=5, max_epochs=3, seed=1)
    assert len(a) == 5 and len(set(a)) == 5
    for c in a:
        lo, hi = tuning.SPACE["learning_rate"]
        assert lo <= c.learning_rate <= hi and c.batch_size in tuning.SPACE["batch_size"]
        assert c.dropout in tuning.SPACE["dropout"] and c.dense_units in tuning.SPACE["dense_units"]
        assert c.epochs == 3 and c.patience == tuning.PATIENCE and c.seed == BASE.seed


@pytest.mark.slow
def test_a_tiny_search_reports_trials_best_first_and_reads_them_back(raw, tmp_path, pool, monkeypatch):
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "runs"))  # a store of its own: its trials train here
    lines = []
    rows = tuning.search(BASE, raw, max_trials=2, max_epochs=1, scheduler=pool.address, print_fn=lines.append)
    assert len(rows) == 2 and len(lines) == 3 and lines[0].startswith("training 2 of 2 run(s) on ")
    assert all("best val_accuracy" in line and "learning_rate" in line for line in lines[1:])
    assert {line.split(":")[0].split("] ")[1] for line in lines[1:]} == {"trial 1/2", "trial 2/2"}
    assert rows[0]["val_accuracy"] >= rows[1]["val_accuracy"] and {r["trial"] for r in rows} == {1, 2}
    configs = tuning.trial_configs(BASE, 2, 1)
    for row in rows:
        assert set(tuning.SPACE) <= set(row) and row["best_epoch"] == 1
        config = configs[row["trial"] - 1]
        assert {k: row[k] for k in tuning.SPACE} == {k: getattr(config, k) for k in tuning.SPACE}
        # each trial is an ordinary stored run, scored without the test images
        record = store.read(tmp_path / "runs" / store.key(config, data.fingerprint(raw), test=False), config)
        assert record.history["val_accuracy"][0] == row["val_accuracy"] and len(record.test_proba) == 0

    # a second call reads the finished trials back from the store, training nothing
    def refuse(*args, **kwargs):
        raise AssertionError("a trial was trained again")

    monkeypatch.setattr(runs, "_train", refuse)
    again = tuning.search(BASE, raw, max_trials=2, max_epochs=1, scheduler=pool.address, print_fn=lines.append)
    assert again == rows and len(lines) == 3  # nothing trained, so nothing said


def test_the_search_needs_a_validation_split_and_whole_counts(raw):
    with pytest.raises(ValueError, match="validation_fraction must be > 0"):
        tuning.search(dataclasses.replace(BASE, validation_fraction=0.0), raw, 1, 1)
    for args, message in [
        ((0, 1), "max_trials must be an integer >= 1; got 0"),
        ((2, 0), "max_epochs must be an integer >= 1; got 0"),
        ((True, 1), "max_trials must be an integer >= 1; got True"),
        ((2, 1.5), "max_epochs must be an integer >= 1; got 1.5"),
    ]:
        with pytest.raises(ValueError, match=message):
            tuning.search(BASE, raw, *args)


@pytest.mark.slow
def test_a_trial_never_looks_at_the_test_images(raw, monkeypatch):
    (config,) = tuning.trial_configs(dataclasses.replace(BASE, n_train=600), 1, 2)
    fingerprint = data.fingerprint(raw)
    clean = task.run_task(config, fingerprint, None, test=False)
    assert set(clean) == {"history", "epoch_seconds", "resumed_at", "trained_on"}  # no prediction, no network
    poisoned = dataclasses.replace(raw, x_test=np.full_like(raw.x_test, 255), y_test=np.zeros_like(raw.y_test))
    monkeypatch.setitem(task._DATA, fingerprint, poisoned)
    assert task._data(fingerprint) is poisoned  # what the worker trains from now
    again = task.run_task(config, fingerprint, None, test=False)
    assert again["history"] == clean["history"] and len(again["history"]["val_accuracy"]) == 2


@pytest.mark.slow
def test_early_stopping_after_patience_epochs_without_a_better_validation_accuracy(small_splits):
    config = TrainConfig(epochs=30, n_train=1000, n_test=500, learning_rate=0.003, patience=1)
    run = train.train(config, small_splits, print_fn=None)
    scores = run.history["val_accuracy"]
    assert len(scores) < 30  # it stopped
    assert len(scores) - 1 - int(np.argmax(scores)) == 1  # one epoch after the best, no more
