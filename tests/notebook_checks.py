"""Checks every notebook's small execution gets (tests/test_notebook_0N.py call them).

Each notebook's tests live in a module of their own, which `make test` keeps on one pytest-xdist
worker (``--dist loadscope``), so that each notebook is executed once (the ``executed`` fixture,
tests/conftest.py); its nbval rerun is the module's last test, since it writes its outputs again.

The nbval rerun reads the runs the first execution cached (training again would double the suite's
time): it checks that everything the notebook computes from its runs comes out the same. That
training itself gives the same numbers again is checked where it is cheaper: the same seed twice
(tests/test_train.py), one worker against two (tests/test_runs.py), a run killed and resumed
(tests/test_resume.py), and notebook 01 reproduced from nothing (tests/test_notebook_01.py).
"""

import json
import os
import subprocess
import sys

import nbformat

from mnist_report.paths import PROJECT_ROOT

SANITIZE = PROJECT_ROOT / "tests" / "nbval_sanitize.cfg"


def figures_and_metrics(name, out, out_dir):
    """No error, no carriage-return progress bar, metrics of this notebook with its executor, figures named after it."""
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


def nbval_reruns_to_the_same_outputs(name, out, out_dir):
    """nbval re-executes the small executed copy (papermill's injected parameters kept, so its runs are
    read from the first execution's cache) and compares its outputs with papermill's: the same numbers
    on a second execution, whether each run was cached or trained, timings and addresses sanitised."""
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(SANITIZE), "--rootdir", str(out.parent), str(out)],
        capture_output=True, text=True, cwd=PROJECT_ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout
