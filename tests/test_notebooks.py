"""Every notebook, executed headlessly by papermill with small parameters, then re-checked by nbval.

nbval re-executes the small executed copy (it keeps papermill's injected parameters) and compares
its outputs with papermill's: the numbers must be the same on a second run (determinism), with
only timings and addresses sanitised (tests/nbval_sanitize.cfg).
"""

import json
import os
import shutil
import subprocess
import sys

import nbformat
import numpy as np
import pytest
from conftest import SMALL

from mnist_report import data, predict, train
from mnist_report.evaluate import evaluate
from mnist_report.paths import PROJECT_ROOT
from mnist_report.train import predict_proba

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9]*.ipynb"))
SANITIZE = PROJECT_ROOT / "tests" / "nbval_sanitize.cfg"
# The small parameters (SMALL), the shared executions (the ``executed`` fixture): tests/conftest.py.


def test_every_notebook_has_small_parameters():
    assert NOTEBOOKS and {p.stem for p in NOTEBOOKS} == set(SMALL)


# Each notebook's tests run in one pytest-xdist worker (make test runs with --dist loadgroup), so that
# each notebook is executed once.
EACH = [pytest.param(p.stem, id=p.stem, marks=pytest.mark.xdist_group(p.stem)) for p in NOTEBOOKS]


@pytest.mark.slow
@pytest.mark.parametrize("name", EACH)
def test_notebook_writes_its_figures_and_metrics(executed, name):
    name, out, out_dir = executed(name)
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "\r" not in text  # one line per epoch, no carriage-return progress bar
    metrics = json.loads((out_dir / f"{name}.metrics.json").read_text())
    assert metrics["notebook"] == name
    # the executor the runs were trained on: a local cluster, one TensorFlow thread per run
    assert metrics["executor"]["threads_per_run"] == 1 and metrics["executor"]["workers"] >= 1
    figures = sorted(p.name for p in (out_dir / "figures").glob("*.png"))
    assert figures and all(p.startswith(name) for p in figures)


@pytest.mark.slow
@pytest.mark.xdist_group("01-seed-reproduction")
def test_seed_notebook_numbers_come_from_its_model(executed):
    name, out, out_dir = executed("01-seed-reproduction")
    metrics = json.loads((out_dir / f"{name}.metrics.json").read_text())
    assert metrics["config"]["epochs"] == 1 and metrics["data"]["n_test"] == 1000
    assert metrics["parameters"] == 225_034
    # an independent evaluation of the saved model gives the reported accuracy and confusion matrix
    model = train.load_model(out_dir / "work" / "run_dir" / "model.keras")
    # the saved config describes the model saved: trained on every training image, none held out
    saved = json.loads((out_dir / "work" / "run_dir" / "config.json").read_text())
    assert saved == metrics["final_config"] and saved["validation_fraction"] == 0.0 and saved["n_train"] == 2000
    assert metrics["data"]["n_train_final"] == 2000
    raw = data.load_idx()
    ev = evaluate(raw.y_test[:1000], predict_proba(model, data.normalise(raw.x_test[:1000])))
    assert ev.accuracy == metrics["test"]["accuracy"]
    np.testing.assert_array_equal(ev.confusion, metrics["test"]["confusion_matrix"])
    assert metrics["claims"]["accuracy"] == ev.accuracy
    assert set(p.name for p in (out_dir / "figures").glob("*.png")) == {
        f"{name}-{k}.png"
        for k in ("samples", "training-curves", "confusion-matrix", "per-class", "confused-pairs", "errors",
                  "own-digits")
    }
    # the font-digit rate, recomputed through the command line's own path (image file -> prediction)
    fonts = metrics["font_digits"]
    pages, labels, _ = predict.font_digits()
    got = predict_proba(model, np.stack([predict.to_mnist(p) for p in pages])).argmax(1)
    assert fonts["n"] == 60 and fonts["recognised"] == int((got == labels).sum())
    assert sum(fonts["by_font"].values()) == fonts["recognised"] and len(fonts["by_font"]) == 6
    # the verdict printed in the notebook is the one computed from the numbers
    nb = nbformat.read(out, as_version=4)
    shown = [o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if "text/markdown" in o.get("data", {})]
    assert any(metrics["claims"]["accuracy_verdict"] in s for s in shown)


@pytest.mark.slow
@pytest.mark.xdist_group("02-multi-seed-study")
def test_study_notebook_stores_what_its_interval_is_computed_from(executed):
    name, out, out_dir = executed("02-multi-seed-study")
    metrics = json.loads((out_dir / f"{name}.metrics.json").read_text())
    assert metrics["seeds"] == [0, 1] and metrics["data"]["n_test"] == 500
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
    assert np.asarray(metrics["summed_confusion_matrix"]).sum() == 2 * 500
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
@pytest.mark.xdist_group("03-beyond-the-seed")
def test_beyond_notebook_tests_once_and_its_numbers_come_from_its_models(executed):
    name, out, out_dir = executed("03-beyond-the-seed")
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
@pytest.mark.parametrize("name", EACH)
def test_nbval_reruns_the_executed_notebook_to_the_same_outputs(executed, name):
    _, out, out_dir = executed(name)
    # so that nbval trains again rather than reading cached runs (this test comes after the others that
    # read work/: pytest keeps the order of a module, and xdist keeps a group on one worker)
    shutil.rmtree(out_dir / "work")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(SANITIZE), "--rootdir", str(out.parent), str(out)],
        capture_output=True, text=True, cwd=PROJECT_ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout
