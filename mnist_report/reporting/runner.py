"""Execute a notebook with papermill: parameters checked against its `parameters` cell first, the
output written atomically, and a failure reported by notebook and cell."""

from __future__ import annotations

import ast
import os
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

import papermill as pm
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError

from mnist_report.io import read_json
from mnist_report.paths import PROJECT_ROOT, from_root
from mnist_report.reporting import provenance
from mnist_report.reporting.outputs import STAGING_ENV
from mnist_report.runs.store import STORE, STORE_ENV


class IPCKernelManager(AsyncKernelManager):
    """The kernel reached over Unix sockets in the temporary directory rather than TCP on localhost:
    no port for another user of the machine to talk to, and no "Kernel is running over TCP without
    encryption" warning on every run."""

    # Where the kernel process's own stderr goes (``execute`` sets it for each run): not the user's
    # terminal, where ipykernel would print a ZMQError traceback about its closed socket after every
    # interrupted run. A failed run shows its end (a kernel that died says why there).
    stderr_to: Path | None = None

    def __init__(self, **kwargs):
        kwargs.setdefault("transport", "ipc")
        kwargs.setdefault("ip", str(Path(tempfile.gettempdir()) / f"mnist-report-kernel-{uuid.uuid4().hex[:12]}"))
        super().__init__(**kwargs)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        if IPCKernelManager.stderr_to is None:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        with open(IPCKernelManager.stderr_to, "ab") as log:  # the kernel keeps its own copy of the descriptor
            return await super()._async_launch_kernel(kernel_cmd, **{**kw, "stderr": log})


def _kernel_log_tail(path: Path, lines: int = 20) -> str:
    text = path.read_text(errors="replace").strip() if path.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])


def parse_value(text: str) -> Any:
    """A ``-p`` value as papermill's CLI types it: None, booleans, ints, floats, else a string."""
    if text in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check_parameters(notebook: str | Path, params: dict[str, Any]) -> dict:
    """Raise ValueError naming any parameter the notebook's `parameters` cell does not define; else
    return the parameters it defines (papermill's description of each)."""
    known = pm.inspect_notebook(str(notebook))
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"{Path(notebook).name}: unknown parameter(s) {', '.join(unknown)}; its parameters are {', '.join(known)}"
        )
    return known


def parameter_value(params: dict[str, Any], known: dict, name: str) -> Any:
    """The value parameter ``name`` takes in an execution with ``params``: as given, else the default
    as written in the parameters cell (``known``: papermill's ``inspect_notebook``, which gives it as
    source text), as a Python value where it is a literal, else that text."""
    if name in params:
        return params[name]
    try:
        return ast.literal_eval(known[name]["default"])
    except (ValueError, SyntaxError):
        return known[name]["default"]


# parameters that say where a notebook writes or trains, not what it computes
PLACES = ("output_dir", "scheduler", "workers")


def _beside_the_output(notebook: Path, output: Path, params: dict[str, Any], known: dict) -> dict[str, Any]:
    """``params`` with ``output_dir`` (where a notebook writes its figures and metrics) set to the
    executed notebook's folder, where it is not given; refused where it is given elsewhere, since only
    that folder's outputs are staged (published whole or not at all). The committed ``reports/`` takes
    only a run with the notebook's own parameters (``make report``'s): other values go elsewhere."""
    folder = output.parent.resolve()
    computing = sorted(set(params) - set(PLACES))
    if folder == (PROJECT_ROOT / "reports").resolve() and computing:
        raise ValueError(
            f"{notebook.name}: reports/ holds the report made with the notebook's own parameters "
            f"(make report); with other values of {', '.join(computing)}, execute it into another "
            f"folder (make run OUT=reports/custom)"
        )
    if "output_dir" not in known:
        return params
    if "output_dir" not in params:
        default = parameter_value(params, known, "output_dir")  # as written in the parameters cell
        if isinstance(default, str) and from_root(default).resolve() == folder:
            return params  # nothing to inject (as `make report` runs the notebooks into reports/)
        return {**params, "output_dir": str(folder)}
    if from_root(params["output_dir"]).resolve() != folder:
        raise ValueError(
            f"{notebook.name}: output_dir {params['output_dir']!r} (relative to the project root: "
            f"{from_root(params['output_dir']).resolve()}) is not the executed notebook's folder ({folder}); its "
            f"figures and metrics are written beside the executed notebook: leave output_dir out, or give the "
            f"same folder to both"
        )
    return params


