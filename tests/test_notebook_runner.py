import os
import signal
import subprocess
import sys

import pytest
from conftest import write_notebook

from mnist_report.__main__ import main
from mnist_report.reporting import runner as notebooks


@pytest.mark.parametrize(
    "text, value",
    [("5", 5), ("0.5", 0.5), ("None", None), ("True", True), ("abc", "abc"), ("1e-3", 0.001), ("[1, 2]", "[1, 2]")],
)
def test_values_are_typed_like_papermill(text, value):
    assert notebooks.parse_value(text) == value


@pytest.fixture
def tiny(tmp_path):
    """A two-cell notebook: parameters (x = 1), then a cell that fails when x == 0."""
    return write_notebook(tmp_path / "tiny.ipynb", "x = 1", "assert x != 0, 'x must not be zero'\nprint('x is', x)")


def test_unknown_parameter_is_refused_before_running(tiny, tmp_path):
    with pytest.raises(ValueError, match="unknown parameter\\(s\\) y; its parameters are x"):
        notebooks.execute(tiny, tmp_path / "out.ipynb", {"y": 2})
    assert not (tmp_path / "out.ipynb").exists()


@pytest.mark.slow
def test_a_failing_notebook_leaves_the_previous_output_and_names_the_cell(tiny, tmp_path, capsys):
    out = tmp_path / "out" / "tiny.ipynb"
    notebooks.execute(tiny, out, {"x": 3})
    before = out.read_bytes()
    assert b"x is 3" in before
    code = main(["notebook", str(tiny), str(out), "-p", "x", "0"])
    err = capsys.readouterr().err
    assert code == 1 and "FAILED" in err and "x must not be zero" in err
    assert "the cell that begins `assert x != 0" in err
    assert out.read_bytes() == before  # the previous executed notebook is intact
    assert (out.parent / "tiny.failed.ipynb").is_file()
    assert not list(out.parent.glob(".*partial*"))
    assert main(["notebook", str(tiny), str(out), "-p", "x", "4"]) == 0
    assert not (out.parent / "tiny.failed.ipynb").exists() and b"x is 4" in out.read_bytes()


@pytest.mark.slow
def test_a_kernel_that_dies_says_why_and_leaves_nothing_behind(tmp_path, capsys):
    nb = write_notebook(
        tmp_path / "dies.ipynb",
        "x = 1",
        "import os, sys\nprint('out of memory, say', file=sys.__stderr__, flush=True)\nos._exit(3)",
    )
    out = tmp_path / "out" / "dies.ipynb"
    assert main(["notebook", str(nb), str(out), "--timeout", "60"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("FAILED: ") and "the kernel's last messages:\nout of memory, say" in err, err
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no partial notebook, no staging


@pytest.mark.slow
def test_a_cell_past_the_time_limit_fails_with_its_copy_kept_and_says_how_to_allow_more(tmp_path, capsys):
    nb = write_notebook(tmp_path / "long.ipynb", "x = 1", "print('started', x)", "import time\ntime.sleep(60)")
    out = tmp_path / "out" / "long.ipynb"
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert main(["notebook", str(nb), str(out), "--timeout", "3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("FAILED: ") and "ran longer than the 3 s allowed to one cell (--timeout" in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.parent.iterdir()) == ["long.failed.ipynb"]  # no output, no partial, no staging
    assert "started 1" in (out.parent / "long.failed.ipynb").read_text()  # the cells before the one that timed out
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # the runner's handlers are gone again


def test_ctrl_c_in_train_ends_with_a_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    import mnist_report.__main__ as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_train", interrupted)
    assert main(["train", "--save-model", str(tmp_path / "m.keras")]) == 130
    assert capsys.readouterr().err == "INTERRUPTED: train did not finish; nothing was written\n"


def test_a_dict_or_list_parameter_is_given_as_yaml(tiny, tmp_path, monkeypatch, capsys):
    given = []
    monkeypatch.setattr(notebooks, "execute", lambda nb, out, params, timeout: given.append(params) or out)
    args = ["notebook", str(tiny), str(tmp_path / "o.ipynb"), "-p", "x", "2"]
    assert main([*args, "-y", "variants", "{full recipe: {}, plain: {augment: false}}"]) == 0
    assert given == [{"x": 2, "variants": {"full recipe": {}, "plain": {"augment": False}}}]
    assert main([*args, "-y", "variants", "{full recipe: ["]) == 2
    assert "-y variants: not YAML" in capsys.readouterr().err


def test_cli_unknown_parameter_exit_code(tiny, tmp_path, capsys):
    assert main(["notebook", str(tiny), str(tmp_path / "o.ipynb"), "-p", "epochs", "3"]) == 2
    assert "unknown parameter(s) epochs" in capsys.readouterr().err


@pytest.fixture(scope="module")
def slow_notebook(tmp_path_factory):
    """A notebook that writes its metrics, then sleeps for ``wait`` seconds; executed once, not waiting:
    (notebook, its executed copy, what its output folder holds)."""
    tmp_path = tmp_path_factory.mktemp("slow")
    nb = write_notebook(
        tmp_path / "slow.ipynb",
        "wait = 0\noutput_dir = '.'",
        "from mnist_report.reporting.outputs import Outputs\nOutputs(output_dir, 'slow').write_metrics({'wait': wait})",
        "import time\nprint('sleeping', flush=True)\ntime.sleep(wait)",
    )
    out = tmp_path / "out" / "slow.ipynb"
    notebooks.execute(nb, out, {"wait": 0, "output_dir": str(out.parent)})
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    assert "slow.metrics.json" in before
    return nb, out, before


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_notebook_leaves_nothing_half_written(slow_notebook, sig):
    """`kill` or Ctrl-C while a cell runs: exit 130, a line saying so, the previous output intact,
    and no half-written notebook or staged outputs left behind; no traceback, the runner's or its
    kernel's."""
    nb, out, before = slow_notebook  # each interrupted run leaves it as it was (checked below)
    params = ["-p", "output_dir", str(out.parent)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnist_report", "notebook", str(nb), str(out), "-p", "wait", "120", *params],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []
    for line in proc.stdout:  # papermill logs each cell's output as it comes
        lines.append(line)
        if "sleeping" in line:
            break
    assert proc.poll() is None, "".join(lines)
    assert (out.parent / ".slow.staging" / "slow.metrics.json").exists()
    os.killpg(proc.pid, sig)  # as a terminal does: the runner and its kernel
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(lines) + rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith(f"INTERRUPTED ({sig.name})") and "left as they were" in last
    assert "KeyboardInterrupt" not in rest  # the runner's own exit is that line, not a traceback
    assert "Traceback" not in rest and "ZMQError" not in rest, rest  # nor the kernel's, about its closed socket
    assert "Task was destroyed" not in rest, rest  # nor asyncio's, about the kernel client's tasks
    assert "without encryption" not in "".join(lines) + rest  # the kernel talks over IPC, not TCP (notebooks.py)
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before


def test_a_cell_may_run_a_day_unless_told_otherwise(tiny, tmp_path, monkeypatch):
    """Notebook 03's longest cells train for hours on a 2-core CPU: the default limit per cell is a day."""
    limits = []

    def fake_execute(source, partial, **kwargs):
        limits.append(kwargs["execution_timeout"])
        raise KeyboardInterrupt("SIGINT")  # stop there: nothing runs, nothing is written

    monkeypatch.setattr(notebooks.pm, "execute_notebook", fake_execute)
    assert main(["notebook", str(tiny), str(tmp_path / "o.ipynb")]) == 130
    assert main(["notebook", str(tiny), str(tmp_path / "o.ipynb"), "--timeout", "5"]) == 130
    assert limits == [notebooks.CELL_TIMEOUT, 5] and notebooks.CELL_TIMEOUT == 24 * 3600


def test_a_signal_ignored_at_the_start_stays_ignored(tiny, tmp_path, monkeypatch):
    """`nohup make report`: SIGHUP is ignored, and a closed terminal must not stop a run of hours."""
    seen = []

    def fake_execute(source, partial, **kwargs):
        seen.append((signal.getsignal(signal.SIGHUP), signal.getsignal(signal.SIGTERM)))
        raise KeyboardInterrupt("SIGINT")  # stop there: nothing runs, nothing is written

    monkeypatch.setattr(notebooks.pm, "execute_notebook", fake_execute)
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert main(["notebook", str(tiny), str(tmp_path / "o.ipynb")]) == 130
        assert seen[0][0] is signal.SIG_IGN and seen[0][1] is not signal.SIG_IGN  # SIGTERM still stops it cleanly
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_only_make_reports_runs_go_to_the_committed_store(tiny, tmp_path, monkeypatch):
    """A notebook executed into the committed reports/ (make report) reads and writes its runs in
    reports/runs, committed with it; executed anywhere else, in the store the caller has
    ($MNIST_REPORT_STORE, else the local cache). The caller's setting is left as it was."""
    from pathlib import Path

    from mnist_report.runs.store import STORE_ENV

    seen = []

    def fake_execute(source, partial, **kwargs):
        seen.append(os.environ.get(STORE_ENV))
        Path(partial).write_text(Path(source).read_text())

    monkeypatch.setattr(notebooks.pm, "execute_notebook", fake_execute)
    # a project of its own, so that its reports/ is not the real one
    monkeypatch.setattr(notebooks, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(notebooks, "STORE", tmp_path / "reports" / "runs")
    callers = os.environ[STORE_ENV]  # the tests' own store (conftest)
    notebooks.execute(tiny, tmp_path / "reports" / "tiny.ipynb", {})
    notebooks.execute(tiny, tmp_path / "elsewhere" / "tiny.ipynb", {})
    assert seen == [str(tmp_path / "reports" / "runs"), callers]
    assert os.environ[STORE_ENV] == callers
    monkeypatch.delenv(STORE_ENV)
    notebooks.execute(tiny, tmp_path / "reports" / "tiny.ipynb", {})
    assert seen[-1] == str(tmp_path / "reports" / "runs") and STORE_ENV not in os.environ
