"""Checks every notebook's small execution gets (tests/test_notebook_0N.py call them).

Each notebook's tests live in a module of their own, which `make test` keeps on one pytest-xdist
worker (``--dist loadscope``), so that each notebook is executed once with training (the ``executed``
fixture, tests/conftest.py), on the tests' own store of runs ($MNIST_REPORT_STORE).

A second execution with the same parameters reads every run from that store: nbval re-executes a copy
of the executed notebook (``execute_again``) with a Dask scheduler that is not there, so that a run it
had to train would fail it, and compares its outputs with the first execution's, less the lines that
say which runs the first one trained (the one output a second execution lacks). Its figures and
metrics, written beside that copy, must be the first execution's, byte for byte and number for number
(``the_same_again``), and no record of the store is written meanwhile.

That training itself gives the same numbers again is checked where it is cheaper: the same seed twice
(tests/test_train.py), one worker against two (tests/test_runs.py), a run killed and resumed
(tests/test_resume.py), and notebook 01 reproduced from nothing (tests/test_notebook_01.py).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest.mock import ANY

import nbformat
from conftest import SMALL
from papermill.parameterize import parameterize_notebook

from mnist_report.paths import PROJECT_ROOT
from mnist_report.reporting import metrics as declared
from mnist_report.reporting import readme
from mnist_report.runs import store

SANITIZE = PROJECT_ROOT / "tests" / "nbval_sanitize.cfg"
# A scheduler address nothing listens on: a notebook that had to train a run would fail to reach it.
NOWHERE = "tcp://127.0.0.1:9"
# What runs.get prints for the runs it trains (and only for those): the only lines a second execution lacks.
TRAINING_LINES = re.compile(r"^(training \d+ of \d+ run\(s\) on .*|\[\d+/\d+ in \d+ min\] .*)\n", re.M)


def metrics_of(out_dir: Path, name: str) -> dict:
    return json.loads((out_dir / f"{name}.metrics.json").read_text())


def store_root() -> Path:
    """The tests' store of runs (tests/conftest.py sets it for the session)."""
    return store.places()[1]


def records(metrics: dict) -> dict[str, store.Run]:
    """The run records the notebook read (its metrics list them), each read back and checked whole."""
    return {key: store.read(store_root() / key, run_key=key) for key in metrics["records"]}


def record_of(metrics: dict, **config) -> store.Run:
    """The one record the notebook read whose configuration is ``config``."""
    found = [r for r in records(metrics).values() if r.config.to_dict() == config]
    assert len(found) == 1, f"{len(found)} records of {config}"
    return found[0]


def figures_and_metrics(name, out, out_dir):
    """No error, no carriage-return progress bar, metrics of this notebook as declared, the run records it
    read recorded with it and whole in the store, each trained with one TensorFlow thread, figures named
    after it."""
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "\r" not in text  # one line per line, no carriage-return progress bar
    assert TRAINING_LINES.search(text), "the first execution trains its runs, and says so"
    metrics = declared.load(out_dir / f"{name}.metrics.json")  # as metrics.py declares it
    assert metrics["notebook"] == name
    # what it was made from: the records it read, by content hash, as its recorded inputs list them
    recorded = json.loads((out_dir / f"{name}.inputs.json").read_text())
    assert metrics["records"] and recorded["runs"] == metrics["records"]
    for key, run in records(metrics).items():
        assert run.sha256 == metrics["records"][key]
        assert run.trained_on["threads"] == 1  # the tests' cluster: one TensorFlow thread per run
    figures = sorted(p.name for p in (out_dir / "figures").glob("*.png"))
    assert figures and all(p.startswith(name) for p in figures)
    # its README table renders from these metrics (the committed one is checked only once regenerated)
    left: dict = {}
    (table,) = readme.blocks(out_dir, left).values()
    assert not left and table.count("\n|") >= 5


def written() -> dict[str, tuple[int, int]]:
    """Each record of the store, as the file system last saw it written."""
    return {p.parent.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store_root().glob("*/run.json")}


def execute_again(name, out, again_dir) -> dict:
    """nbval re-executes a copy of the executed notebook ``out`` in ``again_dir``: the same parameters but
    its figures and metrics written beside the copy, and a scheduler that is not there (a run that had to
    train would fail the notebook); its outputs less the lines of the runs the first execution trained.
    {"nbval": the completed process, "written": whether any record of the store was written meanwhile}."""
    nb = nbformat.read(out, as_version=4)
    assert nb.metadata.papermill.parameters == {**SMALL[name], "output_dir": str(out.parent), "scheduler": ANY}
    nb = parameterize_notebook(nb, {**SMALL[name], "output_dir": str(again_dir), "scheduler": NOWHERE})
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        for o in cell.outputs:
            if o.output_type == "stream":
                o.text = TRAINING_LINES.sub("", o.text)
        cell.outputs = [o for o in cell.outputs if o.output_type != "stream" or o.text]
    copy = again_dir / out.name
    nbformat.write(nb, copy)
    before = written()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--nbval",
            "--nbval-current-env",
            "--nbval-sanitize-with",
            str(SANITIZE),
            "--rootdir",
            str(again_dir),
            str(copy),
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return {"nbval": r, "written": written() != before, "dir": again_dir}


def nbval_reruns_to_the_same_outputs(again: dict):
    """nbval's second execution printed what the first did (the same numbers and text, cell by cell; nbval
    leaves images out: ``the_same_again`` compares the figure files), memory addresses sanitised
    (nbval_sanitize.cfg)."""
    r = again["nbval"]
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and " failed" not in r.stdout


def the_same_again(name, first_dir, again: dict):
    """The second execution read every run from the store, and wrote the figures (byte for byte) and the
    metrics of the first."""
    assert not again["written"], "the second execution wrote a run record"
    second_dir = again["dir"]
    assert (second_dir / f"{name}.metrics.json").is_file(), again["nbval"].stdout[-4000:]
    assert metrics_of(second_dir, name) == metrics_of(first_dir, name)
    figures = {p.name: p.read_bytes() for p in (first_dir / "figures").glob("*.png")}
    assert {p.name: p.read_bytes() for p in (second_dir / "figures").glob("*.png")} == figures
