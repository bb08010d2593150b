"""The run store: a run is trained once (on the executor's workers, only when missing), stored exactly,
read back unchanged by any process, refused when damaged, and keyed by its configuration, the data and
the numerics version alone; the same numbers whatever the number of workers, one training per run
even when two studies ask for it at once."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pytest

from mnist_report import data, runs
from mnist_report.config import TrainConfig
from mnist_report.paths import PROJECT_ROOT
from mnist_report.runs import executor as fanout
from mnist_report.runs import store

TINY = TrainConfig(epochs=1, n_train=300, n_test=100, validation_fraction=0.2)
NARROW = TrainConfig(
    architecture="better",
    epochs=2,
    n_train=300,
    n_test=100,
    validation_fraction=0.2,
    dense_units=16,
    conv_width=4,
    seed=0,
)


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A store and a cache of this test's own."""
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "store"))
    monkeypatch.setenv(store.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "store"


@pytest.mark.slow
def test_a_run_is_trained_once_then_read_back_exactly(raw, fresh, pool):
    lines = []
    first = runs.get(runs.seeds_of(TINY, [0, 1]), raw, scheduler=pool.address, print_fn=lines.append)
    assert [r.trained_now for r in first] == [True, True]
    assert "training 2 of 2 run(s) on 2 workers" in lines[0] and len(lines) == 3
    assert first[0].val_proba.shape == (60, 10) and first[0].test_proba.shape == (100, 10)
    assert first[0].val_proba.dtype == np.float32 and not (fresh / first[0].key / "model.keras").exists()
    lines.clear()
    again = runs.get(runs.seeds_of(TINY, [0, 1]), raw, scheduler="tcp://127.0.0.1:9", print_fn=lines.append)
    assert [r.trained_now for r in again] == [False, False] and lines == []  # no cluster reached, nothing said
    for a, b in zip(first, again, strict=True):
        for name in store.ARRAYS:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert a.history == b.history and a.epoch_seconds == b.epoch_seconds
    meta = json.loads((fresh / first[1].key / "run.json").read_text())
    assert meta["config"] == {**TINY.to_dict(), "seed": 1} and meta["numerics"] == store.NUMERICS_VERSION
    assert meta["trained_on"]["threads"] == 1 and meta["trained_on"]["cpu"] and meta["trained_on"]["packages"]
    assert not store.backup_dir(first[1].key).exists()  # the backup of a finished run is gone
    assert runs.used()[first[1].key] == meta["sha256"]  # what a notebook's inputs will name


@pytest.mark.slow
def test_the_better_network_stores_its_augmented_and_snapshot_predictions_and_its_model(raw, fresh, pool):
    config = TrainConfig(**{**NARROW.to_dict(), "cycles": 2})
    final = TrainConfig(**{**NARROW.to_dict(), "validation_fraction": 0.0})
    snap, plain = runs.get([config, final], raw, keep_models=[final], scheduler=pool.address, print_fn=None)
    assert snap.val_tta_proba.shape == (60, 10) and len(snap.test_tta_proba) == 0  # TTA judged on validation
    assert plain.test_tta_proba.shape == (100, 10) and len(plain.val_tta_proba) == 0  # ... used on the test set
    assert snap.snapshot_test_proba.shape == (2, 100, 10)
    np.testing.assert_array_equal(snap.snapshot_test_proba[-1], snap.test_proba)  # the last is the final network
    assert not plain.snapshot_test_proba.size and not snap.model_path.exists()
    # the shipped network: a plain Keras file, loaded without this package, that predicts what was stored
    code = (
        "import sys, keras, numpy as np; m = keras.models.load_model(sys.argv[1]); "
        "x = np.load(sys.argv[2]); print(np.abs(m.predict(x, verbose=0) - np.load(sys.argv[3])).max(), "
        "any(k.startswith('mnist_report') for k in sys.modules), getattr(m, 'optimizer', None) is None)"
    )
    np.save(fresh.parent / "x.npy", data.splits_for(raw, final).x_test)
    np.save(fresh.parent / "p.npy", plain.test_proba)
    out = subprocess.run(
        [sys.executable, "-c", code, str(plain.model_path), str(fresh.parent / "x.npy"), str(fresh.parent / "p.npy")],
        capture_output=True,
        text=True,
        cwd="/",
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=True,
    )
    diff, imported, no_optimizer = out.stdout.split()
    assert float(diff) < 1e-6 and imported == "False" and no_optimizer == "True"


def _record(raw, fresh, pool):
    (run,) = runs.get([TINY], raw, scheduler=pool.address, print_fn=None)
    return run, fresh / run.key


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "edited", "missing", "not json", "another config"])
def test_a_damaged_or_edited_record_stops_with_the_file_and_the_remedy(raw, fresh, pool, damage):
    run, folder = _record(raw, fresh, pool)
    meta = json.loads((folder / "run.json").read_text())
    if damage == "truncated":
        blob = (folder / "predictions.npz").read_bytes()
        (folder / "predictions.npz").write_bytes(blob[: len(blob) // 2])
    elif damage == "edited":  # a number changed by hand, in a file that still reads
        meta["history"]["accuracy"][0] += 0.01
        (folder / "run.json").write_text(json.dumps(meta))
    elif damage == "missing":
        (folder / "predictions.npz").unlink()
    elif damage == "not json":
        (folder / "run.json").write_text("{")
    else:
        (folder / "run.json").write_text(json.dumps({**meta, "config": {**meta["config"], "dropout": 0.3}}))
    with pytest.raises(store.RecordError, match=rf"{run.key}.*git checkout -- .*{run.key}.*delete the folder"):
        runs.get([TINY], raw, scheduler=pool.address, print_fn=None)


def test_a_failed_write_leaves_no_record(tmp_path):
    with pytest.raises(KeyError):
        store.write(tmp_path, "k", TINY, {"y_val": np.zeros(3), "history": {}})  # no epoch_seconds
    assert list(tmp_path.iterdir()) == []


def test_the_key_is_the_configuration_the_data_and_the_numerics_version(raw, monkeypatch):
    fp = data.fingerprint(raw)
    key = store.key(TINY, fp)
    assert store.key(TrainConfig(**TINY.to_dict()), fp) == key
    for change in ({"seed": 7}, {"dropout": 0.4}, {"precision": "mixed_bfloat16"}, {"threads": 2}):
        assert store.key(TrainConfig(**{**TINY.to_dict(), **change}), fp) != key, change
    assert store.key(TINY, fp, test=False) != key
    assert store.key(TINY, "another data set") != key
    monkeypatch.setattr(store, "NUMERICS_VERSION", store.NUMERICS_VERSION + 1)
    assert store.key(TINY, fp) != key


def test_where_runs_are_read_and_written(tmp_path, monkeypatch):
    monkeypatch.delenv(store.STORE_ENV)
    monkeypatch.setenv(store.CACHE_ENV, str(tmp_path / "cache"))
    read, write = store.places()
    assert read == [store.STORE, tmp_path / "cache" / "runs"] and write == tmp_path / "cache" / "runs"
    assert store.STORE == PROJECT_ROOT / "reports" / "runs"  # the committed runs are read, never written by hand
    monkeypatch.setenv(store.STORE_ENV, "reports/runs")  # make report
    assert store.places() == ([store.STORE], store.STORE)


@pytest.mark.slow
def test_outside_make_report_the_committed_runs_are_read_where_they_are(raw, tmp_path, monkeypatch, pool):
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "committed"))
    (committed,) = runs.get([TINY], raw, scheduler=pool.address, print_fn=None)
    monkeypatch.delenv(store.STORE_ENV)  # JupyterLab, make run: the committed store is read, the cache written
    monkeypatch.setenv(store.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(store, "STORE", tmp_path / "committed")
    for _ in range(2):  # Run All twice: read in place both times, nothing copied, nothing trained
        (again,) = runs.get([TINY], raw, scheduler="tcp://127.0.0.1:9", print_fn=None)
        assert not again.trained_now and again.path == committed.path
    assert not (tmp_path / "cache" / "runs").exists()
    # a record without the network the caller ships: refused, never silently trained again
    with pytest.raises(store.RecordError, match=rf"{committed.key} without the network .*delete the folder"):
        runs.get([TINY], raw, keep_models=[TINY], scheduler="tcp://127.0.0.1:9", print_fn=None)


@pytest.mark.slow  # (it trains nothing: runs.get refuses first)
def test_seeds_and_runs_must_be_distinct(raw):
    with pytest.raises(ValueError, match="distinct"):
        runs.seeds_of(TINY, [3, 3])
    with pytest.raises(ValueError, match="the same run"):
        runs.get([TINY, TrainConfig(**TINY.to_dict())], raw, print_fn=None)


@pytest.fixture(scope="module")
def tiny_on_the_pool(raw, pool, tmp_path_factory):
    """TINY's seeds 0, 1 and 2, trained on the tests' two-worker cluster: what other executors must match."""
    os.environ[store.STORE_ENV] = str(tmp_path_factory.mktemp("pool-store"))
    return runs.get(runs.seeds_of(TINY, [0, 1, 2]), raw, scheduler=pool.address, print_fn=None)


@pytest.mark.slow
def test_one_worker_and_two_workers_give_the_same_numbers(raw, fresh, tiny_on_the_pool):
    two = tiny_on_the_pool
    one = runs.get(runs.seeds_of(TINY, [0, 1, 2]), raw, workers=1, print_fn=None)
    assert len({r.trained_on["worker"] for r in two}) == 2 and len({r.trained_on["worker"] for r in one}) == 1
    for a, b in zip(one, two, strict=True):
        assert a.history == b.history
        np.testing.assert_array_equal(a.test_proba, b.test_proba)
        np.testing.assert_array_equal(a.val_proba, b.val_proba)


SLOWER = TrainConfig(epochs=2, n_train=1000, n_test=200)  # a second or two a run, so that the studies overlap
# A second study, in a process of its own, over the same store and seeds, on the same cluster.
STUDY = """
import json, sys
from mnist_report import data, runs
from mnist_report.config import TrainConfig
if __name__ == "__main__":
    done = runs.get(runs.seeds_of(TrainConfig(**CONFIG), [0, 1, 2, 3]), data.load_idx(), scheduler=sys.argv[1],
                    print_fn=None)
    print("RESULT " + json.dumps([[r.seed, r.trained_now, r.test_accuracy] for r in done]))
""".replace("CONFIG", repr(SLOWER.to_dict()))


@pytest.mark.slow
def test_two_concurrent_studies_over_the_same_seeds_train_each_seed_once(raw, fresh, tmp_path, pool):
    seeds = [0, 1, 2, 3]
    script = tmp_path / "study.py"
    script.write_text(STUDY)
    other = subprocess.Popen(
        [sys.executable, str(script), pool.address], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    deadline = time.monotonic() + 120
    while not list((tmp_path / "cache" / "locks").glob("*.lock")) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the other study has locked its first run
    mine = runs.get(runs.seeds_of(SLOWER, seeds), raw, scheduler=pool.address, print_fn=None)
    stdout, _ = other.communicate(timeout=300)
    assert other.returncode == 0
    theirs = json.loads(stdout.split("RESULT ", 1)[1])
    trained = [r.seed for r in mine if r.trained_now] + [seed for seed, now, _ in theirs if now]
    assert sorted(trained) == seeds  # each seed trained by exactly one of the two studies
    assert [r.test_accuracy for r in mine] == [acc for _, _, acc in theirs]


def test_a_scheduler_that_cannot_be_reached_is_named_before_anything_trains(monkeypatch):
    monkeypatch.setattr(fanout, "CONNECT_TIMEOUT_S", 2)
    with pytest.raises(
        ConnectionError,
        match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9 \(from the "
        r"scheduler parameter\)",
    ):
        fanout.start("tcp://127.0.0.1:9")
    monkeypatch.setenv(fanout.SCHEDULER_ENV, "tcp://127.0.0.1:9")
    with pytest.raises(ConnectionError, match=r"at tcp://127\.0\.0\.1:9 \(from the \$MNIST_REPORT_SCHEDULER\)"):
        fanout.start()
    monkeypatch.delenv(fanout.SCHEDULER_ENV)
    with pytest.raises(ValueError, match="workers must be None or an integer >= 1"):
        fanout.start(None, 0)


PROFILER = "distributed.worker.profile.enabled"


@pytest.mark.slow
def test_a_scheduler_and_workers_started_by_hand_train_the_same_numbers(raw, fresh, tmp_path, pool, tiny_on_the_pool):
    """mnist_report/README.md's commands: `dask scheduler` on loopback, `dask worker ADDRESS --nworkers 2
    --nthreads 1` with its distributed.yaml (MALLOC_TRIM_THRESHOLD_ unset), then the runs sent to it."""
    config_dir = tmp_path / "dask-config"
    config_dir.mkdir()
    readme = (PROJECT_ROOT / "mnist_report" / "README.md").read_text()
    (config_dir / "distributed.yaml").write_text(readme.split("```yaml\n", 1)[1].split("```", 1)[0])
    env = {**os.environ, "DASK_CONFIG": str(config_dir)}
    dask_cli = str(Path(sys.executable).parent / "dask")
    info = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                dask_cli,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not info.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        procs.append(
            subprocess.Popen(
                [dask_cli, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                env=env,
                stderr=subprocess.DEVNULL,
            )
        )
        with fanout.start(address) as executor:
            executor.client.wait_for_workers(2, timeout=120)
            names = {str(w["name"]) for w in executor.client.scheduler_info(n_workers=-1)["workers"].values()}
            # these workers run at Dask's defaults, the tests' local cluster with fanout.QUIET: the same numbers
            assert set(executor.client.run(dask.config.get, PROFILER).values()) == {True}
        by_hand = runs.get(runs.seeds_of(TINY, [0, 1]), raw, scheduler=address, print_fn=None)
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
    assert set(pool.client.run(dask.config.get, PROFILER).values()) == {False}
    assert {r.trained_on["worker"].split(" (")[0] for r in by_hand} <= names
    assert all("MALLOC_TRIM_THRESHOLD_" not in r.trained_on["worker"] for r in by_hand)
    for a, b in zip(by_hand, tiny_on_the_pool[:2], strict=True):
        np.testing.assert_array_equal(a.test_proba, b.test_proba)
        assert a.history == b.history
