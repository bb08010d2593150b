"""Cached runs, trained on the executor's workers: trained once, read back unchanged, never reused
across configurations or code, the same numbers whatever the number of workers, one training per
run even when two studies ask for it at once."""

import json
import os
import shutil
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

TINY = TrainConfig(epochs=1, n_train=300, n_test=100, validation_fraction=0.2)


@pytest.mark.slow
def test_a_run_is_trained_once_then_read_back(raw, tmp_path, pool):
    lines = []
    first = runs.run_seeds(TINY, [0, 1], raw, tmp_path, pool, print_fn=lines.append)
    assert [r.cached for r in first] == [False, False]
    assert len(lines) == 3 and "training 2 on 2 workers" in lines[0]
    assert any("2/2" in line for line in lines) and all("on worker" in line for line in lines[1:])
    assert first[0].val_proba.shape == (60, 10) and first[0].test_proba.shape == (100, 10)
    again = runs.run_seeds(TINY, [0, 1], raw, tmp_path, pool, print_fn=None)
    assert [r.cached for r in again] == [True, True]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.test_proba, b.test_proba)
        assert a.history == b.history and a.test_accuracy == b.test_accuracy
    meta = json.loads((first[1].path / "run.json").read_text())
    assert meta["config"] == {**TINY.to_dict(), "seed": 1} and meta["threads"] == 1
    assert (first[1].path / "model.keras").is_file() and not (first[1].path / "backup").exists()


@pytest.mark.slow
def test_the_snapshots_of_a_cyclic_run_are_stored_and_read_back(raw, tmp_path, pool):
    config = TrainConfig(architecture="better", epochs=2, cycles=2, n_train=300, n_test=100, validation_fraction=0.2,
                         dense_units=16, conv_width=4, seed=0)  # fmt: skip
    (trained,) = runs.run_many([config], raw, tmp_path, pool, print_fn=None)
    (cached,) = runs.run_many([config], raw, tmp_path, pool, print_fn=None)
    assert not trained.cached and cached.cached
    assert trained.key == cached.key == runs.cache_key(config, raw) and cached.path.parent.name == cached.key
    assert cached.snapshot_val_proba.shape == (2, 60, 10) and cached.snapshot_test_proba.shape == (2, 100, 10)
    np.testing.assert_array_equal(cached.snapshot_test_proba, trained.snapshot_test_proba)
    np.testing.assert_array_equal(cached.snapshot_test_proba[-1], cached.test_proba)  # the last is the final network
    assert not np.array_equal(cached.snapshot_test_proba[0], cached.test_proba)
    from mnist_report.modeling.train import load_model, predict_proba

    x_test = data.normalise(raw.x_test[:100])
    for path, proba in zip(cached.snapshot_paths, cached.snapshot_test_proba, strict=True):  # each member, saved
        np.testing.assert_allclose(predict_proba(load_model(path), x_test), proba, atol=1e-6)
    plain = runs.run_seed(TINY, raw, tmp_path, pool)
    assert plain.snapshot_test_proba.shape == (0, 100, 10)
    # exported into the report's runs/ folder: what its config.json describes, nothing left of an earlier export
    out = tmp_path / "runs" / "snapshot"
    runs.export(cached, out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "history.json", "model.keras", "snapshot-1.keras",
                                                     "snapshot-2.keras"]  # fmt: skip
    runs.export(plain, out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "history.json", "model.keras"]
    assert json.loads((out / "config.json").read_text()) == TINY.to_dict()


@pytest.fixture(scope="module")
def tiny_on_the_pool(raw, pool, tmp_path_factory):
    """TINY's seeds 0, 1 and 2, trained on the tests' two-worker cluster: what other executors must match."""
    return runs.run_seeds(TINY, [0, 1, 2], raw, tmp_path_factory.mktemp("tiny"), pool, print_fn=None)


@pytest.mark.slow
def test_one_worker_and_two_workers_give_the_same_numbers(raw, tmp_path, tiny_on_the_pool):
    two = tiny_on_the_pool
    with fanout.start(workers=1) as one_worker:
        one = runs.run_seeds(TINY, [0, 1, 2], raw, tmp_path / "one", one_worker, print_fn=None)
    assert len({r.worker for r in two}) == 2 and len({r.worker for r in one}) == 1
    for a, b in zip(one, two, strict=True):
        assert a.test_accuracy == b.test_accuracy and a.history == b.history
        np.testing.assert_array_equal(a.test_proba, b.test_proba)
        np.testing.assert_array_equal(a.val_proba, b.val_proba)


