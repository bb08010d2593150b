"""Notebook 01, executed small: its numbers come from its saved model, and it reproduces identically."""

import json
import shutil

import nbformat
import notebook_checks as checks
import numpy as np
import pytest
from conftest import SMALL

from mnist_report import data, predict
from mnist_report.analysis.evaluate import evaluate
from mnist_report.modeling import train
from mnist_report.modeling.train import predict_proba
from mnist_report.reporting import reproduce
from mnist_report.runs import executor as fanout

NAME = "01-seed-reproduction"


@pytest.mark.slow
def test_it_writes_its_figures_and_metrics(executed):
    checks.figures_and_metrics(*executed(NAME))


@pytest.mark.slow
def test_its_numbers_come_from_its_model(executed):
    name, out, out_dir = executed(NAME)
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
def test_a_small_report_reproduces_identically_and_an_edited_number_is_caught(executed, pool, tmp_path, capsys,
                                                                              monkeypatch):
    _, executed_nb, out_dir = executed(NAME)  # this module's small report (one execution fewer)
    # reproduce drops the recorded scheduler (reproduce.PLACES), so the notebook falls back to
    # $MNIST_REPORT_SCHEDULER: here the tests' warm cluster, whose workers have TensorFlow loaded
    monkeypatch.setenv(fanout.SCHEDULER_ENV, pool.address)
    committed = tmp_path / "reports"
    committed.mkdir()
    for f in (executed_nb, out_dir / f"{NAME}.metrics.json"):
        shutil.copy(f, committed)
    assert reproduce.recorded_parameters(committed / f"{NAME}.ipynb") == SMALL[NAME]
    out = tmp_path / "again"
    result = reproduce.reproduce(committed, out, names=[NAME], timeout=600, print_fn=None)
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
def test_nbval_reruns_it_to_the_same_outputs(executed):  # last: it writes the outputs again
    checks.nbval_reruns_to_the_same_outputs(*executed(NAME))
