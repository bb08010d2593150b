"""`make report`'s outputs are all-or-nothing per notebook, and record what they were made from."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_notebook

from mnist_report.__main__ import main
from mnist_report.reporting import provenance


@pytest.fixture
def figs(tmp_path):
    """A notebook that writes a figure and metrics through Outputs, then fails when x == 0."""
    return write_notebook(
        tmp_path / "figs.ipynb",
        "x = 1\noutput_dir = 'reports'",
        "import matplotlib.pyplot as plt\nfrom mnist_report.reporting.outputs import Outputs\n"
        "out = Outputs(output_dir, 'figs')\nfig, ax = plt.subplots()\nax.plot([x, x])\n"
        "out.figure(fig, 'b' if x == 2 else 'a')\nout.write_metrics({'x': x})",
        "assert x != 0, 'x must not be zero'",
    )


def run(nb, reports, x):
    return main(["notebook", str(nb), str(reports / "figs.ipynb"), "-p", "x", str(x), "-p", "output_dir", str(reports)])


@pytest.mark.slow
def test_a_failed_notebook_leaves_every_previous_output_intact(figs, tmp_path, capsys):
    reports = tmp_path / "reports"
    assert run(figs, reports, 1) == 0
    files = {p.relative_to(reports): p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    assert {str(p) for p in files} == {"figs.ipynb", "figs.metrics.json", "figs.inputs.json", "figures/figs-a.png"}
    # the failing run wrote a figure and metrics before its failing cell: none of it reaches reports/
    assert run(figs, reports, 0) == 1
    err = capsys.readouterr().err
    assert "x must not be zero" in err and "figures and metrics were left as they were" in err
    after = {p.relative_to(reports): p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k.name != "figs.failed.ipynb"} == files
    assert not list(reports.glob(".*"))  # no staging or partial files left behind
    # a later successful run replaces the figures: the one it no longer makes is removed
    assert run(figs, reports, 2) == 0
    assert sorted(p.name for p in (reports / "figures").iterdir()) == ["figs-b.png"]
    assert json.loads((reports / "figs.metrics.json").read_text())["x"] == 2


def _project(root: Path) -> Path:
    """A project of its own under ``root``: a notebook, a package with a subpackage, the MNIST files'
    checksums; the notebook's path."""
    for d in ("notebooks", "reports", "mnist_report/analysis", "data/mnist"):
        (root / d).mkdir(parents=True)
    nb = root / "notebooks" / "01-x.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["from mnist_report import io\n"]}]}))
    (root / "mnist_report" / "io.py").write_text("x = 1\n")
    (root / "mnist_report" / "analysis" / "study.py").write_text("s = 1\n")
    (root / "mnist_report" / "README.md").write_text("how it works")
    (root / "data" / "mnist" / "SHA256SUMS").write_text("x\n")
    return nb


def test_check_report_names_what_changed(tmp_path):
    root = tmp_path
    nb = _project(root)
    check = lambda: provenance.check(root / "reports", root / "notebooks", root)  # noqa: E731
    record = lambda: provenance.record(root / "reports" / "01-x.ipynb", provenance.inputs(nb, {}, root))  # noqa: E731
    assert check() == {"01-x": ["reports/01-x.ipynb does not exist"]}
    (root / "reports" / "01-x.ipynb").write_text("{}")
    assert check() == {"01-x": ["reports/01-x.inputs.json does not exist"]}  # made before inputs were recorded
    record()
    assert check() == {"01-x": []}
    (root / "data" / "mnist" / "README.md").write_text("where the files come from")  # prose: not an input
    (root / "mnist_report" / "README.md").write_text("how it works, rewritten")  # nor the package's prose
    assert check() == {"01-x": []}
    (root / "data" / "label-errors.json").write_text("[]")  # a list beside the MNIST files is data too
    assert check() == {"01-x": ["data/label-errors.json is new"]}
    record()
    # every source file of the package is an input, in a subpackage too, whether the notebook imports it or not
    (root / "mnist_report" / "analysis" / "study.py").write_text("s = 2\n")
    (root / "mnist_report" / "new.py").write_text("")
    assert check() == {"01-x": ["mnist_report/analysis/study.py changed", "mnist_report/new.py is new"]}
    record()
    (root / "mnist_report" / "new.py").unlink()
    nb.write_text(nb.read_text().replace("import io", "import io  # edited"))
    assert check() == {"01-x": ["notebooks/01-x.ipynb changed", "mnist_report/new.py is gone"]}
    recorded = json.loads((root / "reports" / "01-x.inputs.json").read_text())
    recorded["packages"]["keras"] = "0.0.1"
    changed = provenance.differences(recorded, provenance.inputs(nb, {}, root))
    assert any(line.startswith("package keras 0.0.1 -> ") for line in changed)