SLOWER = TrainConfig(epochs=2, n_train=1000, n_test=200)  # a second or two a run, so that the studies overlap
# A second study, in a process of its own, over the same cache and seeds, on the same cluster (a cluster of
# its own would decide nothing here, and start two processes that import TensorFlow).
STUDY = """
import json, sys
from mnist_report import data, runs
from mnist_report.runs import executor as fanout
from mnist_report.config import TrainConfig
if __name__ == "__main__":
    with fanout.start(sys.argv[2]) as executor:
        done = runs.run_seeds(TrainConfig(**CONFIG), [0, 1, 2, 3], data.load_idx(), sys.argv[1], executor, None)
    print("RESULT " + json.dumps([[r.seed, r.cached, r.test_accuracy] for r in done]))
""".replace("CONFIG", repr(SLOWER.to_dict()))


@pytest.mark.slow
def test_two_concurrent_studies_over_the_same_seeds_train_each_seed_once(raw, tmp_path, pool):
    seeds = [0, 1, 2, 3]
    script = tmp_path / "study.py"
    script.write_text(STUDY)
    other = subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), pool.address],
                             stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list((tmp_path / "cache").glob("*/seed-*.lock")) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the other study has locked its first run
    mine = runs.run_seeds(SLOWER, seeds, raw, tmp_path / "cache", pool, print_fn=None)
    stdout, _ = other.communicate(timeout=300)
    assert other.returncode == 0
    theirs = json.loads(stdout.split("RESULT ", 1)[1])
    trained = [r.seed for r in mine if not r.cached] + [seed for seed, cached, _ in theirs if not cached]
    assert sorted(trained) == seeds  # each seed trained by exactly one of the two studies
    assert any(not cached for _, cached, _ in theirs) and any(not r.cached for r in mine)  # both trained some
    assert [r.test_accuracy for r in mine] == [acc for _, _, acc in theirs]


