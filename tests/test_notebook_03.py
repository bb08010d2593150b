"""Notebook 03, executed small: the test set is used once, and its numbers come from its saved models."""

import json

import notebook_checks as checks
import numpy as np
import pytest
from conftest import SMALL

from mnist_report import data
from mnist_report.analysis.evaluate import evaluate
from mnist_report.modeling import train
from mnist_report.modeling.train import predict_proba

NAME = "03-beyond-the-seed"


@pytest.mark.slow
def test_it_writes_its_figures_and_metrics(executed):
    checks.figures_and_metrics(*executed(NAME))


@pytest.mark.slow
def test_it_chooses_on_validation_and_tests_once_at_the_end(executed):
    name, out, out_dir = executed(NAME)
    metrics = json.loads((out_dir / f"{name}.metrics.json").read_text())
    trials = metrics["search"]["trials"]
    assert len(trials) == 2 and trials[0]["val_accuracy"] >= trials[1]["val_accuracy"]
    selected = metrics["search"]["selected"]
    assert {k: selected[k] for k in ("learning_rate", "batch_size", "dropout", "dense_units")} == {
        k: trials[0][k] for k in ("learning_rate", "batch_size", "dropout", "dense_units")}
    # the rule: the highest mean validation accuracy, the first on a tie; TTA only if it raises that mean
    rows, choice = metrics["candidates"]["rows"], metrics["candidates"]["choice"]
    assert [r["candidate"] for r in rows] == ["base", "average and smoothing"]
    best = max(rows, key=lambda r: r["mean"])
    assert choice["candidate"] == best["candidate"] and choice["tta"] == (best["tta_mean"] > best["mean"])
    assert metrics["final"]["config"] == {**metrics["candidates"]["base_config"],
                                          **metrics["candidates"]["options"][choice["candidate"]],
                                          "validation_fraction": 0.0}  # fmt: skip
    # the decisions, in order; the test set is used once, last
    steps = metrics["decisions"]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    assert [s["test_set"] for s in steps] == [False] * (len(steps) - 1) + [True]
    assert steps[1]["decided"] == f"recipe: {choice['candidate']}"


@pytest.mark.slow
def test_its_numbers_come_from_its_saved_networks(executed):
    from mnist_report.analysis import recipe

    name, out, out_dir = executed(NAME)
    metrics = json.loads((out_dir / f"{name}.metrics.json").read_text())
    raw = data.load_idx()
    n_test = SMALL[NAME]["n_test"]
    x, y = data.normalise(raw.x_test[:n_test]), raw.y_test[:n_test]
    run_dir = out_dir / "work" / "run_dir"
    tuned = train.load_model(run_dir / "tuned" / "model.keras")
    assert evaluate(y, predict_proba(tuned, x)).accuracy == metrics["tuned"]["test"]["accuracy"]
    # each final network, loaded from the report's runs/ folder, gives its reported accuracy
    final = metrics["final"]
    probas = []
    for seed, plain, reported in zip(final["seeds"], final["accuracies_as_trained"], final["accuracies"], strict=True):
        model = train.load_model(run_dir / f"final-seed-{seed}" / "model.keras")
        assert evaluate(y, predict_proba(model, x)).accuracy == pytest.approx(plain, abs=1e-9)
        probas.append(recipe.tta_proba(model, x) if final["tta"] else predict_proba(model, x))
        assert evaluate(y, probas[-1]).accuracy == pytest.approx(reported, abs=1e-9)
    assert evaluate(y, np.mean(probas, axis=0)).accuracy == pytest.approx(final["ensemble"]["accuracy"], abs=1e-9)
    # the snapshot ensemble: each saved member, and their mean
    snap = metrics["snapshot"]
    members = [predict_proba(train.load_model(run_dir / "snapshot" / f"snapshot-{i + 1}.keras"), x)
               for i in range(len(snap["snapshot_accuracies"]))]  # fmt: skip
    assert [evaluate(y, p).accuracy for p in members] == pytest.approx(snap["snapshot_accuracies"], abs=1e-9)
    assert evaluate(y, np.mean(members, axis=0)).accuracy == pytest.approx(snap["ensemble_accuracy"], abs=1e-9)
    # McNemar's table for the first seed, recomputed from the two saved networks
    seed = final["seeds"][0]
    base = train.load_model(out_dir / "work" / "cache_dir" / metrics["baseline"]["cache_key"] / f"seed-{seed}"
                            / "model.keras")  # fmt: skip
    base_right = predict_proba(base, x).argmax(1) == y
    final_right = probas[0].argmax(1) == y
    table = [[int(np.sum(base_right & final_right)), int(np.sum(base_right & ~final_right))],
             [int(np.sum(~base_right & final_right)), int(np.sum(~base_right & ~final_right))]]  # fmt: skip
    assert metrics["mcnemar"]["table"] == table
    assert len(metrics["mcnemar_by_seed"]) == 2 and metrics["mcnemar_by_seed"][0] == metrics["mcnemar"]
    assert len(metrics["mcnemar_earlier_better"]) == 2


@pytest.mark.slow
def test_nbval_reruns_it_to_the_same_outputs(executed):  # last: it writes the outputs again
    checks.nbval_reruns_to_the_same_outputs(*executed(NAME))
