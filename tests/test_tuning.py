"""The hyperparameter search: it runs, reports every trial, selects on validation, and resumes."""

import pytest

from mnist_report import tuning
from mnist_report.config import TrainConfig


@pytest.mark.slow
def test_a_tiny_search_reports_trials_best_first_and_resumes(small_splits, tmp_path, monkeypatch):
    lines = []
    rows = tuning.search(TrainConfig(), small_splits, max_trials=2, max_epochs=1, directory=tmp_path,
                         print_fn=lines.append)  # fmt: skip
    assert len(rows) == 2 and len(lines) == 2 and lines[-1].startswith("trial 2/2")
    assert rows[0]["val_accuracy"] >= rows[1]["val_accuracy"]
    for row in rows:
        assert set(tuning.SPACE) <= set(row) and row["best_epoch"] == 1
        lo, hi = tuning.SPACE["learning_rate"]
        assert lo <= row["learning_rate"] <= hi and row["batch_size"] in tuning.SPACE["batch_size"]
    # a second call with the same directory reads the finished trials back, training nothing
    again = tuning.search(TrainConfig(), small_splits, max_trials=2, max_epochs=1, directory=tmp_path,
                          print_fn=lines.append)  # fmt: skip
    assert again == rows and len(lines) == 2
    # other training code (or package versions, or machine) is another search: nothing is read back
    monkeypatch.setattr(tuning.runs, "code_version", lambda: "other training code")
    tuning.search(TrainConfig(), small_splits, max_trials=1, max_epochs=1, directory=tmp_path, print_fn=lines.append)
    assert len(lines) == 3 and len(list(tmp_path.glob("search-*"))) == 2


def test_the_search_needs_a_validation_split(small_splits, tmp_path):
    with pytest.raises(ValueError, match="validation_fraction must be > 0"):
        tuning.search(TrainConfig(), small_splits.full_training(), 1, 1, tmp_path)
    with pytest.raises(ValueError, match="max_trials must be an integer >= 1"):
        tuning.search(TrainConfig(), small_splits, 0, 1, tmp_path)


@pytest.mark.slow
def test_the_search_never_looks_at_the_test_images(small_splits, tmp_path):
    import dataclasses

    import numpy as np

    poisoned = dataclasses.replace(small_splits, x_test=np.full_like(small_splits.x_test, np.nan),
                                   y_test=np.zeros_like(small_splits.y_test))  # fmt: skip
    rows = tuning.search(TrainConfig(), small_splits, 1, 1, tmp_path / "a", print_fn=None)
    assert tuning.search(TrainConfig(), poisoned, 1, 1, tmp_path / "b", print_fn=None) == rows
