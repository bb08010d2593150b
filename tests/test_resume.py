"""A run whose worker is killed mid-training (SIGKILL) resumes from its last completed epoch and ends with the same
numbers as a run never interrupted."""

import json
import os
import re
import shutil
import signal
import threading
import time

import dask
import numpy as np
import pytest

from mnist_report import data, runs
from mnist_report.config import TrainConfig
from mnist_report.modeling import resume, train
from mnist_report.modeling.model import load_model, predict_proba
from mnist_report.runs import executor, store

# the better network: augmentation, dropout, batch normalisation and a learning-rate schedule, so that
# every kind of state a resume must restore is there (narrow: the same layers and state, little arithmetic)
CONFIG = TrainConfig(architecture="better", epochs=4, n_train=1200, n_test=300, seed=5, dense_units=16, conv_width=8)


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
def test_a_worker_killed_mid_run_loses_nothing(raw, tmp_path, pool, monkeypatch):
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "whole"))  # each call a store of its own: both train
    (whole,) = runs.get([CONFIG], raw, scheduler=pool.address, print_fn=None)
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "killed"))
    state = store.backup_dir(store.key(CONFIG, data.fingerprint(raw))) / "state.json"
    assert not state.exists()  # the uninterrupted run's backup is removed once its record is written
    lines, result = [], {}
    thread = threading.Thread(
        target=lambda: result.update(runs=runs.get([CONFIG], raw, scheduler=pool.address, print_fn=lines.append))
    )
    thread.start()
    killed_at, deadline = None, time.monotonic() + 300
    while killed_at is None and thread.is_alive() and time.monotonic() < deadline:
        try:
            epoch = json.loads(state.read_text())["epoch"] if state.is_file() else 0
        except (OSError, ValueError):
            epoch = 0
        if epoch >= 1:  # killed mid-run, with three epochs of margin before the run would end
            (busy,) = [worker for worker, tasks in pool.client.processing().items() if tasks]
            (pid,) = pool.client.run(os.getpid, workers=[busy]).values()
            os.kill(pid, signal.SIGKILL)  # the worker process, mid-run: no chance to clean up
            killed_at = epoch
        time.sleep(0.02)
    thread.join(timeout=300)
    assert killed_at is not None, "the run ended before its worker was killed"
    (resumed,) = result["runs"]  # Dask gave the task to another worker (its nanny restarts the killed one)
    assert resumed.trained_now and resumed.path.parent == tmp_path / "killed"
    (after,) = [int(n) for n in re.findall(r"resumed after epoch (\d+)", "\n".join(lines))]
    assert killed_at <= after < CONFIG.epochs  # ... which resumed from the backup
    assert not state.parent.exists()  # removed once the run is whole
    for name in ("test_proba", "val_proba", "val_tta_proba", "y_val", "y_test"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name), err_msg=name)
    assert resumed.history == whole.history and len(resumed.history["loss"]) == CONFIG.epochs
    assert resumed.val_tta_proba.shape == (len(resumed.y_val), 10)  # the better network's: there to compare
    # the killed worker's replacement runs as the local cluster's workers do (executor.start's settings)
    pool.client.wait_for_workers(2, timeout=120)
    for key, value in executor.QUIET.items():
        assert set(pool.client.run(dask.config.get, key).values()) == {value}, key
    assert set(pool.client.run(os.environ.get, executor.MALLOC_TRIM).values()) == {None}


SEVEN = TrainConfig(epochs=2, batch_size=64, n_train=1000, n_test=500, seed=7)


@pytest.fixture(scope="module")
def seven(small_splits, tmp_path_factory):
    """SEVEN trained whole, and the backup it leaves: (run, backup folder). Tests copy the folder."""
    backup = tmp_path_factory.mktemp("seven") / "backup"
    return train.train(SEVEN, small_splits, print_fn=None, backup_dir=backup), backup


@pytest.mark.slow
def test_a_damaged_backup_means_training_from_the_start(small_splits, tmp_path, seven):
    whole, _ = seven
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "state.json").write_text('{"epoch": 1, "weights": "epoch-1.weights.h5"}')  # its weights are gone
    with pytest.warns(UserWarning, match="cannot be restored.*training from the start"):
        again = train.train(SEVEN, small_splits, print_fn=None, backup_dir=backup)
    assert again.resumed_at == 0 and again.history == whole.history
    np.testing.assert_array_equal(
        again.model.predict(small_splits.x_test, verbose=0), whole.model.predict(small_splits.x_test, verbose=0)
    )
    assert sorted(os.listdir(backup)) == ["epoch-2.weights.h5", "state.json"]


@pytest.mark.slow
def test_a_backup_made_under_another_configuration_is_refused(small_splits, tmp_path, seven):
    backup = shutil.copytree(seven[1], tmp_path / "backup")  # SEVEN's, of its last epoch
    other = TrainConfig(**{**SEVEN.to_dict(), "dropout": 0.3})
    with pytest.warns(UserWarning, match="another configuration.*training from the start"):
        again = train.train(other, small_splits, print_fn=None, backup_dir=backup)
    fresh = train.train(other, small_splits, print_fn=None)
    assert again.resumed_at == 0 and again.history == fresh.history


