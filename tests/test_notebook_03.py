"""Notebook 03, executed small: everything is chosen on validation and the test set is used once, at the
end; its numbers come from its stored runs and shipped networks; a second execution reads them back."""

import notebook_checks as checks
import numpy as np
import pytest
from conftest import SMALL

from mnist_report import data
from mnist_report.analysis import compare, tuning
from mnist_report.analysis.evaluate import evaluate
from mnist_report.config import TrainConfig
from mnist_report.modeling.model import load_model, predict_proba, tta_proba
from mnist_report.paths import shown

NAME = "03-beyond-the-seed"
SEEDS = [0, 1]  # SMALL's n_seeds; the ablation's n_variant_seeds, by default


def accuracy(y, proba) -> float:
    return float(np.mean(np.asarray(proba).argmax(1) == y))


@pytest.fixture(scope="module")
def again(executed, tmp_path_factory):
    """The notebook executed a second time, by nbval, with the same parameters, after ``executed``."""
    name, out, _ = executed(NAME)
    return checks.execute_again(name, out, tmp_path_factory.mktemp(f"{NAME}-again"))


@pytest.mark.slow
def test_it_writes_its_figures_and_metrics(executed):
    name, out, out_dir = executed(NAME)
    checks.figures_and_metrics(name, out, out_dir)
    assert set(p.name for p in (out_dir / "figures").glob("*.png")) == {
        f"{name}-{k}.png"
        for k in (
            "tuning",
            "ablation",
            "recipe-training-curves",
            "accuracy-vs-cost",
            "errors-baseline-network",
            "errors-final-network",
            "errors-ensemble",
        )
    }


@pytest.mark.slow
def test_it_chooses_on_validation_and_tests_once_at_the_end(executed):
    name, out, out_dir = executed(NAME)
    metrics = checks.metrics_of(out_dir, name)
    small = SMALL[NAME]
    # the search: each trial scored on validation, from its record, which never saw the test images
    trials = metrics["search"]["trials"]
    assert len(trials) == 2 and trials[0]["val_accuracy"] >= trials[1]["val_accuracy"]
    base = TrainConfig(validation_fraction=0.1, n_train=small["n_train"], n_test=small["n_test"], seed=0).to_dict()
    for trial in trials:
        hp = {k: trial[k] for k in ("learning_rate", "batch_size", "dropout", "dense_units")}
        run = checks.record_of(metrics, **{**base, **hp, "epochs": small["max_epochs"], "patience": tuning.PATIENCE})
        assert len(run.y_test) == 0 and not (run.path / "predictions.npz").exists()
        assert trial["val_accuracy"] == max(run.history["val_accuracy"])
    selected = metrics["search"]["selected"]
    assert {k: selected[k] for k in ("learning_rate", "batch_size", "dropout", "dense_units")} == {
        k: trials[0][k] for k in ("learning_rate", "batch_size", "dropout", "dense_units")
    }
    assert selected["epochs"] == trials[0]["best_epoch"] and selected["validation_fraction"] == 0.0
    # the ablation: every variant the recipe with its options, the same seeds, scored on validation
    ablation, recipe = metrics["ablation"], metrics["recipe"]
    assert ablation["variants"] == small["variants"] and recipe["architecture"] == "better"
    assert [r["variant"] for r in ablation["rows"]] == list(small["variants"])
    for row in ablation["rows"]:
        runs = [checks.record_of(metrics, **{**recipe, **small["variants"][row["variant"]], "seed": s}) for s in SEEDS]
        assert row["seeds"] == SEEDS and all(len(r.y_val) == ablation["n_val"] == 60 for r in runs)
        assert row["val_accuracy"] == [accuracy(r.y_val, r.val_proba) for r in runs]
        assert row["tta_val_accuracy"] == [accuracy(r.y_val, r.val_tta_proba) for r in runs]
        assert row["mean"] == pytest.approx(np.mean(row["val_accuracy"]))
        assert row["difference"] == pytest.approx(row["mean"] - ablation["rows"][0]["mean"])
    # test-time augmentation: kept only if it raises the full recipe's mean validation accuracy
    first = ablation["rows"][0]
    tta = first["tta_mean"] > first["mean"]
    assert ablation["tta"] == metrics["final"]["tta"] == tta
    # the decisions, in order; the test set is used once, last
    steps = metrics["decisions"]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    assert [s["test_set"] for s in steps] == [False] * (len(steps) - 1) + [True]
    # the history first: the base recipe had been scored on the test set by earlier versions of the report
    assert steps[0]["decided"].startswith("the base recipe") and steps[0]["test_set_in_earlier_versions"]
    # ... and so had the final networks of this recipe (the same runs): the history says so too
    assert next(s for s in steps if s["decided"].startswith("final networks"))["test_set_in_earlier_versions"]
    assert f"test-time augmentation: {'kept' if tta else 'left out'}" in [s["decided"] for s in steps]


