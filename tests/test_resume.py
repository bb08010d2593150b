"""A run killed mid-training (SIGKILL) resumes from its last completed epoch and ends with the same
numbers as a run never interrupted."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mnist_report import runs, train
from mnist_report.config import TrainConfig
from mnist_report.paths import PROJECT_ROOT

# the better network: augmentation, dropout, batch normalisation and a learning-rate schedule, so that
# every kind of state a resume must restore is there
CONFIG = TrainConfig(architecture="better", epochs=6, n_train=1200, n_test=300, seed=5, dense_units=32)
TRAIN = """
import sys
from mnist_report import data, runs
from mnist_report.config import TrainConfig
runs.run_seed(TrainConfig(**CONFIG), data.load_idx(), sys.argv[1])
""".replace("CONFIG", repr(CONFIG.to_dict()))


def test_epoch_order_depends_on_seed_and_epoch_only():
    a = train.epoch_order(1000, 3, 4)
    assert sorted(a) == list(range(1000))
    np.testing.assert_array_equal(a, train.epoch_order(1000, 3, 4))
    assert not np.array_equal(a, train.epoch_order(1000, 3, 5))
    assert not np.array_equal(a, train.epoch_order(1000, 4, 4))
    first = [b[1].numpy().argmax(1) for b in train.batches(np.zeros((10, 2)), np.arange(10), 4, 3, epochs=3)]
    later = [b[1].numpy().argmax(1) for b in train.batches(np.zeros((10, 2)), np.arange(10), 4, 3, 3, 1)]
    assert [len(b) for b in first] == [4, 4, 2] * 3  # three epochs, each its own order
    for got, want in zip(later, first[3:], strict=True):  # resumed at epoch 1: epochs 1 and 2 as before
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_to_the_same_numbers(raw, tmp_path):
    whole = runs.run_seed(CONFIG, raw, tmp_path / "whole")
    root = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(root)], cwd=PROJECT_ROOT)
    state, killed_at, deadline = None, None, time.monotonic() + 300
    while killed_at is None and proc.poll() is None and time.monotonic() < deadline:
        state = next(root.glob("*/seed-5/backup/state.json"), None)
        try:
            epoch = json.loads(state.read_text())["epoch"] if state else 0
        except (OSError, ValueError):
            epoch = 0
        if epoch >= 2:
            proc.send_signal(signal.SIGKILL)  # no chance to clean up
            killed_at = epoch
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_at is not None and proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    assert not next(root.glob("*/seed-5/run.json"), None), "the killed run finished"
    saved = json.loads(state.read_text())["epoch"]
    assert 2 <= saved < CONFIG.epochs

    resumed = runs.run_seed(CONFIG, raw, root)
    assert not resumed.cached and resumed.resumed_at == saved
    assert not (resumed.path / "backup").exists()  # removed once the run is whole
    np.testing.assert_array_equal(resumed.test_proba, whole.test_proba)
    np.testing.assert_array_equal(resumed.val_proba, whole.val_proba)
    assert resumed.history == whole.history and len(resumed.history["loss"]) == CONFIG.epochs


@pytest.mark.slow
def test_a_damaged_backup_means_training_from_the_start(small_splits, tmp_path):
    config = TrainConfig(epochs=2, batch_size=64, n_train=1000, n_test=500, seed=7)
    whole = train.train(config, small_splits, print_fn=None)
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "state.json").write_text('{"epoch": 1, "weights": "epoch-1.weights.h5"}')  # its weights are gone
    with pytest.warns(UserWarning, match="cannot be restored.*training from the start"):
        again = train.train(config, small_splits, print_fn=None, backup_dir=backup)
    assert again.resumed_at == 0 and again.history == whole.history
    np.testing.assert_array_equal(again.model.predict(small_splits.x_test, verbose=0),
                                  whole.model.predict(small_splits.x_test, verbose=0))  # fmt: skip
    assert sorted(os.listdir(backup)) == [
        "epoch-2.weights.h5", "state.json"]  # fmt: skip
