"""What a report was made from, and whether the working tree still matches it.

Next to each executed notebook, ``make report`` writes ``reports/NAME.inputs.json``: the SHA-256 of
the source notebook's cells (``notebook_sha256``), of each package module that feeds it, of each
data file, and the versions of the packages that compute its numbers and draw its figures.
``make check-report`` recomputes them from the working tree and names every difference; ``make
report`` re-executes exactly the notebooks that differ. File times play no part (a fresh clone's are arbitrary).

The modules that feed a notebook are found, not listed: those its code cells import from the package,
and those they import in turn (``feeding_modules``). The report machinery (this module, the notebook
runner, the README writer, the benchmark) feeds no notebook, so editing it leaves the report current.
"""

from __future__ import annotations

import ast
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


def _imported_modules(code: str, package_dir: Path) -> set[str]:
    """The package's modules that ``code`` imports (by name, e.g. ``"train"``), anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            parts = node.module.split(".")
            names.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith(PACKAGE + "."))
    return {n for n in names if (package_dir / f"{n}.py").is_file()}


def _code_cells(notebook: Path) -> str:
    cells = json.loads(Path(notebook).read_text()).get("cells", [])
    sources = (_source(c) for c in cells if c.get("cell_type") == "code")
    # IPython's magics and shell escapes are not Python
    return "\n".join(line for src in sources for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))


def feeding_modules(notebook: str | Path, root: Path = PROJECT_ROOT) -> list[Path]:
    """The package's modules a notebook's numbers and figures come from: the package's ``__init__``,
    what its code cells import, and what those modules import, to the end."""
    package_dir = Path(root) / PACKAGE
    todo, found = set(_imported_modules(_code_cells(Path(notebook)), package_dir)), set()
    while todo:
        name = todo.pop()
        found.add(name)
        todo |= _imported_modules((package_dir / f"{name}.py").read_text(), package_dir) - found
    paths = [package_dir / f"{n}.py" for n in found]
    if (package_dir / "__init__.py").is_file():
        paths.append(package_dir / "__init__.py")
    return sorted(paths)


def inputs(notebook: str | Path, root: Path = PROJECT_ROOT) -> dict:
    """The hashes and versions a notebook's outputs depend on, paths relative to ``root``."""
    notebook = Path(notebook).resolve()
    return {
        "notebook": {_relative(notebook, root): notebook_sha256(notebook)},
        "code": {str(p.relative_to(root)): sha256(p) for p in feeding_modules(notebook, root)},
        "data": {str(p.relative_to(root)): sha256(p) for p in data_files(root)},
        "packages": machine.versions(),
    }


def data_files(root: Path = PROJECT_ROOT) -> list[Path]:
    """The data a report is computed from: the MNIST files, their checksums and the lists beside them (the
    test-set label errors); not the folder's README, whose prose reaches no number."""
    mnist = root / "data" / "mnist"
    return [*sorted(mnist.glob("*.gz")), *sorted(mnist.glob("SHA256SUMS")), *sorted((root / "data").glob("*.json"))]


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(Path(root).resolve()))
    except ValueError:  # a notebook outside the project (a test's, a user's)
        return str(path)


def inputs_path(executed: str | Path) -> Path:
    executed = Path(executed)
    return executed.with_name(f"{executed.stem}.inputs.json")


def record(notebook: str | Path, executed: str | Path, root: Path = PROJECT_ROOT,
           made_from: dict | None = None) -> Path:  # fmt: skip
    """Write ``NAME.inputs.json`` beside the executed notebook: ``made_from`` (the ``inputs`` taken when
    its execution began, so that a source edited while it ran counts as a change), else the inputs now."""
    return write_json(inputs_path(executed), made_from if made_from is not None else inputs(notebook, root))


def differences(recorded: dict, current: dict, root: Path = PROJECT_ROOT) -> list[str]:
    """Each input that changed, was added or went away, in words."""
    found = []
    for part in ("notebook", "code", "data", "packages"):
        old, new = recorded.get(part, {}), current.get(part, {})
        for key in sorted(set(old) | set(new)):
            if key not in new:
                # a module that still exists but is no longer imported by what the notebook runs, or a file
                # that is no longer counted as data (data/mnist/README.md, say)
                still_there = part in ("code", "data") and (Path(root) / key).is_file()
                found.append({"code": f"{key} no longer feeds it", "data": f"{key} is no longer a recorded input"}
                             [part] if still_there else f"{'package ' if part == 'packages' else ''}{key} is gone")
            elif key not in old:
                found.append(f"{'package ' if part == 'packages' else ''}{key} is new")
            elif old[key] != new[key]:
                found.append(f"package {key} {old[key]} -> {new[key]}" if part == "packages" else f"{key} changed")
    return found


def check(reports: Path = PROJECT_ROOT / "reports", notebooks: Path = PROJECT_ROOT / "notebooks",
          root: Path = PROJECT_ROOT) -> dict[str, list[str]]:  # fmt: skip
    """For every source notebook: the reasons its report is stale (an empty list: up to date)."""
    result = {}
    for nb in sorted(Path(notebooks).glob("[0-9]*.ipynb")):
        executed = Path(reports) / nb.name
        record_file = inputs_path(executed)
        if not executed.is_file():
            result[nb.stem] = [f"{_relative(executed, root)} does not exist"]
        elif not record_file.is_file():
            result[nb.stem] = [f"{_relative(record_file, root)} does not exist (made before inputs were recorded)"]
        else:
            result[nb.stem] = differences(read_json(record_file), inputs(nb, root), root)
    return result
