"""What a report was made from, and whether the working tree still matches it.

Beside each executed notebook, ``make report`` writes ``reports/NAME.inputs.json``: the SHA-256 of
the notebook's cells, of every source file of the package, of the data files, the package versions,
and the content hash of each run record the notebook read. ``make check-report`` recomputes them and
names every difference; ``make report`` re-executes the notebooks that differ. Any change to the
package re-executes every notebook: with the runs stored, that takes minutes, and no list of which
module feeds which notebook has to be kept right.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mnist_report import machine
from mnist_report.io import read_json, write_json
from mnist_report.paths import PROJECT_ROOT

PACKAGE = "mnist_report"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def notebook_sha256(path: Path) -> str:
    """SHA-256 of what a notebook computes: each cell's type, source and tags, in order. Outputs,
    execution counts and metadata are left out, so that opening, running and saving a notebook in
    JupyterLab (which writes them) does not make its report stale; an edited cell does."""
    cells = json.loads(Path(path).read_text()).get("cells", [])
    content = [[c.get("cell_type"), _source(c), sorted(c.get("metadata", {}).get("tags", []))] for c in cells]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell.get("source"), list) else cell.get("source", "")


def code_files(root: Path = PROJECT_ROOT) -> list[Path]:
    return sorted((Path(root) / PACKAGE).rglob("*.py"))


def data_files(root: Path = PROJECT_ROOT) -> list[Path]:
    """The data a report is computed from: the MNIST files, their checksums and the lists beside them (the
    test-set label errors); not the folder's README, whose prose reaches no number."""
    mnist = root / "data" / "mnist"
    return [*sorted(mnist.glob("*.gz")), *sorted(mnist.glob("SHA256SUMS")), *sorted((root / "data").glob("*.json"))]


def run_hashes(keys, store: Path) -> dict[str, str | None]:
    """Each run record's content hash as stored now (None where it is gone or unreadable)."""
    found = {}
    for key in keys:
        try:
            found[key] = read_json(Path(store) / key / "run.json")["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            found[key] = None
    return found


def inputs(notebook: str | Path, runs: dict[str, str] | None = None, root: Path = PROJECT_ROOT) -> dict:
    """What a notebook's outputs depend on, paths relative to ``root``; ``runs``: the records it read
    (key: content hash), as its metrics list them."""
    notebook = Path(notebook).resolve()
    return {
        "notebook": {_relative(notebook, root): notebook_sha256(notebook)},
        "code": {_relative(p, root): sha256(p) for p in code_files(root)},
        "data": {_relative(p, root): sha256(p) for p in data_files(root)},
        "packages": machine.versions(),
        "runs": dict(sorted((runs or {}).items())),
    }


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:  # a notebook outside the project (a test's, a user's)
        return str(path)


def inputs_path(executed: str | Path) -> Path:
    executed = Path(executed)
    return executed.with_name(f"{executed.stem}.inputs.json")


def record(executed: str | Path, made_from: dict) -> Path:
    """Write ``NAME.inputs.json`` beside the executed notebook."""
    return write_json(inputs_path(executed), made_from)


def differences(recorded: dict, current: dict) -> list[str]:
    """Each input that changed, was added or went away, in words."""
    found = []
    names = {"packages": "package ", "runs": "run record "}
    for part in ("notebook", "code", "data", "packages", "runs"):
        old, new = recorded.get(part, {}), current.get(part, {})
        prefix = names.get(part, "")
        for key in sorted(set(old) | set(new)):
            if key not in new or new[key] is None:
                still = part in ("code", "data") and (PROJECT_ROOT / key).is_file()
                found.append(f"{prefix}{key} {'is no longer a recorded input' if still else 'is gone'}")
            elif key not in old:
                found.append(f"{prefix}{key} is new")
            elif old[key] != new[key]:
                found.append(
                    f"package {key} {old[key]} -> {new[key]}" if part == "packages" else f"{prefix}{key} changed"
                )
    code = [f for f in found if f.startswith(f"{PACKAGE}/")]
    if len(code) > 3:  # any change re-executes every notebook: say how many files, name a few
        found = [f for f in found if f not in code] + [
            f"the package changed ({len(code)} files: {', '.join(code[:3])}, ...)"
        ]
    return found


def check(
    reports: Path = PROJECT_ROOT / "reports", notebooks: Path = PROJECT_ROOT / "notebooks", root: Path = PROJECT_ROOT
) -> dict[str, list[str]]:
    """For every source notebook: the reasons its report is stale (an empty list: up to date)."""
    result = {}
    for nb in sorted(Path(notebooks).glob("[0-9]*.ipynb")):
        executed = Path(reports) / nb.name
        record_file = inputs_path(executed)
        if not executed.is_file():
            result[nb.stem] = [f"{_relative(executed, root)} does not exist"]
        elif not record_file.is_file():
            result[nb.stem] = [f"{_relative(record_file, root)} does not exist"]
        else:
            recorded = read_json(record_file)
            runs = run_hashes(recorded.get("runs", {}), Path(reports) / "runs")
            result[nb.stem] = differences(recorded, inputs(nb, runs, root))
    return result


def used_runs(reports: Path = PROJECT_ROOT / "reports") -> set[str]:
    """The run records the committed report's notebooks read, by key."""
    return {key for path in Path(reports).glob("*.inputs.json") for key in read_json(path).get("runs", {})}
