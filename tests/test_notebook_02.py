"""Notebook 02, executed small: the interval is computed from the stored runs."""

import json

import notebook_checks as checks
import numpy as np
import pytest

NAME = "02-multi-seed-study"


@pytest.mark.slow
def test_it_writes_its_figures_and_metrics(executed):
    checks.figures_and_metrics(*executed(NAME))


@pytest.mark.slow
def test_it_stores_what_its_interval_is_computed_from(executed):
    name, out, out_dir = executed(NAME)
    metrics = json.loads((out_dir / f"{name}.metrics.json").read_text())
    assert metrics["seeds"] == [0, 1] and metrics["data"]["n_test"] == 1000
    # an independent recomputation of the mean and the 95% interval from the stored per-seed accuracies
    acc = np.array([r["accuracy"] for r in metrics["runs"]])
    summary = metrics["accuracy_summary"]
    half = 12.706204736174707 * acc.std(ddof=1) / np.sqrt(2)  # Student t, 97.5%, 1 degree of freedom
    assert summary["mean"] == pytest.approx(acc.mean())
    assert (summary["ci_low"], summary["ci_high"]) == pytest.approx((acc.mean() - half, acc.mean() + half))
    # each stored accuracy is the one its cached run's predictions give
    runs_dir = out_dir / "work" / "cache_dir" / metrics["cache_key"]
    for r in metrics["runs"]:
        with np.load(runs_dir / f"seed-{r['seed']}" / "predictions.npz") as z:
            assert (z["test_proba"].argmax(1) == z["y_test"]).mean() == pytest.approx(r["accuracy"], abs=1e-12)
    assert np.asarray(metrics["summed_confusion_matrix"]).sum() == 2 * 1000
    # the label errors among the first 1,000 test images: image 947 alone; recomputed from the stored runs
    noise = metrics["label_errors"]
    assert (noise["listed"], noise["n_standing"]) == (1, 999)
    wrong_947 = [int(np.load(runs_dir / f"seed-{r['seed']}" / "predictions.npz")["test_proba"][947].argmax() != 8)
                 for r in metrics["runs"]]  # fmt: skip
    assert noise["errors_on_listed_images"] == wrong_947 and noise["wrong_by_all"] == int(all(wrong_947))
    for r, wrong, standing in zip(metrics["runs"], wrong_947, noise["accuracies"], strict=True):
        assert standing == pytest.approx((r["accuracy"] * 1000 - (1 - wrong)) / 999)
    comparison = metrics["precision_comparison"]
    assert comparison["names"] == ["float32", "mixed_bfloat16"] and len(comparison["accuracies"]) == 2
    assert comparison["mean_difference"] == pytest.approx(np.mean(comparison["accuracies"]) - acc.mean())
    assert metrics["hard_core"]["wrong_by_any"] >= metrics["hard_core"]["wrong_by_all"]
    assert set(p.name for p in (out_dir / "figures").glob("*.png")) == {
        f"{name}-{k}.png"
        for k in ("accuracy-by-seed", "confused-pairs", "confusion-matrix-summed", "digit-error-rates",
                  "shared-errors", "hard-core", "reliability")
    }


@pytest.mark.slow
def test_nbval_reruns_it_to_the_same_outputs(executed):  # last: it writes the outputs again
    checks.nbval_reruns_to_the_same_outputs(*executed(NAME))