# Seconds one cell may run before papermill stops the notebook: long enough for a cell that trains hours of
# runs on a small machine, short enough to end a hung kernel within a day.
CELL_TIMEOUT = 24 * 3600


def execute(notebook: str | Path, output: str | Path, params: dict[str, Any], timeout: int = CELL_TIMEOUT) -> Path:
    """Run ``notebook`` into ``output``.

    The output is written beside the target and renamed only when every cell succeeded, so a failed
    or interrupted run leaves the previous executed notebook untouched. A cell that raises, or runs
    longer than ``timeout`` seconds, raises RuntimeError and keeps the copy executed so far as
    ``<stem>.failed.ipynb``; a kernel that dies (nbclient's DeadKernelError, a RuntimeError) or an
    interruption leaves nothing behind, the kernel's last messages in the exception's ``__notes__``.
    """
    notebook, output = Path(notebook), Path(output)
    if output.suffix != ".ipynb" or output.is_dir():
        raise ValueError(
            f"{output}: the executed notebook is written to a file whose name ends in .ipynb (not a folder)"
        )
    params = _beside_the_output(notebook, output, params, check_parameters(notebook, params))
    made_from = provenance.inputs(notebook)  # the sources as they are when it starts (it may run for hours)
    saved_store = os.environ.get(STORE_ENV)
    if output.parent.resolve() == (PROJECT_ROOT / "reports").resolve():
        os.environ[STORE_ENV] = str(STORE)  # the report's new runs are committed with it
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.partial.ipynb")
    failed = output.with_name(f"{output.stem}.failed.ipynb")
    # Figures and metrics meant for the output's directory go to a staging directory first.
    stage = output.with_name(f".{output.stem}.staging")
    shutil.rmtree(stage, ignore_errors=True)
    saved_env = os.environ.get(STAGING_ENV)
    os.environ[STAGING_ENV] = f"{output.parent.resolve()}{os.pathsep}{stage.resolve()}"
    fd, kernel_log = tempfile.mkstemp(prefix="mnist-report-kernel-", suffix=".log")
    os.close(fd)
    IPCKernelManager.stderr_to = kernel_log = Path(kernel_log)
    try:
        pm.execute_notebook(
            str(notebook),
            str(partial),
            parameters=params,
            kernel_name="python3",
            cwd=str(PROJECT_ROOT),
            execution_timeout=timeout,
            log_output=True,
            progress_bar=False,
            kernel_manager_class=IPCKernelManager,
        )
    except pm.PapermillExecutionError as e:
        os.replace(partial, failed)
        shutil.rmtree(stage, ignore_errors=True)
        first_line = next((line for line in e.source.splitlines() if line.strip()), "")
        tail = _kernel_log_tail(kernel_log)  # a Dask worker's restart, say, is told there
        raise RuntimeError(
            f"{notebook} failed in the cell that begins `{first_line}` (execution count {e.exec_count}): "
            f"{e.ename}: {e.evalue}. The executed copy up to the failure is {failed}; {output} and its "
            f"figures and metrics were left as they were" + (f"\nthe kernel's last messages:\n{tail}" if tail else "")
        ) from None
    except CellTimeoutError:  # a cell ran past the limit (the kernel is stopped)
        kept = partial.exists()
        if kept:
            os.replace(partial, failed)
        shutil.rmtree(stage, ignore_errors=True)
        raise RuntimeError(
            f"{notebook}: a cell ran longer than the {timeout} s allowed to one cell (--timeout, or TIMEOUT= for "
            f"make); "
            + (f"the executed copy up to that cell is {failed}; " if kept else "")
            + f"{output} and its figures and metrics were left as they were"
        ) from None
    except BaseException as e:  # interrupted, or the kernel died: nothing half-written remains
        partial.unlink(missing_ok=True)
        shutil.rmtree(stage, ignore_errors=True)
        tail = "" if isinstance(e, KeyboardInterrupt | SystemExit) else _kernel_log_tail(kernel_log)
        if tail:  # BaseException.add_note, by hand: Python 3.10 has none
            e.__notes__ = [*getattr(e, "__notes__", []), f"the kernel's last messages:\n{tail}"]
        raise
    finally:
        IPCKernelManager.stderr_to = None
        kernel_log.unlink(missing_ok=True)
        for name, saved in ((STAGING_ENV, saved_env), (STORE_ENV, saved_store)):
            if saved is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = saved
    metrics = stage / f"{output.stem}.metrics.json"
    made_from["runs"] = read_json(metrics).get("records", {}) if metrics.is_file() else {}
    publish(stage, output.parent, output.stem)
    provenance.record(output, made_from)
    os.replace(partial, output)  # last: Make sees the notebook as up to date only when all is in place
    failed.unlink(missing_ok=True)
    changed = provenance.differences(made_from, provenance.inputs(notebook, made_from["runs"]))
    if changed:
        warnings.warn(
            f"{notebook.name}: its sources changed while it ran ({'; '.join(changed)}); its outputs are "
            f"recorded as made from the sources at its start, so `make check-report` calls it stale",
            stacklevel=2,
        )
    return output


