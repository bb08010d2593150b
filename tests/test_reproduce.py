"""make reproduce: differences judged against the measured noise, resuming, never over the report.
(A small report reproduced end to end, and an edited number caught: tests/test_notebook_01.py.)"""

import json

import nbformat
import pytest

from mnist_report.reporting import reproduce, schema

NAME = "01-seed-reproduction"


def test_differences_are_judged_against_the_measured_noise(tmp_path, monkeypatch):
    # the judging rules on hand-made structures, so without the schemas, which want whole metrics files
    monkeypatch.setattr(schema, "SCHEMAS", {})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write = lambda where, metrics: (tmp_path / where / "02-multi-seed-study.metrics.json").write_text(  # noqa: E731
        json.dumps(metrics))
    pairs = [{"pair": "4-9", "count": 30, "4->9": 18}, {"pair": "3-5", "count": 20, "3->5": 12}]
    study = {"accuracy_summary": {"mean": 0.9915, "std": 0.0006, "n_runs": 4},
             "runs": [{"accuracy": 0.9912, "seed": 0}, {"accuracy": 0.9918, "seed": 1}], "pairs": pairs,
             "config": {"epochs": 10, "precision": "float32"}, "train_seconds": 50.0, "text": "the claim holds",
             "hard_core": [{"index": 947, "wrong_runs": 10}, {"index": 1014, "wrong_runs": 9}],
             "environment": {"cpu": 2}, "executor": {"workers": 2, "threads_per_run": 1}}  # fmt: skip
    write("a", study)
    within = {**study, "accuracy_summary": {"mean": 0.9920, "std": 0.0006, "n_runs": 4}, "train_seconds": 61.0,
              "runs": [{"accuracy": 0.9925, "seed": 0}, {"accuracy": 0.9918, "seed": 1}],
              "pairs": pairs[::-1],  # the same pairs in another order: no difference
              "hard_core": study["hard_core"][:1], "text": "the claim does not hold",  # prose follows the numbers
              "environment": {"cpu": 32}, "executor": {"workers": 32, "threads_per_run": 1}}  # fmt: skip
    write("b", within)
    result = reproduce.compare(tmp_path / "a", tmp_path / "b")
    verdicts = {r["number"]: r["verdict"] for r in result["rows"] if r["verdict"] != "identical"}
    # three accuracies compared: z = 2.39. The mean moved by 0.05 points, within 2.39 x root 2 x 0.06 / root 4
    # = 0.10; one run by 0.13 points, within 2.39 x root 2 x its 0.094 s.e. = 0.32
    assert result["z"] == pytest.approx(2.394, abs=1e-3)
    assert verdicts == {"accuracy_summary.mean": "within noise", "runs[seed=0].accuracy": "within noise",
                        "hard_core[index=1014].index": "different (not judged)",  # an image fewer: listed only
                        "hard_core[index=1014].wrong_runs": "different (not judged)", "train_seconds": "timing"}
    assert result["ok"] and result["verdict"].startswith("REPRODUCED WITHIN NOISE")
    outside = {**within, "config": {"epochs": 11, "precision": "mixed_bfloat16"},
               "accuracy_summary": {"mean": 0.9927, "std": 0.0006, "n_runs": 4}}  # fmt: skip
    write("b", outside)
    result = reproduce.compare(tmp_path / "a", tmp_path / "b")
    bad = {r["number"] for r in result["rows"] if r["verdict"] == "OUTSIDE noise"}
    assert bad == {"config.epochs", "config.precision", "accuracy_summary.mean"}  # 0.12 points > 0.10
    assert not result["ok"] and result["verdict"].startswith("NOT REPRODUCED: 3 of ")
    # on the report's own machine and packages every number must be identical
    machine = {"fingerprint": {"simd": ["avx2"]}, "packages": {"tensorflow": "2.21.0"}}
    write("a", {**study, "environment": machine})
    write("b", {**within, "environment": machine})
    result = reproduce.compare(tmp_path / "a", tmp_path / "b")
    assert result["same_machine"] == {"02-multi-seed-study": True} and not result["ok"]
    assert {r["number"] for r in result["rows"] if r["verdict"] == "DIFFERS on the same machine"} == {
        "accuracy_summary.mean", "runs[seed=0].accuracy", "hard_core[index=1014].index",
        "hard_core[index=1014].wrong_runs"}
    write("b", {**study, "train_seconds": 61.0, "environment": machine})  # only a timing differs
    result = reproduce.compare(tmp_path / "a", tmp_path / "b")
    assert result["ok"] and result["verdict"].startswith("REPRODUCED: all ")
    monkeypatch.undo()  # with the schemas: a metrics file that does not follow its notebook's is refused
    with pytest.raises(schema.MetricsError, match="02-multi-seed-study metrics do not follow"):
        reproduce.compare(tmp_path / "a", tmp_path / "b")


def test_reproduce_never_writes_over_the_report(tmp_path):
    with pytest.raises(ValueError, match="never over"):
        reproduce.reproduce(tmp_path, tmp_path)


def test_resume_keeps_only_the_runs_the_reproduction_trained_itself(tmp_path, monkeypatch):
    from mnist_report.reporting import runner as notebooks

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


