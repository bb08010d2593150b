"""make reproduce: differences judged by the kind the metrics' declaration gives each number, resuming,
never over the report. (A small report reproduced end to end: tests/test_notebook_01.py.)"""

import json
from typing import Annotated, Any

import nbformat
import pytest
from typing_extensions import TypedDict

from mnist_report.reporting import metrics, reproduce
from mnist_report.reporting.metrics import Acc, Kind, Mean, Seconds, Setup, ValAcc

NAME = "01-seed-reproduction"


class Summary(TypedDict):
    mean: Mean
    std: float
    n_runs: int


class Run(TypedDict):
    seed: Annotated[int, Setup]
    accuracy: Acc


class Study(TypedDict):  # a small declaration of the judging rules' cases
    notebook: str
    config: Annotated[dict[str, Any], Setup]
    accuracy_summary: Summary
    runs: list[Run]
    pairs: list[dict[str, Any]]
    hard_core: list[dict[str, Any]]
    train_seconds: Seconds
    text: str
    environment: dict[str, Any]


class Row(TypedDict):
    variant: str
    mean: ValAcc


class Rows(TypedDict):
    rows: list[Row]
    n_val: int


class Final(TypedDict):
    summary: Summary


class Beyond(TypedDict):
    notebook: str
    search: Annotated[dict[str, Any], Kind.CHOICE]
    ablation: Rows
    final: Annotated[Final, Kind.FOLLOWS_CHOICE]


def _write(where, name, data):
    where.mkdir(parents=True, exist_ok=True)
    (where / f"{name}.metrics.json").write_text(json.dumps({"notebook": name, **data}))


def test_differences_are_judged_by_their_declared_kind(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "NOTEBOOKS", {"02-multi-seed-study": Study})
    pairs = [{"pair": "4-9", "count": 30, "4->9": 18}, {"pair": "3-5", "count": 20, "3->5": 12}]
    study = {
        "accuracy_summary": {"mean": 0.9915, "std": 0.0006, "n_runs": 4},
        "runs": [{"accuracy": 0.9912, "seed": 0}, {"accuracy": 0.9918, "seed": 1}],
        "pairs": pairs,
        "config": {"epochs": 10, "precision": "float32"},
        "train_seconds": 50.0,
        "text": "the claim holds",
        "hard_core": [{"index": 947, "wrong_runs": 10}, {"index": 1014, "wrong_runs": 9}],
        "environment": {"cpu_model": "A"},
    }
    within = {
        **study,
        "accuracy_summary": {"mean": 0.9920, "std": 0.0006, "n_runs": 4},
        "train_seconds": 61.0,
        "runs": [{"accuracy": 0.9925, "seed": 0}, {"accuracy": 0.9918, "seed": 1}],
        "pairs": pairs[::-1],  # the same pairs in another order: no difference
        "hard_core": study["hard_core"][:1],
        "text": "the claim does not hold",  # prose follows the numbers
        "environment": {"cpu_model": "B"},
    }
    _write(tmp_path / "a", "02-multi-seed-study", study)
    _write(tmp_path / "b", "02-multi-seed-study", within)
    result = reproduce.compare(tmp_path / "a", tmp_path / "b")
    verdicts = {r["number"]: r["verdict"] for r in result["rows"] if r["verdict"] != "identical"}
    # three accuracies compared: z = 2.39. The mean moved by 0.05 points, within 2.39 x root 2 x 0.06 / root 4
    # = 0.10; one run by 0.13 points, within 2.39 x root 2 x its 0.094 s.e. = 0.32
    assert result["z"] == pytest.approx(2.394, abs=1e-3)
    assert verdicts == {
        "accuracy_summary.mean": "within noise",
        "runs[seed=0].accuracy": "within noise",
        "hard_core[index=1014].index": "different (not judged)",  # an image fewer: listed only
        "hard_core[index=1014].wrong_runs": "different (not judged)",
        "train_seconds": "timing",
    }
    assert result["ok"] and result["verdict"].startswith("REPRODUCED WITHIN NOISE")
    outside = {
        **within,
        "config": {"epochs": 11, "precision": "mixed_bfloat16"},
        "accuracy_summary": {"mean": 0.9927, "std": 0.0006, "n_runs": 4},
    }
    _write(tmp_path / "b", "02-multi-seed-study", outside)
    result = reproduce.compare(tmp_path / "a", tmp_path / "b")
    bad = {r["number"] for r in result["rows"] if r["verdict"] == "OUTSIDE noise"}
    assert bad == {"config.epochs", "config.precision", "accuracy_summary.mean"}  # 0.12 points > 0.10
    assert not result["ok"] and result["verdict"].startswith("NOT REPRODUCED: 3 of ")
    # on the report's own machine and packages every number must be identical
    machine = {"fingerprint": {"simd": ["avx2"]}, "packages": {"tensorflow": "2.21.0"}, "cpu_model": "A"}
    _write(tmp_path / "a", "02-multi-seed-study", {**study, "environment": machine})
    _write(tmp_path / "b", "02-multi-seed-study", {**within, "environment": machine})
    result = reproduce.compare(tmp_path / "a", tmp_path / "b")
    assert result["same_machine"] == {"02-multi-seed-study": True} and not result["ok"]
    assert {r["number"] for r in result["rows"] if r["verdict"] == "DIFFERS on the same machine"} == {
        "accuracy_summary.mean",
        "runs[seed=0].accuracy",
        "hard_core[index=1014].index",
        "hard_core[index=1014].wrong_runs",
    }
    _write(tmp_path / "b", "02-multi-seed-study", {**study, "train_seconds": 61.0, "environment": machine})
    result = reproduce.compare(tmp_path / "a", tmp_path / "b")
    assert result["ok"] and result["verdict"].startswith("REPRODUCED: all ")
    # runs trained on another processor than the committed ones: not the report's machine, whatever ran them
    monkeypatch.setattr(Study, "__annotations__", {**Study.__annotations__, "trained_on": list[str]})
    _write(tmp_path / "b", "02-multi-seed-study", {**within, "environment": machine, "trained_on": ["B"]})
    assert reproduce.compare(tmp_path / "a", tmp_path / "b")["same_machine"] == {"02-multi-seed-study": False}
    assert "timing" in reproduce.markdown(result)