def publish(stage: Path, target: Path, name: str) -> None:
    """Move a successful run's staged files into ``target``, replacing the notebook's previous
    figures (those the new run no longer makes are removed) and metrics."""
    if not stage.is_dir():
        return
    new_figures = {p.name for p in (stage / "figures").glob("*")} if (stage / "figures").is_dir() else set()
    for old in (target / "figures").glob(f"{name}-*.png"):
        if old.name not in new_figures:
            old.unlink()
    for path in sorted(stage.rglob("*")):
        if path.is_file():
            destination = target / path.relative_to(stage)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, destination)
    shutil.rmtree(stage, ignore_errors=True)


def build_report(
    notebooks_dir: Path = PROJECT_ROOT / "notebooks",
    reports: Path = PROJECT_ROOT / "reports",
    timeout: int = CELL_TIMEOUT,
    print_fn=print,
) -> list[str]:
    """Execute exactly the stale notebooks, in order, each with the reason it runs; then the site, and
    the run store pruned to the runs the report uses. Returns the names of the notebooks executed.

    Stale: its ``reports/NAME.inputs.json`` differs from the working tree (``provenance.check``).
    """
    from mnist_report.reporting import site

    executed = []
    for name, reasons in provenance.check(reports, notebooks_dir).items():
        if reasons:
            print_fn(f"== {name}: {'; '.join(reasons)}; executing it")
            execute(Path(notebooks_dir) / f"{name}.ipynb", Path(reports) / f"{name}.ipynb", {}, timeout=timeout)
            executed.append(name)
        else:
            print_fn(f"== {name}: up to date (its recorded inputs match the working tree); not executed")
    if not executed:
        print_fn("nothing is stale: the report matches the working tree")
    # always (seconds): its appendix, the benchmark's table and the theme feed it too
    print_fn(f"== the site: {site.build(Path(reports), Path(reports) / 'site')}")
    removed = prune(Path(reports))
    if removed:
        print_fn(f"== removed {len(removed)} run record(s) no notebook of the report uses: {', '.join(removed)}")
    return executed


def prune(reports: Path) -> list[str]:
    """Remove the run records no notebook of the report read (the store holds exactly the report's runs)."""
    if any("runs" not in read_json(p) for p in reports.glob("*.inputs.json")):
        return []  # a notebook's record predates the run store: what it used is unknown, so nothing goes
    keep = provenance.used_runs(reports)
    gone = sorted(  # not a folder being written (.KEY.partial-*) by a process training now
        p.name for p in (reports / "runs").glob("*") if p.is_dir() and p.name not in keep and not p.name.startswith(".")
    )
    for name in gone:
        shutil.rmtree(reports / "runs" / name)
    return gone
