"""`make report`'s outputs are all-or-nothing per notebook, and record what they were made from."""

import json
import os
from pathlib import Path

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


def test_check_report_names_what_changed(tmp_path):
    root = tmp_path
    for d in ("notebooks", "reports", "mnist_report", "data/mnist"):
        (root / d).mkdir(parents=True)
    nb = root / "notebooks" / "01-x.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["from mnist_report import model\n"]}]}))
    (root / "mnist_report" / "model.py").write_text("from mnist_report.io import x\n")
    (root / "mnist_report" / "io.py").write_text("x = 1\n")
    (root / "mnist_report" / "bench.py").write_text("b = 1\n")
    (root / "data" / "mnist" / "SHA256SUMS").write_text("x\n")
    check = lambda: provenance.check(root / "reports", root / "notebooks", root)  # noqa: E731
    assert check() == {"01-x": ["reports/01-x.ipynb does not exist"]}
    (root / "reports" / "01-x.ipynb").write_text("{}")
    assert "made before inputs were recorded" in check()["01-x"][0]
    provenance.record(nb, root / "reports" / "01-x.ipynb", root)
    assert check() == {"01-x": []}
    (root / "mnist_report" / "bench.py").write_text("b = 2\n")  # the notebook does not import it: up to date
    (root / "mnist_report" / "new.py").write_text("")
    assert check() == {"01-x": []}
    (root / "data" / "mnist" / "README.md").write_text("where the files come from")  # prose: not an input
    assert check() == {"01-x": []}
    recorded = json.loads((root / "reports" / "01-x.inputs.json").read_text())
    recorded["data"]["data/mnist/README.md"] = "0" * 64  # as records made before it was left out hold it
    assert provenance.differences(recorded, provenance.inputs(nb, root), root) == [
        "data/mnist/README.md is no longer a recorded input"]  # fmt: skip
    (root / "data" / "label-errors.json").write_text("[]")  # a list beside the MNIST files is data too
    assert check() == {"01-x": ["data/label-errors.json is new"]}
    provenance.record(nb, root / "reports" / "01-x.ipynb", root)
    (root / "mnist_report" / "io.py").write_text("x = 2\n")  # imported by what the notebook imports
    assert check() == {"01-x": ["mnist_report/io.py changed"]}
    (root / "mnist_report" / "model.py").write_text("from mnist_report.io import x\nfrom mnist_report import new\n")
    nb.write_text(nb.read_text().replace("import model", "import model  # edited"))
    assert check() == {"01-x": ["notebooks/01-x.ipynb changed", "mnist_report/io.py changed",
                                "mnist_report/model.py changed", "mnist_report/new.py is new"]}
    provenance.record(nb, root / "reports" / "01-x.ipynb", root)
    (root / "mnist_report" / "model.py").write_text("from mnist_report.io import x\n")  # new.py still exists
    assert check() == {"01-x": ["mnist_report/model.py changed", "mnist_report/new.py no longer feeds it"]}
    (root / "mnist_report" / "new.py").unlink()
    assert check() == {"01-x": ["mnist_report/model.py changed", "mnist_report/new.py is gone"]}
    recorded = json.loads((root / "reports" / "01-x.inputs.json").read_text())
    recorded["packages"]["keras"] = "0.0.1"
    changed = provenance.differences(recorded, provenance.inputs(nb, root))
    assert any(line.startswith("package keras 0.0.1 -> ") for line in changed)


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
        write_notebook(nbs / f"{name}.ipynb", "x = 1", "from mnist_report import paths\nprint(x)")
    lines = []
    build = lambda: notebooks.build_report(nbs, reports, timeout=120, print_fn=lines.append)  # noqa: E731
    assert build() == ["01-a", "02-b"]
    assert "01-a: reports/01-a.ipynb does not exist" in lines[0].replace(str(tmp_path) + "/", "")
    assert (reports / "01-a.html").is_file() and (reports / "02-b.inputs.json").is_file()
    lines.clear()
    assert build() == [] and lines[-1] == "nothing is stale: the report matches the working tree"
    write_notebook(nbs / "02-b.ipynb", "x = 1", "from mnist_report import paths\nprint(x + 1)")  # a changed cell
    lines.clear()
    assert build() == ["02-b"]
    assert "01-a: up to date" in lines[0] and "== 02-b: " in lines[1] and "02-b.ipynb changed" in lines[1]


def test_a_notebook_run_by_hand_never_writes_into_the_committed_report(monkeypatch, capsys):
    from mnist_report.paths import PROJECT_ROOT
    from mnist_report.reporting.outputs import STAGING_ENV, Outputs

    monkeypatch.delenv(STAGING_ENV, raising=False)
    out = Outputs("reports", "01-seed-reproduction")
    assert out.dir == PROJECT_ROOT / "reports" / "interactive"
    assert "reports/interactive/" in capsys.readouterr().out
    assert Outputs("reports/custom", "x").dir == PROJECT_ROOT / "reports" / "custom"  # another directory: as asked
