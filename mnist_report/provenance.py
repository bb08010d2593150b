"""What a report was made from, and whether the working tree still matches it.

Next to each executed notebook, ``make report`` writes ``reports/NAME.inputs.json``: the SHA-256 of
the source notebook, of each package module the notebooks use, of each data file, and the versions
of the packages that compute the numbers. ``make check-report`` recomputes them from the working
tree and names every difference.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

from mnist_report.io import read_json, write_json
from mnist_report.paths import PROJECT_ROOT

# Package modules that no notebook uses: the benchmark and the README writer (the Makefile's
# SOURCES leave out the same files; tests/test_project.py checks that the two lists agree).
NOT_REPORT_CODE = ("bench.py", "reference_torch.py", "readme.py")
VERSIONED = ("tensorflow", "keras", "numpy", "scipy", "scikit-learn", "statsmodels", "keras-tuner", "pillow")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def report_code(root: Path = PROJECT_ROOT) -> list[Path]:
    return sorted(p for p in (root / "mnist_report").glob("*.py") if p.name not in NOT_REPORT_CODE)


def inputs(notebook: str | Path, root: Path = PROJECT_ROOT) -> dict:
    """The hashes and versions a notebook's outputs depend on, paths relative to ``root``."""
    notebook = Path(notebook).resolve()
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "notebook": {_relative(notebook, root): sha256(notebook)},
        "code": {str(p.relative_to(root)): sha256(p) for p in report_code(root)},
        "data": {str(p.relative_to(root)): sha256(p) for p in sorted((root / "data" / "mnist").glob("*"))},
        "packages": versions,
    }


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(Path(root).resolve()))
    except ValueError:  # a notebook outside the project (a test's, a user's)
        return str(path)


def inputs_path(executed: str | Path) -> Path:
    executed = Path(executed)
    return executed.with_name(f"{executed.stem}.inputs.json")


def record(notebook: str | Path, executed: str | Path, root: Path = PROJECT_ROOT) -> Path:
    """Write ``NAME.inputs.json`` beside the executed notebook."""
    return write_json(inputs_path(executed), inputs(notebook, root))


def differences(recorded: dict, current: dict) -> list[str]:
    """Each input that changed, was added or went away, in words."""
    found = []
    for part in ("notebook", "code", "data", "packages"):
        old, new = recorded.get(part, {}), current.get(part, {})
        for key in sorted(set(old) | set(new)):
            if key not in new:
                found.append(f"{key} is gone")
            elif key not in old:
                found.append(f"{key} is new")
            elif old[key] != new[key]:
                found.append(f"{key} {old[key]} -> {new[key]}" if part == "packages" else f"{key} changed")
    return found


def check(reports: Path = PROJECT_ROOT / "reports", notebooks: Path = PROJECT_ROOT / "notebooks",
          root: Path = PROJECT_ROOT) -> dict[str, list[str]]:  # fmt: skip
    """For every source notebook: the reasons its report is stale (an empty list: up to date)."""
    result = {}
    for nb in sorted(Path(notebooks).glob("[0-9]*.ipynb")):
        executed = Path(reports) / nb.name
        record_file = inputs_path(executed)
        if not executed.is_file():
            result[nb.stem] = [f"{executed.relative_to(root)} does not exist"]
        elif not record_file.is_file():
            result[nb.stem] = [f"{record_file.relative_to(root)} does not exist (made before inputs were recorded)"]
        else:
            result[nb.stem] = differences(read_json(record_file), inputs(nb, root))
    return result