def test_auto_parameters_are_set_to_what_the_report_machine_resolved(tmp_path, monkeypatch):
    # "auto" picks mixed_bfloat16 where bfloat16 is native: a reproduction there of a float32 report
    # must train float32, and no precision comparison the report does not have
    from mnist_report.modeling import train
    from mnist_report.reporting import runner as notebooks

    monkeypatch.setattr(schema, "SCHEMAS", {})  # the metrics below hold only what is read here
    executed = []
    monkeypatch.setattr(notebooks, "execute", lambda source, output, params, timeout: executed.append(params))
    monkeypatch.setattr(reproduce, "compare_and_write", lambda reports, out: {"ok": True})
    reports, again, names = tmp_path / "reports", tmp_path / "again", ["02-multi-seed-study", "03-beyond-the-seed"]
    reports.mkdir()

    def committed(name, metrics, **recorded):
        nb = nbformat.v4.new_notebook()
        nb.metadata["papermill"] = {"parameters": recorded}
        nbformat.write(nb, reports / f"{name}.ipynb")
        (reports / f"{name}.metrics.json").write_text(json.dumps(metrics))

    committed(names[0], {"precision_comparison": None})  # executed at its defaults: compare_precision "auto"
    committed(names[1], {"precision": "float32"})
    monkeypatch.setattr(train, "bf16_native", lambda: True)
    reproduce.reproduce(reports, again, names=names, print_fn=None)
    assert executed[0]["compare_precision"] is None and executed[1]["precision"] == "float32"
    assert "precision" not in executed[0]  # notebook 02's own precision is no "auto": its default stands
    committed(names[0], {"precision_comparison": {"names": ["float32", "mixed_bfloat16"]}})
    committed(names[1], {"precision": "mixed_bfloat16"}, precision="auto")  # recorded as "auto": the same
    executed.clear()
    reproduce.reproduce(reports, again, names=names, print_fn=None)
    assert executed[0]["compare_precision"] == executed[1]["precision"] == "mixed_bfloat16"
    # refused where bfloat16 is not native, before anything trains: resolved from "auto", or recorded
    monkeypatch.setattr(train, "bf16_native", lambda: False)
    (again / "cache" / "KEY").mkdir(parents=True)
    with pytest.raises(ValueError, match="report of 02-multi-seed-study ran with compare_precision=mixed_bfloat16"):
        reproduce.reproduce(reports, again, names=names, print_fn=None)
    committed(names[1], {"precision": "float32"}, precision="mixed_bfloat16")
    with pytest.raises(ValueError, match="report of 03-beyond-the-seed ran with precision=mixed_bfloat16, which"):
        reproduce.reproduce(reports, again, names=names[1:], print_fn=None)
    assert len(executed) == 2 and (again / "cache" / "KEY").is_dir()  # nothing ran, nothing emptied
    committed(names[1], {"precision": "float32"})  # float32 everywhere: nothing to refuse
    reproduce.reproduce(reports, again, names=names[1:], print_fn=None)
    assert executed[-1]["precision"] == "float32"


def test_a_report_made_by_older_code_or_nothing_reproduced_yet_is_said_plainly(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / f"{NAME}.metrics.json").write_text(json.dumps({"notebook": NAME, "accuracy": 0.99}))  # an old shape
    (tmp_path / "again" / "cache" / "KEY").mkdir(parents=True)
    with pytest.raises(ValueError, match=f"the committed report of {NAME} was made by older code.*make report"):
        reproduce.reproduce(reports, tmp_path / "again", names=[NAME], print_fn=None)
    assert (tmp_path / "again" / "cache" / "KEY").is_dir()  # refused before anything was emptied
    with pytest.raises(FileNotFoundError, match=f"{NAME}.ipynb does not exist: there is no committed report"):
        reproduce.reproduce(tmp_path / "none", tmp_path / "again", names=[NAME], print_fn=None)
    assert (tmp_path / "again" / "cache" / "KEY").is_dir()
    with pytest.raises(ValueError, match="nothing to compare: .*nowhere does not exist"):
        reproduce.main(reports, tmp_path / "nowhere", timeout=None, compare_only=True)


def test_a_choice_that_fell_the_other_way_is_listed_with_what_follows_from_it(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "SCHEMAS", {})
    beyond = {"search": {"selected": {"learning_rate": 0.001}},
              "candidates": {"n_val": 6000, "rows": [{"candidate": "base", "mean": 0.9950}]},
              "final": {"summary": {"mean": 0.9965, "std": 0.0003, "n_runs": 5}},
              "time": {"cached": 12, "runs": 20, "seconds": 30.0}}  # fmt: skip
    other = {"search": {"selected": {"learning_rate": 0.002}},  # another machine picked another trial
             "candidates": {"n_val": 6000, "rows": [{"candidate": "base", "mean": 0.9954}]},
             "final": {"summary": {"mean": 0.9940, "std": 0.0003, "n_runs": 5}},
             "time": {"cached": 0, "runs": 20, "seconds": 900.0}}  # fmt: skip
    for where, metrics in (("a", beyond), ("b", other)):
        (tmp_path / where).mkdir()
        (tmp_path / where / "03-beyond-the-seed.metrics.json").write_text(json.dumps(metrics))
    result = reproduce.compare(tmp_path / "a", tmp_path / "b")
    verdicts = {r["number"]: r["verdict"] for r in result["rows"] if r["verdict"] != "identical"}
    assert verdicts == {"search.selected.learning_rate": "another choice (not judged)",
                        "final.summary.mean": "follows another choice (not judged)",
                        "candidates.rows[candidate=base].mean": "within noise",  # judged on 6,000 images
                        "time.cached": "timing", "time.seconds": "timing"}  # fmt: skip
    assert result["ok"]
