"""Notebook 03, executed small: the test set is used once, and its numbers come from its saved models."""

import json

import notebook_checks as checks
import numpy as np
import pytest

from mnist_report import data, train
from mnist_report.evaluate import evaluate
from mnist_report.train import predict_proba

NAME = "03-beyond-the-seed"


@pytest.mark.slow
def test_it_writes_its_figures_and_metrics(executed):
    checks.figures_and_metrics(*executed(NAME))


@pytest.mark.slow
def test_it_tests_once_and_its_numbers_come_from_its_models(executed):
    name, out, out_dir = executed(NAME)
    metrics = json.loads((out_dir / f"{name}.metrics.json").read_text())
    trials = metrics["search"]["trials"]
    assert len(trials) == 2 and trials[0]["val_accuracy"] >= trials[1]["val_accuracy"]
    selected = metrics["search"]["selected"]
    assert {k: selected[k] for k in ("learning_rate", "batch_size", "dropout", "dense_units")} == {
        k: trials[0][k] for k in ("learning_rate", "batch_size", "dropout", "dense_units")}
    # the tuned model, evaluated independently, gives the reported accuracy
    raw = data.load_idx()
    x, y = data.normalise(raw.x_test[:500]), raw.y_test[:500]
    tuned = train.load_model(out_dir / "work" / "run_dir" / "tuned" / "model.keras")
    assert evaluate(y, predict_proba(tuned, x)).accuracy == metrics["tuned"]["test"]["accuracy"]
    # each better run's saved model gives its stored accuracy; the ensemble and McNemar follow from them
    better_dir = out_dir / "work" / "cache_dir" / metrics["better"]["cache_key"]
    probas = []
    for seed, acc in zip(metrics["better"]["seeds"], metrics["better"]["accuracies"], strict=True):
        model = train.load_model(better_dir / f"seed-{seed}" / "model.keras")
        probas.append(predict_proba(model, x))
        assert evaluate(y, probas[-1]).accuracy == pytest.approx(acc, abs=1e-9)
    assert evaluate(y, np.mean(probas, axis=0)).accuracy == metrics["better"]["ensemble"]["accuracy"]
    # McNemar's table for the first seed, recomputed from the two saved models
    seed = metrics["better"]["seeds"][0]
    base = train.load_model(out_dir / "work" / "cache_dir" / metrics["baseline"]["cache_key"] / f"seed-{seed}"
                            / "model.keras")  # fmt: skip
    base_right = predict_proba(base, x).argmax(1) == y
    better_right = probas[0].argmax(1) == y
    table = [[int(np.sum(base_right & better_right)), int(np.sum(base_right & ~better_right))],
             [int(np.sum(~base_right & better_right)), int(np.sum(~base_right & ~better_right))]]  # fmt: skip
    assert metrics["mcnemar"]["table"] == table
    assert len(metrics["mcnemar_by_seed"]) == 2 and metrics["mcnemar_by_seed"][0] == metrics["mcnemar"]


@pytest.mark.slow
def test_nbval_reruns_it_to_the_same_outputs(executed):  # last: it removes the cached runs
    checks.nbval_reruns_to_the_same_outputs(*executed(NAME))