@pytest.mark.slow
def test_its_numbers_come_from_its_stored_runs_and_shipped_networks(executed):
    name, out, out_dir = executed(NAME)
    metrics = checks.metrics_of(out_dir, name)
    small = SMALL[NAME]
    raw = data.load_idx()
    n_test = small["n_test"]
    x, y = data.normalise(raw.x_test[:n_test]), raw.y_test[:n_test]
    tuned = checks.record_of(metrics, **metrics["search"]["selected"])
    assert evaluate(y, tuned.test_proba).accuracy == metrics["tuned"]["test"]["accuracy"]
    # each final network: the recipe on all the training images, its network kept in its record
    final, tta = metrics["final"], metrics["final"]["tta"]
    assert final["seeds"] == SEEDS
    finals = [checks.record_of(metrics, **{**metrics["recipe"], "validation_fraction": 0.0, "seed": s}) for s in SEEDS]
    assert final["model_paths"] == [shown(r.model_path) for r in finals]
    probas = []
    for run, plain, reported in zip(finals, final["accuracies_as_trained"], final["accuracies"], strict=True):
        np.testing.assert_array_equal(run.y_test, y)
        model = load_model(run.model_path)  # loaded from its record, it gives its reported accuracy
        assert evaluate(y, predict_proba(model, x)).accuracy == pytest.approx(plain, abs=1e-9)
        # the test-time augmented probabilities its record holds are the shipped network's
        np.testing.assert_allclose(run.test_tta_proba, tta_proba(model, x), atol=1e-6)
        probas.append(run.test_tta_proba if tta else run.test_proba)
        assert accuracy(y, probas[-1]) == pytest.approx(reported, abs=1e-9)
    ensemble = compare.ensemble(probas)
    assert evaluate(y, ensemble).accuracy == pytest.approx(final["ensemble"]["accuracy"], abs=1e-9)
    assert metrics["cost"]["ensemble_curves"]["better network"] == pytest.approx(
        [accuracy(y, probas[0]), final["ensemble"]["accuracy"]], abs=1e-9
    )
    # the snapshot ensemble: each snapshot's predictions, stored with its run, and their mean
    snap = metrics["snapshot"]
    snapshot = checks.record_of(metrics, **snap["config"])
    assert snap["config"]["cycles"] == small["snapshot_cycles"] == len(snapshot.snapshot_test_proba)
    members = list(snapshot.snapshot_test_proba.astype(np.float64))
    assert [accuracy(y, p) for p in members] == pytest.approx(snap["snapshot_accuracies"], abs=1e-9)
    assert accuracy(y, compare.ensemble(members)) == pytest.approx(snap["ensemble_accuracy"], abs=1e-9)
    # McNemar's table for the first seed, recomputed from the baseline network's run and the final network's
    baseline = [
        checks.record_of(
            metrics, **TrainConfig(validation_fraction=0.0, n_train=small["n_train"], n_test=n_test, seed=s).to_dict()
        )
        for s in SEEDS
    ]
    assert metrics["baseline"]["accuracies"] == [b.test_accuracy for b in baseline]
    base_right = baseline[0].test_pred == y
    final_right = probas[0].argmax(1) == y
    table = [
        [int(np.sum(base_right & final_right)), int(np.sum(base_right & ~final_right))],
        [int(np.sum(~base_right & final_right)), int(np.sum(~base_right & ~final_right))],
    ]
    assert metrics["mcnemar"]["table"] == table
    assert len(metrics["mcnemar_by_seed"]) == 2 and metrics["mcnemar_by_seed"][0] == metrics["mcnemar"]
    assert len(metrics["mcnemar_earlier_better"]) == 2
    # against the earlier better network (an ablation variant, seed 0) the final network counts as trained
    earlier = checks.record_of(metrics, **{**metrics["recipe"], "ema_momentum": 0.0, "label_smoothing": 0.0, "seed": 0})
    m = metrics["mcnemar_earlier_better"][0]
    assert m["a_only"] == int(np.sum((earlier.test_pred == y) & (finals[0].test_pred != y)))
    assert m["b_only"] == int(np.sum((earlier.test_pred != y) & (finals[0].test_pred == y)))


@pytest.mark.slow
def test_a_second_execution_reads_its_runs_from_the_store_and_gives_the_same(executed, again):
    checks.the_same_again(NAME, executed(NAME)[2], again)


@pytest.mark.slow
def test_nbval_reexecutes_it_to_the_same_outputs(again):
    checks.nbval_reruns_to_the_same_outputs(again)
