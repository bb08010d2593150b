"""Notebook 02, executed small: the interval, the label errors, the cost of holding images out and the
calibration are computed from the stored runs, and a second execution reads them back."""

import notebook_checks as checks
import numpy as np
import pytest

from mnist_report.analysis import study

NAME = "02-multi-seed-study"


@pytest.fixture(scope="module")
def again(executed, tmp_path_factory):
    """The notebook executed a second time, by nbval, with the same parameters, after ``executed``."""
    name, out, _ = executed(NAME)
    return checks.execute_again(name, out, tmp_path_factory.mktemp(f"{NAME}-again"))


@pytest.mark.slow
def test_it_writes_its_figures_and_metrics(executed):
    checks.figures_and_metrics(*executed(NAME))


@pytest.mark.slow
def test_it_stores_what_its_interval_is_computed_from(executed):
    name, out, out_dir = executed(NAME)
    metrics = checks.metrics_of(out_dir, name)
    assert metrics["seeds"] == [0, 1] and metrics["data"]["n_test"] == 1000
    # the claimed setup on all the training images, one run per seed
    assert metrics["config"]["validation_fraction"] == 0.0 and metrics["data"]["n_train"] == 1000
    runs = [checks.record_of(metrics, **metrics["config"], seed=s) for s in metrics["seeds"]]
    assert all(len(r.y_val) == 0 and len(r.y_test) == 1000 for r in runs)
    # an independent recomputation of the mean and the 95% interval from the stored per-seed accuracies
    acc = np.array([r["accuracy"] for r in metrics["runs"]])
    summary = metrics["accuracy_summary"]
    half = 12.706204736174707 * acc.std(ddof=1) / np.sqrt(2)  # Student t, 97.5%, 1 degree of freedom
    assert summary["mean"] == pytest.approx(acc.mean())
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx((acc.mean() - half, acc.mean() + half))
    # each stored accuracy is the one its run record's predictions give
    for row, run in zip(metrics["runs"], runs, strict=True):
        assert row["seed"] == run.seed
        assert (run.test_proba.argmax(1) == run.y_test).mean() == pytest.approx(row["accuracy"], abs=1e-12)
        assert row["train_seconds"] == pytest.approx(run.train_seconds)
    assert np.asarray(metrics["summed_confusion_matrix"]).sum() == 2 * 1000
    # the images every run gets wrong, and those any run gets wrong, recomputed from the records
    counts = study.wrong_counts(runs[0].y_test, np.stack([r.test_pred for r in runs]))
    core = metrics["hard_core"]
    assert (core["wrong_by_all"], core["wrong_by_any"]) == (int(np.sum(counts == 2)), int(np.sum(counts > 0)))
    # the label errors among the first 1,000 test images: image 947 alone; recomputed from the stored runs
    noise = metrics["label_errors"]
    assert (noise["listed"], noise["n_standing"]) == (1, 999)
    wrong_947 = [int(r.test_proba[947].argmax() != 8) for r in runs]
    assert noise["errors_on_listed_images"] == wrong_947 and noise["wrong_by_all"] == int(all(wrong_947))
    for r, wrong, standing in zip(metrics["runs"], wrong_947, noise["accuracies"], strict=True):
        assert standing == pytest.approx((r["accuracy"] * 1000 - (1 - wrong)) / 999)
    assert set(p.name for p in (out_dir / "figures").glob("*.png")) == {
        f"{name}-{k}.png"
        for k in (
            "accuracy-by-seed",
            "confused-pairs",
            "confusion-matrix-summed",
            "digit-error-rates",
            "shared-errors",
            "hard-core",
            "reliability",
        )
    }


@pytest.mark.slow
def test_holding_out_and_calibration_come_from_the_held_out_runs(executed):
    name, out, out_dir = executed(NAME)
    metrics = checks.metrics_of(out_dir, name)
    # the same seeds again, a tenth of the training images held out: paired with the runs on all of them
    held = [
        checks.record_of(metrics, **{**metrics["config"], "validation_fraction": 0.1}, seed=s) for s in metrics["seeds"]
    ]
    assert len(metrics["records"]) == 4 and metrics["data"]["n_held_out"] == 100
    assert all(len(r.y_val) == 100 and len(r.y_test) == 1000 for r in held)
    acc = [r["accuracy"] for r in metrics["runs"]]
    holding_out = metrics["holding_out"]
    assert holding_out["accuracies"] == pytest.approx([r.test_accuracy for r in held], abs=1e-12)
    assert holding_out["names"] == ["1,000 training images", "900 training images"]
    assert holding_out["mean_difference"] == pytest.approx(np.mean(holding_out["accuracies"]) - np.mean(acc))
    # each held-out run's temperature is fitted on its held-out images, never the test images, then applied
    calibration = metrics["calibration"]
    for row, r in zip(calibration["runs"], held, strict=True):
        t = study.fit_temperature(r.y_val, r.val_proba)
        assert row["seed"] == r.seed and row["temperature"] == pytest.approx(t)
        assert row["ece_before"] == pytest.approx(study.expected_calibration_error(r.y_test, r.test_proba))
        after = study.expected_calibration_error(r.y_test, study.apply_temperature(r.test_proba, t))
        assert row["ece_after"] == pytest.approx(after)
    assert calibration["mean_temperature"] == pytest.approx(np.mean([r["temperature"] for r in calibration["runs"]]))


@pytest.mark.slow
def test_a_second_execution_reads_its_runs_from_the_store_and_gives_the_same(executed, again):
    checks.the_same_again(NAME, executed(NAME)[2], again)


@pytest.mark.slow
def test_nbval_reexecutes_it_to_the_same_outputs(again):
    checks.nbval_reruns_to_the_same_outputs(again)
