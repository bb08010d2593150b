"""make reproduce: differences judged against the measured noise, resuming, never over the report.
(A small report reproduced end to end, and an edited number caught: tests/test_notebook_01.py.)"""

import json

import nbformat
import pytest

from mnist_report import reproduce, schema

NAME = "01-seed-reproduction"


def test_differences_are_judged_against_the_measured_noise(tmp_path, monkeypatch):
    # the judging rules on hand-made structures, so without the schemas, which want whole metrics files
    monkeypatch.setattr(schema, "SCHEMAS", {})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    study = {"accuracy_summary": {"mean": 0.9915, "std": 0.0006}, "runs": [{"accuracy": 0.9912, "seed": 0}],
             "config": {"epochs": 10}, "train_seconds": 50.0, "environment": {"cpu": 2},
             "executor": {"workers": 2, "threads_per_run": 1}}  # fmt: skip
    (tmp_path / "a" / "02-multi-seed-study.metrics.json").write_text(json.dumps(study))
    within = {**study, "accuracy_summary": {"mean": 0.9920, "std": 0.0006}, "train_seconds": 61.0,
              "runs": [{"accuracy": 0.9925, "seed": 0}], "environment": {"cpu": 32},
              "executor": {"workers": 32, "threads_per_run": 1}}  # how many runs at once: never a result
    (tmp_path / "b" / "02-multi-seed-study.metrics.json").write_text(json.dumps(within))
    result = reproduce.compare(tmp_path / "a", tmp_path / "b")
    verdicts = {r["number"]: r["verdict"] for r in result["rows"]}
    # the mean moved by 0.05 points (< 2 x 0.06 seed std); one run by 0.13 points (< 2 x its 0.094 s.e.)
    assert verdicts == {"accuracy_summary.mean": "within noise", "accuracy_summary.std": "identical",
                        "runs[0].accuracy": "within noise", "runs[0].seed": "identical",
                        "config.epochs": "identical", "train_seconds": "timing"}
    assert result["ok"] and result["verdict"].startswith("REPRODUCED WITHIN NOISE")
    outside = {**within, "config": {"epochs": 11}, "accuracy_summary": {"mean": 0.9935, "std": 0.0006}}
    (tmp_path / "b" / "02-multi-seed-study.metrics.json").write_text(json.dumps(outside))
    result = reproduce.compare(tmp_path / "a", tmp_path / "b")
    assert not result["ok"] and result["verdict"].startswith("NOT REPRODUCED: 2 of 5")
    monkeypatch.undo()  # with the schemas: a metrics file that does not follow its notebook's is refused
    with pytest.raises(schema.MetricsError, match="02-multi-seed-study metrics do not follow"):
        reproduce.compare(tmp_path / "a", tmp_path / "b")


def test_reproduce_never_writes_over_the_report(tmp_path):
    with pytest.raises(ValueError, match="never over"):
        reproduce.reproduce(tmp_path, tmp_path)


def test_resume_keeps_only_the_runs_the_reproduction_trained_itself(tmp_path, monkeypatch):
    from mnist_report import notebooks

    executed = []
    monkeypatch.setattr(notebooks, "execute", lambda source, output, params, timeout: executed.append(params))
    monkeypatch.setattr(reproduce, "compare_and_write", lambda reports, out: {"ok": True})
    out = tmp_path / "again"
    (out / "cache" / "KEY" / "seed-0").mkdir(parents=True)  # a run an interrupted reproduction trained
    reports = tmp_path / "reports"  # a committed notebook executed with where-parameters of its own
    reports.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": {"epochs": 1, "scheduler": "tcp://gone:8786", "workers": 3,
                                               "cache_dir": "/elsewhere", "output_dir": "/elsewhere"}}  # fmt: skip
    nbformat.write(nb, reports / f"{NAME}.ipynb")
    reproduce.reproduce(reports, out, names=[NAME], resume=True, print_fn=None)
    assert (out / "cache" / "KEY" / "seed-0").is_dir()
    assert executed[0] == {"epochs": 1, "output_dir": str(out), "cache_dir": str(out / "cache"),
                           "run_dir": str(out / "runs" / NAME)}  # what it computes, and where: here
    reproduce.reproduce(reports, out, names=[NAME], print_fn=None)  # from nothing: the cache is emptied
    assert not (out / "cache").exists()
