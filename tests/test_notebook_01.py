"""Notebook 01, executed small: its numbers come from the model its run record ships, a second execution
reads its runs back and trains nothing, and it reproduces identically from nothing."""

import json
import shutil

import nbformat
import notebook_checks as checks
import numpy as np
import pytest
from conftest import SMALL

from mnist_report import data, predict
from mnist_report.analysis.evaluate import evaluate
from mnist_report.modeling.model import load_model, predict_proba
from mnist_report.paths import shown
from mnist_report.reporting import reproduce
from mnist_report.runs import executor

NAME = "01-seed-reproduction"


@pytest.fixture(scope="module")
def again(executed, tmp_path_factory):
    """The notebook executed a second time, by nbval, with the same parameters, after ``executed``."""
    name, out, _ = executed(NAME)
    return checks.execute_again(name, out, tmp_path_factory.mktemp(f"{NAME}-again"))


@pytest.mark.slow
def test_it_writes_its_figures_and_metrics(executed):
    checks.figures_and_metrics(*executed(NAME))


@pytest.mark.slow
def test_its_numbers_come_from_the_model_its_run_record_ships(executed):
    name, out, out_dir = executed(NAME)
    metrics = checks.metrics_of(out_dir, name)
    assert metrics["config"]["epochs"] == 1 and metrics["data"]["n_test"] == 1000
    assert metrics["parameters"] == 225_034
    # two runs: the monitoring run (a tenth held out) and the final model, on every training image
    assert metrics["final_config"] == {**metrics["config"], "validation_fraction": 0.0}
    assert metrics["final_config"]["n_train"] == 2000 and metrics["data"]["n_train_final"] == 2000
    assert len(metrics["records"]) == 2
    monitor = checks.record_of(metrics, **metrics["config"])
    final = checks.record_of(metrics, **metrics["final_config"])
    assert metrics["history"] == monitor.history and metrics["final_history"] == final.history
    assert metrics["train_seconds"] == pytest.approx(final.train_seconds) and metrics["trained_on"] == final.trained_on
    # the shipped network is the final model's, kept in its record (checksummed); the monitoring run keeps none
    assert metrics["model_path"] == shown(final.model_path) and final.model_path.is_file()
    assert not monitor.model_path.exists()
    assert len(monitor.y_val) == metrics["data"]["n_val"] == 200 and len(final.y_val) == 0
    # an independent evaluation of the shipped model gives the reported accuracy and confusion matrix ...
    model = load_model(final.model_path)
    raw = data.load_idx()
    x, y = data.normalise(raw.x_test[:1000]), raw.y_test[:1000]
    proba = predict_proba(model, x)
    ev = evaluate(y, proba)
    assert ev.accuracy == metrics["test"]["accuracy"] and ev.n_errors == metrics["test"]["n_errors"]
    np.testing.assert_array_equal(ev.confusion, metrics["test"]["confusion_matrix"])
    assert ev.loss == pytest.approx(metrics["test"]["loss"], rel=1e-5)  # the record keeps float32 probabilities
    assert metrics["claims"]["accuracy"] == ev.accuracy
    # ... and the probabilities its record holds are the model's, on the first 1,000 test images
    np.testing.assert_array_equal(final.y_test, y)
    np.testing.assert_allclose(final.test_proba, proba, atol=1e-6)
    assert set(p.name for p in (out_dir / "figures").glob("*.png")) == {
        f"{name}-{k}.png"
        for k in (
            "samples",
            "training-curves",
            "confusion-matrix",
            "per-class",
            "confused-pairs",
            "errors",
            "own-digits",
        )
    }
    # the font-digit rate, recomputed through the command line's own path (image file -> prediction)
    fonts = metrics["font_digits"]
    pages, labels, _ = predict.font_digits()
    got = predict_proba(model, np.stack([predict.to_mnist(p) for p in pages])).argmax(1)
    assert fonts["n"] == 60 and fonts["recognised"] == int((got == labels).sum())
    assert sum(fonts["by_font"].values()) == fonts["recognised"] and len(fonts["by_font"]) == 6
    # the verdict printed in the notebook is the one computed from the numbers
    nb = nbformat.read(out, as_version=4)
    shown_md = [
        o["data"]["text/markdown"]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "text/markdown" in o.get("data", {})
    ]
    assert any(metrics["claims"]["accuracy_verdict"] in s for s in shown_md)


@pytest.mark.slow
def test_a_second_execution_reads_its_runs_from_the_store_and_gives_the_same(executed, again):
    checks.the_same_again(NAME, executed(NAME)[2], again)


@pytest.mark.slow
def test_a_small_report_reproduces_identically_and_an_edited_number_is_caught(
    executed, pool, tmp_path, capsys, monkeypatch
):
    _, executed_nb, out_dir = executed(NAME)  # this module's small report (one execution fewer)
    # reproduce drops the recorded scheduler (reproduce.PLACES), so the notebook falls back to
    # $MNIST_REPORT_SCHEDULER: here the tests' warm cluster, whose workers have TensorFlow loaded
    monkeypatch.setenv(executor.SCHEDULER_ENV, pool.address)
    committed = tmp_path / "reports"
    committed.mkdir()
    for f in (executed_nb, out_dir / f"{NAME}.metrics.json"):
        shutil.copy(f, committed)
    assert reproduce.recorded_parameters(committed / f"{NAME}.ipynb") == SMALL[NAME]
    out = tmp_path / "again"
    result = reproduce.reproduce(committed, out, names=[NAME], timeout=600, print_fn=None)
    # every run trained again from nothing, into the reproduction's own store (none read from the tests' store)
    reproduced = json.loads((out / f"{NAME}.metrics.json").read_text())
    assert sorted(reproduced["records"]) == sorted(
        json.loads((committed / f"{NAME}.metrics.json").read_text())["records"]
    )
    assert all((out / "runs" / key / "run.json").is_file() for key in reproduced["records"])
    assert result["ok"] and result["verdict"].startswith("REPRODUCED: all"), result["verdict"]
    assert (out / "reproduce.md").is_file() and json.loads((out / "reproduce.json").read_text())["ok"]
    assert any(r["kind"] == "timing" for r in result["rows"])  # listed apart, never judged
    assert result["same_machine"] == {NAME: True}  # the metrics record the machine they were made on
    # on the same machine, any number edited in the committed copy is caught, and exit status 1
    metrics = json.loads((committed / f"{NAME}.metrics.json").read_text())
    metrics["test"]["accuracy"] += 0.05
    metrics["test"]["loss"] += 0.001
    (committed / f"{NAME}.metrics.json").write_text(json.dumps(metrics))
    assert reproduce.main(committed, out, timeout=600, compare_only=True) == 1
    text = capsys.readouterr().out
    assert "NOT REPRODUCED: 2 of" in text and text.count("DIFFERS on the same machine") >= 2
    # as if the report had been made on another machine: the accuracy is judged against noise, the loss listed
    metrics["environment"]["fingerprint"]["simd"] = ["avx512f"]
    (committed / f"{NAME}.metrics.json").write_text(json.dumps(metrics))
    assert reproduce.main(committed, out, timeout=600, compare_only=True) == 1
    text = capsys.readouterr().out
    assert "NOT REPRODUCED: 1 of" in text and "test.accuracy" in text and "OUTSIDE noise" in text
    assert "| test.loss |" in text and "different (not judged)" in text


@pytest.mark.slow
def test_nbval_reexecutes_it_to_the_same_outputs(again):
    checks.nbval_reruns_to_the_same_outputs(again)