def fake_run(root: Path, config, raw, seed_of_numbers: int = 0) -> str:
    """A run record of ``config`` on the MNIST files ``raw``, written into the store ``root`` as the executor
    writes one, with made-up numbers (no training): its key."""
    from mnist_report import data
    from mnist_report.runs import store

    rng = np.random.default_rng(seed_of_numbers)
    proba = rng.dirichlet(np.ones(10), size=config.n_test).astype(np.float32)
    result = {
        "history": {"accuracy": [float(rng.random())]},
        "epoch_seconds": [1.0],
        "trained_on": {"cpu": "none"},
        "y_test": np.arange(config.n_test) % 10,
        "test_proba": proba,
    }
    run_key = store.key(config, data.fingerprint(raw))
    store.write(root, run_key, config, result)
    return run_key


def test_a_run_record_that_changed_or_is_gone_makes_the_report_stale(tmp_path, raw):
    from mnist_report.config import TrainConfig
    from mnist_report.runs import store

    root = tmp_path
    nb = _project(root)
    runs_dir = root / "reports" / "runs"
    config = TrainConfig(n_train=100, n_test=20, epochs=1)
    run_key = fake_run(runs_dir, config, raw)
    (root / "reports" / "01-x.ipynb").write_text("{}")
    hashes = {run_key: store.read(runs_dir / run_key).sha256}
    provenance.record(root / "reports" / "01-x.ipynb", provenance.inputs(nb, hashes, root))
    check = lambda: provenance.check(root / "reports", root / "notebooks", root)  # noqa: E731
    assert check() == {"01-x": []}
    fake_run(runs_dir, config, raw, seed_of_numbers=1)  # the same run, trained again to other numbers
    assert check() == {"01-x": [f"run record {run_key} changed"]}
    (runs_dir / run_key / "run.json").write_text("{")  # damaged: as good as gone
    assert check() == {"01-x": [f"run record {run_key} is gone"]}
    shutil.rmtree(runs_dir / run_key)
    assert check() == {"01-x": [f"run record {run_key} is gone"]}


def test_prune_removes_only_the_records_no_notebook_used(tmp_path):
    from mnist_report.reporting import runner

    reports = tmp_path / "reports"
    for key in ("a1", "b2", "c3", "d4"):
        (reports / "runs" / key).mkdir(parents=True)
        (reports / "runs" / key / "run.json").write_text("{}")
    (reports / "runs" / "notes.txt").write_text("not a record")
    (reports / "01-x.inputs.json").write_text(json.dumps({"runs": {"a1": "h"}}))
    (reports / "02-y.inputs.json").write_text(json.dumps({"runs": {"c3": "h", "e5": "h"}}))  # e5: gone already
    assert runner.prune(reports) == ["b2", "d4"]
    assert sorted(p.name for p in (reports / "runs").iterdir()) == ["a1", "c3", "notes.txt"]
    assert (reports / "runs" / "a1" / "run.json").is_file()
    assert runner.prune(reports) == []  # nothing more to remove
    # a notebook whose record predates the runs field: what it used is unknown, so nothing goes
    (reports / "runs" / "f6").mkdir()
    (reports / "03-z.inputs.json").write_text(json.dumps({"notebook": {}, "code": {}}))
    assert runner.prune(reports) == [] and (reports / "runs" / "f6").is_dir()
    assert runner.prune(tmp_path / "empty") == []  # no report, no store: nothing to do


