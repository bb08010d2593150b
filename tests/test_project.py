"""The repository's promises: the committed report matches its sources' shape and its run records, the
README agrees with the metrics and names every file, the dependencies declared install what the code
imports and the conda environment lists the same, the package installs whole, CI runs the README's test
command."""

import ast
import json
import re
import subprocess
import sys
from importlib import metadata

import nbformat
import numpy as np
import pytest
import yaml
from scipy import stats

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from conftest import REPORTS, skip_if_owed

from mnist_report.config import TrainConfig
from mnist_report.paths import PROJECT_ROOT
from mnist_report.reporting.readme import REPRODUCTION_METRICS, STUDY_METRICS, block_pattern, blocks

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9]*.ipynb"))
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = PYPROJECT["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {p for p in pip if not p.startswith("-e")}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert project["requires-python"].lstrip(">=") in python


def _imports(source: str) -> set[str]:
    """The top-level modules ``source`` imports absolutely, less the package's own and the standard library's
    (IPython's magic lines left out)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    found = set()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"mnist_report", "__future__"}


def _installed_with(requirements) -> set[str]:
    """The distributions installing ``requirements`` brings: theirs and their requirements', transitively,
    with the extras asked for and the markers of this interpreter (canonical names)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen, todo = set(), [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.distribution(req.name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                todo.append(sub)
    return {name for name, _ in seen}


def test_every_module_the_code_imports_is_installed_by_the_declared_dependencies():
    """`make env` installs pyproject.toml's dependencies, and the notebooks' kernel and the Dask workers
    import the package: a module it imports that no dependency brings works only in a venv that happens
    to have it."""
    from packaging.utils import canonicalize_name

    brought = _installed_with(PYPROJECT["project"]["dependencies"])
    imported = set().union(
        *(_imports(p.read_text()) for p in (PROJECT_ROOT / "mnist_report").rglob("*.py")),
        *(
            _imports(c.source)
            for nb in NOTEBOOKS
            for c in nbformat.read(nb, as_version=4).cells
            if c.cell_type == "code"
        ),
    )
    distributions = metadata.packages_distributions()
    missing = {
        m: sorted(distributions.get(m, [m]))
        for m in sorted(imported)
        if not {canonicalize_name(d) for d in distributions.get(m, [m])} & brought
    }
    assert not missing, f"imported, but no dependency in pyproject.toml installs them: {missing}"


def test_the_package_installs_with_every_subpackage():
    """`pip install .` (the Dask workers of a cluster need the project installed) ships every folder of the
    package that has an __init__.py, so that ``mnist_report.runs`` and the others import."""
    from setuptools import find_packages

    subpackages = {
        ".".join(p.relative_to(PROJECT_ROOT).parent.parts) for p in (PROJECT_ROOT / "mnist_report").rglob("__init__.py")
    }
    assert {f"mnist_report.{p}" for p in ("analysis", "modeling", "reporting", "runs")} <= subpackages
    packages = PYPROJECT.get("tool", {}).get("setuptools", {}).get("packages", {"find": {}})
    if isinstance(packages, dict):  # [tool.setuptools.packages.find] (also setuptools' default, roughly)
        find = packages.get("find", {})
        shipped = set(
            find_packages(str(PROJECT_ROOT), include=find.get("include", ["*"]), exclude=find.get("exclude", ()))
        )
    else:
        shipped = set(packages)
    assert subpackages <= shipped, f"pyproject.toml's [tool.setuptools] leaves out {sorted(subpackages - shipped)}"
    assert not {p for p in shipped if p.split(".")[0] in ("tests", "notebooks", "reports", "data")}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_source_notebooks_are_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert "hide-input" in tagged[0].metadata["tags"], "the site folds the parameters cell: readers open it at will"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    # a title and an introduction first: the site names the page, and its sidebar entry, by the first heading
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ") and "\n\n" in first.source
    assert not any(c.source.startswith("# ") for c in nb.cells[1:] if c.cell_type == "markdown"), "one title"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_committed_report_is_a_full_default_run(path):
    from mnist_report.io import read_json
    from mnist_report.reporting import provenance

    skip_if_owed(path.stem)
    executed = REPORTS / path.name
    assert executed.is_file() and (REPORTS / "site" / f"{path.stem}.html").is_file(), "run `make report`"
    nb = nbformat.read(executed, as_version=4)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells), "run with defaults"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs and not any(o.output_type == "error" for o in outputs)
    # the executed copy holds the same code as the source notebook
    source = [c.source for c in nbformat.read(path, as_version=4).cells]
    assert [c.source for c in nb.cells] == source, f"reports/{path.name} is stale: run `make report`"
    # every run it read is committed with it, as it was read
    recorded = read_json(REPORTS / f"{path.stem}.inputs.json")["runs"]
    assert recorded and provenance.run_hashes(recorded, REPORTS / "runs") == recorded


def test_baseline_metrics_are_the_default_configuration_and_reach_99():
    skip_if_owed("01-seed-reproduction")
    metrics = json.loads((REPORTS / REPRODUCTION_METRICS).read_text())
    assert metrics["config"] == TrainConfig().to_dict()
    assert metrics["final_config"] == {**TrainConfig().to_dict(), "validation_fraction": 0.0}  # all 60,000 images
    assert metrics["trained_on"]["threads"] == TrainConfig().threads
    assert metrics["data"] == {
        **metrics["data"],
        "n_train": 54000,
        "n_val": 6000,
        "n_train_final": 60000,
        "n_test": 10000,
    }
    assert metrics["parameters"] == 225_034
    assert metrics["test"]["accuracy"] >= 0.99
    # the final model ships with the report, in its run record
    assert re.fullmatch(r"reports/runs/[0-9a-f]{16}/model\.keras", metrics["model_path"])
    assert (PROJECT_ROOT / metrics["model_path"]).is_file()
    for name in (
        "samples",
        "training-curves",
        "confusion-matrix",
        "per-class",
        "confused-pairs",
        "errors",
        "own-digits",
    ):
        assert (REPORTS / "figures" / f"01-seed-reproduction-{name}.png").is_file(), name


def test_study_metrics_are_the_baseline_configuration_over_at_least_eight_seeds():
    skip_if_owed("02-multi-seed-study")
    metrics = json.loads((REPORTS / STUDY_METRICS).read_text())
    # the claimed setup on all the training images, as the claim was made
    assert metrics["config"] == {k: v for k, v in TrainConfig(validation_fraction=0.0).to_dict().items() if k != "seed"}
    assert len(metrics["runs"]) == len(set(metrics["seeds"])) >= 8
    assert metrics["data"] == {**metrics["data"], "n_train": 60000, "n_held_out": 6000, "n_test": 10000}
    # the committed interval and verdict, recomputed from the committed per-seed accuracies
    acc = np.array([r["accuracy"] for r in metrics["runs"]])
    s = metrics["accuracy_summary"]
    half = stats.t.ppf(0.975, len(acc) - 1) * acc.std(ddof=1) / np.sqrt(len(acc))
    assert s["n_runs"] == len(acc) and s["mean"] == pytest.approx(acc.mean())
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((acc.mean() - half, acc.mean() + half))
    claimed = metrics["accuracy_verdict"]["claimed_accuracy"]
    position = "inside" if s["ci_low"] <= claimed <= s["ci_high"] else "above" if claimed > s["ci_high"] else "below"
    assert metrics["accuracy_verdict"]["position"] == position


def test_the_network_predict_uses_by_default_ships_with_the_report():
    from mnist_report import predict

    skip_if_owed("03-beyond-the-seed")
    path = predict.default_model()
    assert path.is_file() and path.parent.parent == REPORTS / "runs"


@pytest.mark.parametrize(
    "block, notebook",
    [
        ("results", "01-seed-reproduction"),
        ("study", "02-multi-seed-study"),
        ("beyond", "03-beyond-the-seed"),
    ],
)
def test_readme_generated_blocks_are_the_ones_the_reports_give(block, notebook):
    if notebook:
        skip_if_owed(notebook)  # a report made by older code may not follow today's metrics declaration
    found = block_pattern(block).search((PROJECT_ROOT / "README.md").read_text())
    assert found, f"README has no {block} block"
    stale = f"README {block} block is stale: run `python -m mnist_report readme`"
    left = {}
    rendered = blocks(REPORTS, left)
    assert block in rendered, f"reports/ does not give the README's {block} block: {left.get(block)}"
    assert found.group(1) == rendered[block], stale


def test_ci_runs_the_readme_test_command():
    commands = [
        line.strip()
        for line in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "make test" in commands  # a command CI runs, not a comment
    assert re.search(r"^make test\b", (PROJECT_ROOT / "README.md").read_text(), re.M)  # the README's own command
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", (PROJECT_ROOT / "Makefile").read_text(), re.M).group(1)
    assert "ruff check" in recipe and "pytest" in recipe


def test_every_source_file_of_the_package_is_an_input_of_every_notebook():
    """Any change to the package makes every notebook stale (with the runs stored, re-executing takes
    minutes): no list of which module feeds which notebook is kept, in Python or in the Makefile. The
    benchmark and the tests are not the report's inputs."""
    from mnist_report.reporting import provenance

    package = {str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "mnist_report").rglob("*.py")}
    assert {"mnist_report/runs/store.py", "mnist_report/analysis/study.py", "mnist_report/__main__.py"} <= package
    for nb in NOTEBOOKS:
        assert set(provenance.inputs(nb)["code"]) == package, nb.stem
    assert "SOURCES" not in (PROJECT_ROOT / "Makefile").read_text()


def test_the_machine_and_package_fingerprint_is_written_once():
    """One module reads /proc/cpuinfo and lists the packages; a matplotlib or seaborn upgrade is a
    changed input of the figures."""
    from mnist_report import machine
    from mnist_report.reporting import provenance

    files = [*(PROJECT_ROOT / "mnist_report").rglob("*.py"), *(PROJECT_ROOT / "benchmarks").rglob("*.py")]
    sources = {str(p.relative_to(PROJECT_ROOT)): p.read_text() for p in files}
    here = "mnist_report/machine.py"
    assert [name for name, text in sources.items() if "/proc/cpuinfo" in text and name != here] == []
    assert [name for name, text in sources.items() if "metadata.version(" in text] == [here]
    # the machine's description too
    assert [name for name, text in sources.items() if "platform." in text] == [here]
    assert [name for name, text in sources.items() if "os.cpu_count" in text] == [here]
    recorded = provenance.inputs(NOTEBOOKS[0])["packages"]
    assert {"matplotlib", "seaborn", "dask"} <= set(recorded) and set(machine.TRAINING_PACKAGES) <= set(recorded)


def _layout(text: str) -> dict[str, str]:
    """A README's layout block (its first code block after ``## Layout``, else its first): each path it names
    (a line's first word, under the folder, a word ending in /, of the nearest line indented less) with its
    description (the rest of its line, its continuation lines and the lines of what is inside it)."""
    block = text.split("## Layout", 1)[-1].split("```", 2)[1]
    entries, stack = {}, []  # stack: (indent, path) of the folders and files the lines below may belong to
    for line in block.splitlines():
        if not line.strip():
            continue
        indent, word = len(line) - len(line.lstrip()), line.split()[0]
        is_path = not indent or word.endswith("/") or re.fullmatch(r"[\w.-]+\.\w+,?", word)
        while stack and stack[-1][0] >= indent and is_path:
            stack.pop()
        for _, above in stack:  # a continuation line, or a line inside a folder: the description of each above
            entries[above] += " " + line.strip()
        if is_path:
            path = (stack[-1][1] if stack and stack[-1][1].endswith("/") else "") + word.rstrip(",")
            entries[path] = line.strip()
            stack.append((indent, path))
    return entries


def _tracked() -> set[str]:
    """The repository's files: what git tracks in a checkout, else what an unpacked copy holds less what
    the tools make."""
    if (PROJECT_ROOT / ".git").exists():
        tracked = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
        return set(tracked.stdout.splitlines())
    made = {
        ".venv",
        "runs",
        "reproduce",
        ".git",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        "custom",
        "site",
        "interactive",
    }
    return {
        str(p.relative_to(PROJECT_ROOT))
        for p in PROJECT_ROOT.rglob("*")
        if p.is_file() and not (made & set(p.parts) or any(part.endswith(".egg-info") for part in p.parts))
    }


def test_the_readme_layout_names_every_file_and_only_those():
    """The README's layout: every file of the repository is named, or is in a folder it names; what it names
    exists; and it says where the package's layers, the benchmark, the run records, the site and the
    site's appendix are."""
    text = (PROJECT_ROOT / "README.md").read_text()
    entries = _layout(text)
    block = " ".join(f"{k} {v}" for k, v in entries.items())
    made = {"reports/runs/", "reports/site/"}  # by make report: a fresh checkout may lack them
    missing = {p for p in entries if not (PROJECT_ROOT / p).exists()} - made
    folders = [p for p in entries if p.endswith("/")]
    unnamed = {
        f
        for f in _tracked() - {".gitignore", ".gitattributes", "README.md"}
        if f not in entries
        and not any(f.startswith(d) for d in folders)
        and f not in block.split()
        and f"{f}:" not in block.split()
    }
    assert not missing and not unnamed, f"README layout names missing {sorted(missing)}; lacks {sorted(unnamed)}"
    said = {
        "mnist_report/": ["modeling/", "runs/", "analysis/", "reporting/"],
        "reports/": ["runs/", "site/"],
        "benchmarks/": [],
        "notebooks/": ["appendix"],
    }
    unsaid = {p: [w for w in words if w not in entries.get(p, "")] for p, words in said.items()}
    assert all(p in entries and not words for p, words in unsaid.items()), f"README layout does not say {unsaid}"


def test_the_package_readme_names_every_module_in_its_layer():
    """mnist_report/README.md's layout: every subpackage, and every module of the package (``name.py``, or in
    its subpackage's description ``name``), so that a reader finds where a thing lives."""
    entries = _layout((PROJECT_ROOT / "mnist_report" / "README.md").read_text())
    modules = sorted((PROJECT_ROOT / "mnist_report").rglob("*.py"))
    unnamed = []
    for path in modules:
        parts = path.relative_to(PROJECT_ROOT).parts
        if path.name == "__init__.py" and len(parts) > 2:  # a subpackage: named as its folder
            folder = "/".join(parts[:-1]) + "/"
            if folder not in entries:
                unnamed.append(folder)
            continue
        where = (
            entries.get("/".join(parts[:-1]) + "/", "")
            + " "
            + " ".join(f"{k} {v}" for k, v in entries.items() if k.startswith("/".join(parts[:-1]) + "/"))
        )
        words = rf"\b{re.escape(path.name)}\b" if len(parts) == 2 else rf"\b{re.escape(path.stem)}(\.py)?\b"
        if not re.search(words, where):
            unnamed.append("/".join(parts))
    assert not unnamed, f"mnist_report/README.md's layout does not name {unnamed}"


def test_every_notebook_has_small_parameters_and_a_test_module_of_its_own():
    from conftest import SMALL

    assert NOTEBOOKS and {p.stem for p in NOTEBOOKS} == set(SMALL)
    for p in NOTEBOOKS:
        assert (PROJECT_ROOT / "tests" / f"test_notebook_{p.stem[:2]}.py").is_file(), p.stem
    # the appendix the report site ends with
    from mnist_report.reporting import site

    assert site.APPENDIX == PROJECT_ROOT / "notebooks" / "how-this-report-is-made.md" and site.APPENDIX.is_file()
