"""Cached seed runs: trained once, read back unchanged, never reused across configurations or code."""

import json

import numpy as np
import pytest

from mnist_report import runs
from mnist_report.config import TrainConfig

TINY = TrainConfig(epochs=1, n_train=300, n_test=100, validation_fraction=0.2)


def test_a_run_is_trained_once_then_read_back(raw, tmp_path):
    lines = []
    first = runs.run_seeds(TINY, [0, 1], raw, tmp_path, print_fn=lines.append)
    assert [r.cached for r in first] == [False, False]
    assert len(lines) == 3 and "2/2" in lines[-1] and "seed   1" in lines[-1]
    assert first[0].val_proba.shape == (60, 10) and first[0].test_proba.shape == (100, 10)
    again = runs.run_seeds(TINY, [0, 1], raw, tmp_path, print_fn=None)
    assert [r.cached for r in again] == [True, True]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.test_proba, b.test_proba)
        assert a.history == b.history and a.test_accuracy == b.test_accuracy
    meta = json.loads((first[1].path / "run.json").read_text())
    assert meta["config"] == {**TINY.to_dict(), "seed": 1}
    assert (first[1].path / "model.keras").is_file()


def test_a_retrained_run_gives_the_same_predictions(raw, tmp_path):
    first = runs.run_seed(TINY, raw, tmp_path / "a")
    second = runs.run_seed(TINY, raw, tmp_path / "b")
    assert not first.cached and not second.cached
    np.testing.assert_array_equal(first.test_proba, second.test_proba)


def test_the_key_changes_with_the_configuration_the_code_and_the_data(raw, monkeypatch):
    key = runs.cache_key(TINY, raw)
    assert runs.cache_key(TrainConfig(**{**TINY.to_dict(), "seed": 7}), raw) == key  # seeds share a key
    assert runs.cache_key(TrainConfig(**{**TINY.to_dict(), "dropout": 0.4}), raw) != key
    assert runs.cache_key(TrainConfig(**{**TINY.to_dict(), "precision": "mixed_bfloat16"}), raw) != key
    other = type(raw)(**{**raw.__dict__, "y_test": raw.y_test[::-1].copy()})
    assert runs.cache_key(TINY, other) != key
    monkeypatch.setattr(runs, "code_version", lambda: "edited")
    assert runs.cache_key(TINY, raw) != key


def test_an_unfinished_or_damaged_run_is_trained_again(raw, tmp_path, capsys):
    run = runs.run_seed(TINY, raw, tmp_path)
    (run.path / "run.json").unlink()  # interrupted before its last file was written
    assert not runs.run_seed(TINY, raw, tmp_path).cached
    (run.path / "predictions.npz").write_bytes(b"not an npz")
    again = runs.run_seed(TINY, raw, tmp_path)
    assert not again.cached and "unreadable" in capsys.readouterr().out
    np.testing.assert_array_equal(again.test_proba, run.test_proba)


def test_seeds_must_be_distinct(raw, tmp_path):
    with pytest.raises(ValueError, match="distinct"):
        runs.run_seeds(TINY, [3, 3], raw, tmp_path)


def test_the_source_hash_covers_every_training_module_but_not_its_comments(tmp_path):
    import shutil

    base = runs.source_hash()
    for name in runs.TRAINING_CODE:
        copy = tmp_path / name.removesuffix(".py")
        shutil.copytree(runs.PACKAGE_DIR, copy)
        source = (copy / name).read_text()
        (copy / name).write_text(source + "\n\n# a comment\n")
        assert runs.source_hash(copy) == base, name
        (copy / name).write_text(source + "\nEDITED = 1\n")
        assert runs.source_hash(copy) != base, name
    assert runs.source_hash(runs.PACKAGE_DIR) == base


def test_a_stored_run_of_another_configuration_is_not_read_back(raw, tmp_path, capsys):
    run = runs.run_seed(TINY, raw, tmp_path)
    meta = json.loads((run.path / "run.json").read_text())
    (run.path / "run.json").write_text(json.dumps({**meta, "config": {**meta["config"], "dropout": 0.3}}))
    again = runs.run_seed(TINY, raw, tmp_path)
    assert not again.cached and "another key or configuration" in capsys.readouterr().out