def test_a_notebook_saved_by_jupyterlab_is_the_same_input_and_an_edited_cell_is_not(tmp_path):
    nb = write_notebook(tmp_path / "01-x.ipynb", "x = 1", "print(x)")
    before = provenance.notebook_sha256(nb)
    saved = json.loads(nb.read_text())  # what JupyterLab writes after "Run all" and save
    saved["metadata"]["kernelspec"]["display_name"] = "Python 3 (ipykernel)"
    saved["metadata"]["language_info"] = {"name": "python", "version": "3.11.7"}
    saved["cells"][1]["execution_count"] = 2
    saved["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]
    saved["cells"][1]["metadata"]["scrolled"] = True
    nb.write_text(json.dumps(saved, indent=2))
    assert provenance.notebook_sha256(nb) == before
    saved["cells"][1]["source"] = "print(x + 1)"
    nb.write_text(json.dumps(saved))
    assert provenance.notebook_sha256(nb) != before
    saved["cells"][1]["source"] = "print(x)"
    saved["cells"][0]["metadata"]["tags"] = []  # no longer the parameters cell
    nb.write_text(json.dumps(saved))
    assert provenance.notebook_sha256(nb) != before


def test_a_source_edited_while_a_notebook_runs_leaves_its_report_stale(tmp_path, monkeypatch):
    from mnist_report.reporting import runner as notebooks

    nb = write_notebook(tmp_path / "01-x.ipynb", "x = 1", "print(x)")
    output = tmp_path / "reports" / "01-x.ipynb"

    def execute_and_edit(source, partial, **kwargs):  # papermill, as if the notebook were edited meanwhile
        write_notebook(nb, "x = 1", "print(x + 1)")
        Path(partial).write_text(Path(source).read_text())

    monkeypatch.setattr(notebooks.pm, "execute_notebook", execute_and_edit)
    start = provenance.inputs(nb)
    with pytest.warns(UserWarning, match="01-x.ipynb: its sources changed while it ran .*01-x.ipynb changed"):
        notebooks.execute(nb, output, {})
    assert json.loads(provenance.inputs_path(output).read_text()) == start
    assert provenance.differences(start, provenance.inputs(nb)) == [f"{nb} changed"]


def test_a_notebook_executed_elsewhere_writes_beside_its_output_and_never_into_the_report(tmp_path, monkeypatch):
    from mnist_report.paths import PROJECT_ROOT
    from mnist_report.reporting import outputs as report
    from mnist_report.reporting import runner as notebooks

    nb = write_notebook(tmp_path / "01-x.ipynb", "x = 1\noutput_dir = 'reports'  # where figures go", "print(x)")
    given = []

    def execute(source, partial, parameters, **kwargs):
        given.append(parameters)
        Path(partial).write_text(Path(source).read_text())

    monkeypatch.setattr(notebooks.pm, "execute_notebook", execute)
    notebooks.execute(nb, tmp_path / "elsewhere" / "01-x.ipynb", {"x": 2})
    assert given[-1] == {"x": 2, "output_dir": str(tmp_path / "elsewhere")}  # beside the executed notebook
    elsewhere = r"output_dir 'reports' \(relative to the project root: .*\) is not the executed notebook's folder"
    with pytest.raises(ValueError, match=elsewhere):
        notebooks.execute(nb, tmp_path / "elsewhere" / "01-x.ipynb", {"output_dir": "reports"})
    with pytest.raises(ValueError, match="reports/ holds the report made with the notebook's own parameters"):
        notebooks.execute(nb, PROJECT_ROOT / "reports" / "01-x.ipynb", {"x": 2})  # make run OUT=reports
    # and whatever runs, only make report's own run into reports/ writes there (through its staging)
    monkeypatch.setenv(report.STAGING_ENV, f"{tmp_path / 'elsewhere'}{os.pathsep}{tmp_path / 'stage'}")
    assert report.staged(PROJECT_ROOT / "reports") == PROJECT_ROOT / "reports" / "interactive"
    assert report.staged(tmp_path / "elsewhere") == tmp_path / "stage"


def test_check_report_cli(capsys, monkeypatch):
    monkeypatch.setattr(provenance, "check", lambda: {"01-a": [], "02-b": ["mnist_report/train.py changed"]})
    assert main(["check-report"]) == 1
    out = capsys.readouterr().out
    assert "01-a: up to date" in out and "02-b: STALE: mnist_report/train.py changed" in out
    monkeypatch.setattr(provenance, "check", lambda: {"01-a": []})
    assert main(["check-report"]) == 0


@pytest.mark.slow
def test_make_report_executes_exactly_the_stale_notebooks_and_says_why(tmp_path):
    from mnist_report.reporting import runner as notebooks

    nbs, reports = tmp_path / "notebooks", tmp_path / "reports"
    nbs.mkdir()
    for name in ("01-a", "02-b"):
        write_notebook(nbs / f"{name}.ipynb", "x = 1", f"from mnist_report import paths\nprint('{name} says', x)")
    (reports / "runs" / "0123456789abcdef").mkdir(parents=True)  # a run record no notebook reads
    lines = []
    build = lambda: notebooks.build_report(nbs, reports, timeout=120, print_fn=lines.append)  # noqa: E731
    assert build() == ["01-a", "02-b"]
    assert "01-a: reports/01-a.ipynb does not exist" in lines[0].replace(str(tmp_path) + "/", "")
    for name in ("01-a", "02-b"):  # each executed, with what it was made from: no run records read
        assert (reports / f"{name}.ipynb").is_file()
        assert json.loads((reports / f"{name}.inputs.json").read_text())["runs"] == {}
    # the site: a landing page and a page per executed notebook, showing its outputs
    site = reports / "site"
    assert (site / "index.html").is_file() and "02-b says 1" in (site / "02-b.html").read_text()
    assert any(line.startswith("== the site: ") for line in lines)
    # the store pruned to the runs the report reads: none here
    assert not list((reports / "runs").iterdir())
    assert "== removed 1 run record(s) no notebook of the report uses: 0123456789abcdef" in lines
    lines.clear()
    assert build() == [] and "nothing is stale: the report matches the working tree" in lines
    # the site is built every time (seconds): its appendix and the benchmark's table feed it too
    assert lines[-1].startswith("== the site: ")
    write_notebook(nbs / "02-b.ipynb", "x = 1", "from mnist_report import paths\nprint('02-b says', x + 1)")
    lines.clear()
    assert build() == ["02-b"]
    assert "01-a: up to date" in lines[0] and "== 02-b: " in lines[1] and "02-b.ipynb changed" in lines[1]
    assert "02-b says 2" in (site / "02-b.html").read_text()  # the site rebuilt with it


@pytest.mark.slow
def test_an_executed_notebook_records_the_runs_it_read(tmp_path, monkeypatch, raw):
    """The run records a notebook reads are listed in its metrics and its recorded inputs: a record trained
    again makes it stale, and pruning the store keeps it."""
    from dataclasses import replace

    from mnist_report.config import TrainConfig
    from mnist_report.reporting import runner
    from mnist_report.runs import store

    nbs, reports = tmp_path / "notebooks", tmp_path / "reports"
    nbs.mkdir()
    monkeypatch.setenv(store.STORE_ENV, str(reports / "runs"))  # the report's store beside it, as make report's
    config = TrainConfig(n_train=100, n_test=20, epochs=1)
    used, unused = fake_run(reports / "runs", config, raw), fake_run(reports / "runs", replace(config, seed=1), raw)
    nb = write_notebook(
        nbs / "01-r.ipynb",
        "output_dir = 'reports'",
        "from mnist_report import data, runs\nfrom mnist_report.config import TrainConfig\n"
        "from mnist_report.reporting.outputs import Outputs\n"
        "(run,) = runs.get([TrainConfig(n_train=100, n_test=20, epochs=1)], data.load_raw())\n"
        "Outputs(output_dir, '01-r').write_metrics({'accuracy': run.test_accuracy})",
    )
    runner.execute(nb, reports / "01-r.ipynb", {}, timeout=120)
    hashes = {used: store.read(reports / "runs" / used).sha256}
    assert json.loads((reports / "01-r.metrics.json").read_text())["records"] == hashes
    assert json.loads((reports / "01-r.inputs.json").read_text())["runs"] == hashes
    assert provenance.check(reports, nbs) == {"01-r": []}
    assert runner.prune(reports) == [unused] and [p.name for p in (reports / "runs").iterdir()] == [used]
    fake_run(reports / "runs", config, raw, seed_of_numbers=1)  # trained again, to other numbers
    assert provenance.check(reports, nbs) == {"01-r": [f"run record {used} changed"]}


def test_a_notebook_run_by_hand_never_writes_into_the_committed_report(monkeypatch, capsys):
    from mnist_report.paths import PROJECT_ROOT
    from mnist_report.reporting.outputs import STAGING_ENV, Outputs

    monkeypatch.delenv(STAGING_ENV, raising=False)
    out = Outputs("reports", "01-seed-reproduction")
    assert out.dir == PROJECT_ROOT / "reports" / "interactive"
    assert "reports/interactive/" in capsys.readouterr().out
    assert Outputs("reports/custom", "x").dir == PROJECT_ROOT / "reports" / "custom"  # another directory: as asked