def test_a_scheduler_that_cannot_be_reached_is_named_before_anything_trains(monkeypatch):
    monkeypatch.setattr(fanout, "CONNECT_TIMEOUT_S", 2)
    with pytest.raises(ConnectionError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9 \(from the "
                                              r"scheduler parameter\)"):  # fmt: skip
        fanout.start("tcp://127.0.0.1:9")
    monkeypatch.setenv(fanout.SCHEDULER_ENV, "tcp://127.0.0.1:9")
    with pytest.raises(ConnectionError, match=r"at tcp://127\.0\.0\.1:9 \(from the \$MNIST_REPORT_SCHEDULER\)"):
        fanout.start()
    monkeypatch.delenv(fanout.SCHEDULER_ENV)
    with pytest.raises(ValueError, match="workers must be None or an integer >= 1"):
        fanout.start(None, 0)


def test_workers_of_other_code_or_another_machine_are_refused():
    class Client:  # a cluster's answers to client.run: one worker from another checkout or machine
        def run(self, function, on_error):
            assert function() == runs.code_version() and on_error == "return"  # a worker answers its code_version
            return {"tcp://10.0.0.1:40000": runs.code_version(), "tcp://10.0.0.2:40000": "another",
                    "tcp://10.0.0.3:40000": AttributeError("module 'mnist_report.runs' has no attribute")}

    executor = fanout.Executor(client=Client(), cluster=None, address="tcp://10.0.0.1:8786")
    workers = r"2 of the 3 Dask workers \(tcp://10\.0\.0\.2:40000, tcp://10\.0\.0\.3:40000\) run other"
    with pytest.raises(RuntimeError, match=workers):
        runs.check_workers(executor)  # run_many calls it before it submits a run


def test_the_key_changes_with_the_configuration_the_code_and_the_data(raw, monkeypatch):
    key = runs.cache_key(TINY, raw)
    assert runs.cache_key(TrainConfig(**{**TINY.to_dict(), "seed": 7}), raw) == key  # seeds share a key
    assert runs.cache_key(TrainConfig(**{**TINY.to_dict(), "dropout": 0.4}), raw) != key
    assert runs.cache_key(TrainConfig(**{**TINY.to_dict(), "precision": "mixed_bfloat16"}), raw) != key
    assert runs.cache_key(TrainConfig(**{**TINY.to_dict(), "threads": 2}), raw) != key
    assert runs.cache_key(TINY, raw, test=False) != key
    other = type(raw)(**{**raw.__dict__, "y_test": raw.y_test[::-1].copy()})
    assert runs.cache_key(TINY, other) != key
    monkeypatch.setattr(runs, "code_version", lambda: "edited")
    assert runs.cache_key(TINY, raw) != key


@pytest.mark.slow
def test_an_unfinished_or_damaged_run_is_trained_again(raw, tmp_path, pool, capsys):
    run = runs.run_seed(TINY, raw, tmp_path, pool)
    (run.path / "run.json").unlink()  # interrupted before its last file was written
    assert not runs.run_seed(TINY, raw, tmp_path, pool).cached
    (run.path / "predictions.npz").write_bytes(b"not an npz")
    again = runs.run_seed(TINY, raw, tmp_path, pool)
    assert not again.cached and "unreadable" in capsys.readouterr().out
    np.testing.assert_array_equal(again.test_proba, run.test_proba)


def test_seeds_must_be_distinct(raw, tmp_path):
    with pytest.raises(ValueError, match="distinct"):
        runs.run_seeds(TINY, [3, 3], raw, tmp_path, executor=None)


# Prose in a training module (docstrings, comments) leaves the key alone; code does not.
PROSE_EDITS = [
    lambda s: s + "\n\n# a comment\n",
    lambda s: s.replace('"""', '"""Reworded. ', 1),  # the module's docstring
]
CODE_EDITS = [lambda s: s + "\nEDITED = 1\n"]


def test_the_source_hash_covers_the_training_code_but_not_its_prose(tmp_path):
    base = runs.source_hash()
    for name in runs.TRAINING_CODE:
        copy = tmp_path / name.removesuffix(".py")
        shutil.copytree(runs.PACKAGE_DIR, copy)
        source = (copy / name).read_text()
        for edit in PROSE_EDITS:
            (copy / name).write_text(edit(source))
            assert runs.source_hash(copy) == base, name
        for edit in CODE_EDITS:
            (copy / name).write_text(edit(source))
            assert runs.source_hash(copy) != base, name
        shutil.rmtree(copy)
    assert runs.source_hash(runs.PACKAGE_DIR) == base


def test_a_function_docstring_is_prose_and_a_layer_width_is_code(tmp_path):
    shutil.copytree(runs.PACKAGE_DIR, tmp_path / "p")
    model = tmp_path / "p" / "model.py"
    source = model.read_text()
    base = runs.source_hash(tmp_path / "p")
    model.write_text(source.replace('    """', '    """A reworded docstring. ', 1))
    assert runs.source_hash(tmp_path / "p") == base
    assert "Conv2D(32, kernel_size=(3, 3)" in source
    model.write_text(source.replace("Conv2D(32, kernel_size=(3, 3)", "Conv2D(31, kernel_size=(3, 3)"))  # a layer width
    assert runs.source_hash(tmp_path / "p") != base
    train = tmp_path / "p" / "train.py"
    model.write_text(source)
    train.write_text(train.read_text().replace("floor: float = 0.01", "floor: float = 0.02"))  # the lr schedule
    assert runs.source_hash(tmp_path / "p") != base
    # a message reworded (a warning, an exception's) is prose too; the exception's type is code
    source = (runs.PACKAGE_DIR / "train.py").read_text()
    for old, new in [("training from the start\", stacklevel", "starting over\", stacklevel"),
                     ("cannot be restored ({why})", "is unusable: {why}")]:
        assert old in source
        train.write_text(source.replace(old, new))
        assert runs.source_hash(tmp_path / "p") == base, new
    train.write_text(source.replace("raise BackupError(f\"the backup", "raise OSError(f\"the backup"))
    assert runs.source_hash(tmp_path / "p") != base
    train.write_text(source.replace("start\", stacklevel=2", "start\", stacklevel=3"))
    assert runs.source_hash(tmp_path / "p") != base  # not text: an argument
    train.write_text(source)
    # modules that hold the report's prose and statistics are not training code
    (tmp_path / "p" / "evaluate.py").write_text("REWORDED = 'the claim holds'\n")
    (tmp_path / "p" / "runs.py").write_text("REWORDED = 'a progress line'\n")
    train.write_text((runs.PACKAGE_DIR / "train.py").read_text())
    assert runs.source_hash(tmp_path / "p") == base


def test_code_shown_to_give_the_same_numbers_keeps_the_earlier_key_and_an_edit_after_it_does_not(tmp_path,
                                                                                                monkeypatch):
    shutil.copytree(runs.PACKAGE_DIR, tmp_path / "p")
    now = runs.source_hash(tmp_path / "p")
    chain = [now]
    while chain[-1] in runs.SAME_NUMBERS_AS:
        chain.append(runs.SAME_NUMBERS_AS[chain[-1]])
    # every entry leads from the code of this tree to the key its cached runs have; a stale one is removed
    assert set(runs.SAME_NUMBERS_AS) <= set(chain[:-1]), "SAME_NUMBERS_AS names code that is not this tree's"
    assert runs.training_code_hash(tmp_path / "p") == runs._SOURCE_HASH == chain[-1]
    train = tmp_path / "p" / "train.py"
    train.write_text(train.read_text().replace("floor: float = 0.01", "floor: float = 0.02"))
    edited = runs.source_hash(tmp_path / "p")
    assert runs.training_code_hash(tmp_path / "p") == edited not in chain
    # entries are followed one after another (a loop ends)
    monkeypatch.setattr(runs, "SAME_NUMBERS_AS", {edited: "b", "b": "c"})
    assert runs.training_code_hash(tmp_path / "p") == "c"
    monkeypatch.setattr(runs, "SAME_NUMBERS_AS", {edited: "b", "b": edited})
    assert runs.training_code_hash(tmp_path / "p") in {edited, "b"}


@pytest.mark.slow
def test_a_stored_run_of_another_configuration_is_not_read_back(raw, tmp_path, pool, capsys):
    run = runs.run_seed(TINY, raw, tmp_path, pool)
    meta = json.loads((run.path / "run.json").read_text())
    (run.path / "run.json").write_text(json.dumps({**meta, "config": {**meta["config"], "dropout": 0.3}}))
    again = runs.run_seed(TINY, raw, tmp_path, pool)
    assert not again.cached and "another key or configuration" in capsys.readouterr().out


PROFILER = "distributed.worker.profile.enabled"


@pytest.mark.slow
def test_a_scheduler_and_workers_started_by_hand_train_the_same_numbers(raw, tmp_path, pool, tiny_on_the_pool):
    """mnist_report/README.md's commands: `dask scheduler`, `dask worker ADDRESS --nworkers 2 --nthreads 1`
    with its distributed.yaml (MALLOC_TRIM_THRESHOLD_ unset), then the notebook's executor pointed at it."""
    config_dir = tmp_path / "dask-config"
    config_dir.mkdir()
    readme = (PROJECT_ROOT / "mnist_report" / "README.md").read_text()
    (config_dir / "distributed.yaml").write_text(readme.split("```yaml\n", 1)[1].split("```", 1)[0])
    env = {**os.environ, "DASK_CONFIG": str(config_dir)}
    dask_cli = str(Path(sys.executable).parent / "dask")
    info = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(info)], env=env, stderr=subprocess.DEVNULL)]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not info.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        procs.append(subprocess.Popen([dask_cli, "worker", address, "--nworkers", "2", "--nthreads", "1",
                                       "--no-dashboard"], env=env, stderr=subprocess.DEVNULL))  # fmt: skip
        lines = []
        with fanout.start(address) as executor:
            executor.client.wait_for_workers(2, timeout=120)
            assert executor.describe() == f"2 workers on the scheduler at {address}"
            names = {str(w["name"]) for w in executor.client.scheduler_info(n_workers=-1)["workers"].values()}
            # these workers run at Dask's defaults, the tests' local cluster with fanout.QUIET: the same numbers
            assert set(executor.client.run(dask.config.get, PROFILER).values()) == {True}
            by_hand = runs.run_seeds(TINY, [0, 1], raw, tmp_path / "by-hand", executor, print_fn=lines.append)
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
    local = tiny_on_the_pool[:2]
    assert set(pool.client.run(dask.config.get, PROFILER).values()) == {False}
    # trained there ("ADDRESS (host)"), and without MALLOC_TRIM_THRESHOLD_ (the README's YAML unset it)
    assert {r.worker.split(" (")[0] for r in by_hand} <= names
    assert len(lines) == 3 and all("MALLOC_TRIM_THRESHOLD_" not in line for line in lines)
    for a, b in zip(by_hand, local, strict=True):
        np.testing.assert_array_equal(a.test_proba, b.test_proba)
        assert a.history == b.history