@pytest.mark.slow
@pytest.mark.parametrize(
    "options", [{"ema_momentum": 0.9}, {"cycles": 2, "label_smoothing": 0.1}], ids=["weight-average", "snapshots"]
)
def test_a_run_resumed_with_its_average_or_snapshots_ends_as_an_uninterrupted_one(small_splits, tmp_path, options):
    """The optimizer's average of the weights, and the snapshots taken so far, are part of the backup; a backup
    of a finished run ends with the averaged weights, as ``model.fit`` ends."""
    epochs = 4 if options.get("cycles") else 2  # snapshots: two cycles of two epochs
    config = TrainConfig(
        architecture="better", epochs=epochs, batch_size=64, seed=3, dense_units=16, conv_width=4, **options
    )
    whole = train.train(config, small_splits, print_fn=None)

    class Killed(Exception):
        pass

    class KillInLastEpoch(train.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            # the last epoch, before its backup (this callback comes first): resumed one epoch before the end, in
            # the middle of the last cycle, with the first snapshot restored from the backup
            if epoch == config.epochs - 1:
                raise Killed

    train.set_determinism(config.seed)
    with pytest.raises(Killed):
        backup_dir = tmp_path / "backup"
        model = train.build_model(config)
        train.fit(model, small_splits, config, print_fn=None, backup_dir=backup_dir, callbacks=[KillInLastEpoch()])
    resumed = train.train(config, small_splits, print_fn=None, backup_dir=backup_dir)
    finished = train.train(config, small_splits, print_fn=None, backup_dir=backup_dir)  # its backup: every epoch
    assert (resumed.resumed_at, finished.resumed_at) == (config.epochs - 1, config.epochs)
    want = predict_proba(whole.model, small_splits.x_test)
    for run in (resumed, finished):
        assert run.history == whole.history
        np.testing.assert_array_equal(predict_proba(run.model, small_splits.x_test), want)
        assert run.snapshots.keys() == whole.snapshots.keys()
        for k in whole.snapshots:
            if k != "snapshot_models":  # .keras bytes; the networks they hold are compared below
                np.testing.assert_array_equal(run.snapshots[k], whole.snapshots[k])
    if config.cycles > 1:
        assert whole.snapshots["snapshot_test_proba"].shape == (2, len(small_splits.y_test), 10)
        np.testing.assert_array_equal(whole.snapshots["snapshot_test_proba"][-1], want.astype(np.float32))
        rates = whole.history["learning_rate"]
        assert rates[2] == rates[0] == pytest.approx(config.learning_rate)  # each cycle starts at the peak
        assert rates[1] == pytest.approx(rates[3]) and rates[1] < rates[0]  # ... and ends low
        for run in (resumed, finished):  # the first snapshot was saved in the backup, the second made after it
            for blob, proba in zip(run.snapshots["snapshot_models"], run.snapshots["snapshot_test_proba"], strict=True):
                path = tmp_path / "member.keras"
                path.write_bytes(blob)
                got = predict_proba(load_model(path), small_splits.x_test)
                np.testing.assert_allclose(got, proba, atol=1e-6)
    else:  # validation scored the average, and the final network is that average
        assert not whole.snapshots
        final = float(np.mean(predict_proba(whole.model, small_splits.x_val).argmax(1) == small_splits.y_val))
        assert whole.history["val_accuracy"][-1] == pytest.approx(final, abs=1e-6)


def test_patience_counts_the_epochs_since_the_best_validation_accuracy():
    stopped = resume.PatienceStop.stopped
    history = {"val_accuracy": [0.5, 0.7, 0.6, 0.65]}  # best at epoch 2, then two epochs without a better one
    assert stopped(history, 2) and not stopped(history, 3)
    assert stopped({"val_accuracy": [0.5, 0.7, 0.7]}, 1)  # an equal score is not a better one
    assert not stopped(history, None) and not stopped({}, 1)  # no patience, or no epoch yet: never stopped


@pytest.mark.slow
def test_a_run_stopped_early_and_resumed_stops_where_it_did(small_splits, tmp_path):
    """Early stopping is decided from the history the backup restores: a run resumed from the backup of a run
    that stopped early trains no further epoch."""
    config = TrainConfig(epochs=30, batch_size=64, n_train=1000, n_test=500, seed=0, learning_rate=0.003, patience=1)
    whole = train.train(config, small_splits, print_fn=None, backup_dir=tmp_path / "backup")
    assert len(whole.history["val_accuracy"]) < config.epochs  # it stopped
    again = train.train(config, small_splits, print_fn=None, backup_dir=tmp_path / "backup")
    assert again.resumed_at == len(whole.history["val_accuracy"]) and again.history == whole.history
    np.testing.assert_array_equal(
        predict_proba(again.model, small_splits.x_test), predict_proba(whole.model, small_splits.x_test)
    )