def test_a_choice_that_fell_the_other_way_is_listed_with_what_follows_from_it(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "NOTEBOOKS", {"03-beyond-the-seed": Beyond})
    beyond = {
        "search": {"selected": {"learning_rate": 0.001}},
        "ablation": {"n_val": 6000, "rows": [{"variant": "full", "mean": 0.9950}]},
        "final": {"summary": {"mean": 0.9965, "std": 0.0003, "n_runs": 5}},
    }
    other = {
        "search": {"selected": {"learning_rate": 0.002}},  # another machine picked another trial
        "ablation": {"n_val": 6000, "rows": [{"variant": "full", "mean": 0.9954}]},
        "final": {"summary": {"mean": 0.9940, "std": 0.0003, "n_runs": 5}},
    }
    _write(tmp_path / "a", "03-beyond-the-seed", beyond)
    _write(tmp_path / "b", "03-beyond-the-seed", other)
    result = reproduce.compare(tmp_path / "a", tmp_path / "b")
    verdicts = {r["number"]: r["verdict"] for r in result["rows"] if r["verdict"] != "identical"}
    assert verdicts == {
        "search.selected.learning_rate": "another choice (not judged)",
        "final.summary.mean": "follows another choice (not judged)",
        "ablation.rows[variant=full].mean": "within noise",
    }  # judged on 6,000 images
    assert result["ok"]


def test_reproduce_never_writes_over_the_report(tmp_path):
    with pytest.raises(ValueError, match="never over"):
        reproduce.reproduce(tmp_path, tmp_path)


def _committed(reports, **recorded):
    reports.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": recorded}
    nbformat.write(nb, reports / f"{NAME}.ipynb")
    (reports / f"{NAME}.metrics.json").write_text(json.dumps({"notebook": NAME}))


def test_resume_keeps_the_runs_the_reproduction_trained_and_the_store_is_its_own(tmp_path, monkeypatch):
    from mnist_report.reporting import runner
    from mnist_report.runs import store

    executed = []
    monkeypatch.setattr(metrics, "NOTEBOOKS", {})
    monkeypatch.setattr(
        runner, "execute", lambda source, output, params, timeout: executed.append((params, store.places()))
    )
    monkeypatch.setattr(reproduce, "compare_and_write", lambda reports, out: {"ok": True})
    out = tmp_path / "again"
    (out / "runs" / "KEY").mkdir(parents=True)  # a run an interrupted reproduction trained
    _committed(tmp_path / "reports", epochs=1, scheduler="tcp://gone:8786", workers=3, output_dir="/elsewhere")
    reproduce.reproduce(tmp_path / "reports", out, names=[NAME], resume=True, print_fn=None)
    assert (out / "runs" / "KEY").is_dir()
    ((params, places),) = executed
    assert params == {"epochs": 1}  # what it computes; where it writes and trains are its own
    assert places == ([out / "runs"], out / "runs")  # never the report's store or the user's cache
    reproduce.reproduce(tmp_path / "reports", out, names=[NAME], print_fn=None)  # from nothing: emptied
    assert not (out / "runs").exists()


def test_a_report_made_by_older_code_or_nothing_reproduced_yet_is_said_plainly(tmp_path):
    reports = tmp_path / "reports"
    _committed(reports)
    (reports / f"{NAME}.metrics.json").write_text(json.dumps({"notebook": NAME, "accuracy": 0.99}))  # an old shape
    (tmp_path / "again" / "runs" / "KEY").mkdir(parents=True)
    with pytest.raises(ValueError, match=f"the committed report of {NAME} cannot be read.*make report"):
        reproduce.reproduce(reports, tmp_path / "again", names=[NAME], print_fn=None)
    assert (tmp_path / "again" / "runs" / "KEY").is_dir()  # refused before anything was emptied
    with pytest.raises(ValueError, match=f"report of {NAME} cannot be read"):
        reproduce.reproduce(tmp_path / "none", tmp_path / "again", names=[NAME], print_fn=None)
    with pytest.raises(ValueError, match="nothing to compare: .*nowhere does not exist"):
        reproduce.main(reports, tmp_path / "nowhere", timeout=None, compare_only=True)
