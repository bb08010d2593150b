"""The hyperparameter search: KerasTuner's oracle draws the trials, the executor trains them, the
validation split alone scores them, and a repeated search reads its trials back."""

import dataclasses

import numpy as np
import pytest

from mnist_report import data
from mnist_report.analysis import tuning
from mnist_report.config import TrainConfig
from mnist_report.modeling import train

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
def test_a_tiny_search_reports_trials_best_first_and_resumes(raw, tmp_path, pool):
    lines = []
    rows = tuning.search(BASE, raw, max_trials=2, max_epochs=1, cache_root=tmp_path, executor=pool,
                         print_fn=lines.append)  # fmt: skip
    assert len(rows) == 2 and len(lines) == 3 and all("best val_accuracy" in line for line in lines[1:])
    assert rows[0]["val_accuracy"] >= rows[1]["val_accuracy"] and {r["trial"] for r in rows} == {1, 2}
    for row in rows:
        assert set(tuning.SPACE) <= set(row) and row["best_epoch"] == 1
    # a second call reads the finished trials back, training nothing
    again = tuning.search(BASE, raw, max_trials=2, max_epochs=1, cache_root=tmp_path, executor=pool,
                          print_fn=lines.append)  # fmt: skip
    assert not any(r["cached"] for r in rows) and all(r["cached"] for r in again)
    assert [{**r, "cached": True} for r in rows] == again and "2 of them cached" in lines[3]


def test_the_search_needs_a_validation_split(raw, tmp_path):
    with pytest.raises(ValueError, match="validation_fraction must be > 0"):
        tuning.search(dataclasses.replace(BASE, validation_fraction=0.0), raw, 1, 1, tmp_path, None)
    with pytest.raises(ValueError, match="max_trials must be an integer >= 1"):
        tuning.search(BASE, raw, 0, 1, tmp_path, None)


@pytest.mark.slow
def test_a_trial_never_looks_at_the_test_images(raw, monkeypatch):
    (config,) = tuning.trial_configs(dataclasses.replace(BASE, n_train=600), 1, 2)
    fingerprint = data.fingerprint(raw)
    clean = train.run_task(config, fingerprint, None, test=False)
    poisoned = dataclasses.replace(raw, x_test=np.full_like(raw.x_test, 255), y_test=np.zeros_like(raw.y_test))
    monkeypatch.setitem(train._WORKER_DATA, fingerprint, poisoned)
    again = train.run_task(config, fingerprint, None, test=False)
    assert again["test_proba"].shape == (0, 10) and len(again["y_test"]) == 0
    assert again["history"] == clean["history"]
    np.testing.assert_array_equal(again["val_proba"], clean["val_proba"])


@pytest.mark.slow
def test_early_stopping_after_patience_epochs_without_a_better_validation_accuracy(small_splits):
    config = TrainConfig(epochs=30, n_train=1000, n_test=500, learning_rate=0.003, patience=1)
    run = train.train(config, small_splits, print_fn=None)
    scores = run.history["val_accuracy"]
    assert len(scores) < 30  # it stopped
    assert len(scores) - 1 - int(np.argmax(scores)) == 1  # one epoch after the best, no more
