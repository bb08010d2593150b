"""The repository's promises: committed report matches its sources' shape, README agrees with the
metrics, the conda environment lists the same packages, CI runs the README's test command."""

import json
import subprocess

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


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {p for p in pip if not p.startswith("-e")}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert project["requires-python"].lstrip(">=") in python


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_source_notebooks_are_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_committed_report_is_a_full_default_run(path):
    skip_if_owed(path.stem)
    executed = REPORTS / path.name
    assert executed.is_file() and executed.with_suffix(".html").is_file(), "run `make report`"
    nb = nbformat.read(executed, as_version=4)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells), "run with defaults"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs and not any(o.output_type == "error" for o in outputs)
    # the executed copy holds the same code as the source notebook
    source = [c.source for c in nbformat.read(path, as_version=4).cells]
    assert [c.source for c in nb.cells] == source, f"reports/{path.name} is stale: run `make report`"


def test_baseline_metrics_are_the_default_configuration_and_reach_99():
    skip_if_owed("01-seed-reproduction")
    metrics = json.loads((REPORTS / REPRODUCTION_METRICS).read_text())
    assert metrics["config"] == TrainConfig().to_dict()
    assert metrics["final_config"] == {**TrainConfig().to_dict(), "validation_fraction": 0.0}  # all 60,000 images
    assert metrics["executor"]["threads_per_run"] == TrainConfig().threads
    assert metrics["data"] == {**metrics["data"], "n_train": 54000, "n_val": 6000, "n_train_final": 60000,
                                                   "n_test": 10000}
    assert metrics["parameters"] == 225_034
    assert metrics["test"]["accuracy"] >= 0.99
    for name in ("samples", "training-curves", "confusion-matrix", "per-class", "confused-pairs", "errors"):
        assert (REPORTS / "figures" / f"01-seed-reproduction-{name}.png").is_file(), name


def test_study_metrics_are_the_baseline_configuration_over_at_least_eight_seeds():
    skip_if_owed("02-multi-seed-study")
    metrics = json.loads((REPORTS / STUDY_METRICS).read_text())
    assert metrics["config"] == {k: v for k, v in TrainConfig().to_dict().items() if k != "seed"}
    assert len(metrics["runs"]) == len(set(metrics["seeds"])) >= 8
    assert metrics["data"] == {**metrics["data"], "n_train": 54000, "n_val": 6000, "n_test": 10000}
    # the committed interval and verdict, recomputed from the committed per-seed accuracies
    acc = np.array([r["accuracy"] for r in metrics["runs"]])
    s = metrics["accuracy_summary"]
    half = stats.t.ppf(0.975, len(acc) - 1) * acc.std(ddof=1) / np.sqrt(len(acc))
    assert s["n_runs"] == len(acc) and s["mean"] == pytest.approx(acc.mean())
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((acc.mean() - half, acc.mean() + half))
    claimed = metrics["accuracy_verdict"]["claimed_accuracy"]
    position = "inside" if s["ci_low"] <= claimed <= s["ci_high"] else "above" if claimed > s["ci_high"] else "below"
    assert metrics["accuracy_verdict"]["position"] == position


@pytest.mark.parametrize("block, notebook", [("results", "01-seed-reproduction"), ("study", "02-multi-seed-study"),
                                             ("beyond", "03-beyond-the-seed"), ("bench", None)])  # fmt: skip
def test_readme_generated_blocks_are_the_ones_the_reports_give(block, notebook):
    if notebook:
        skip_if_owed(notebook)  # a report made by older code may not follow today's metrics schema
    found = block_pattern(block).search((PROJECT_ROOT / "README.md").read_text())
    assert found, f"README has no {block} block"
    stale = f"README {block} block is stale: run `python -m mnist_report readme`"
    assert found.group(1) == blocks(REPORTS, left={})[block], stale


def test_ci_runs_the_readme_test_command():
    import re

    commands = [line.strip() for line in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]  # fmt: skip
    assert "make test" in commands  # a command CI runs, not a comment
    assert re.search(r"^make test\b", (PROJECT_ROOT / "README.md").read_text(), re.M)  # the README's own command
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", (PROJECT_ROOT / "Makefile").read_text(), re.M).group(1)
    assert "ruff check" in recipe and "pytest" in recipe


def test_the_modules_that_feed_each_notebook_are_found_from_its_imports():
    """One list, computed in Python from the notebooks' imports; the Makefile keeps none of its own."""
    from mnist_report.reporting import provenance

    feeds = {nb.stem: {p.name for p in provenance.feeding_modules(nb)}
             for nb in sorted((PROJECT_ROOT / "notebooks").glob("[0-9]*.ipynb"))}  # fmt: skip
    for names in feeds.values():
        assert {"config.py", "data.py", "model.py", "train.py", "fanout.py", "runs.py", "report.py"} <= names
        assert not names & {"bench.py", "readme.py", "provenance.py", "notebooks.py", "__main__.py"}
    assert "study.py" in feeds["02-multi-seed-study"] and "tuning.py" in feeds["03-beyond-the-seed"]
    assert "tuning.py" not in feeds["01-seed-reproduction"] and "predict.py" in feeds["01-seed-reproduction"]
    assert "SOURCES" not in (PROJECT_ROOT / "Makefile").read_text()


def test_the_machine_and_package_fingerprint_is_written_once():
    """One module reads /proc/cpuinfo and lists the packages; a matplotlib or seaborn upgrade is a
    changed input of the figures."""
    from mnist_report import machine
    from mnist_report.reporting import provenance

    sources = {p.name: p.read_text() for p in (PROJECT_ROOT / "mnist_report").glob("*.py")}
    assert [name for name, text in sources.items() if "/proc/cpuinfo" in text and name != "machine.py"] == []
    assert [name for name, text in sources.items() if "metadata.version(" in text] == ["machine.py"]
    # the machine's description too
    assert [name for name, text in sources.items() if "platform." in text] == ["machine.py"]
    assert [name for name, text in sources.items() if "os.cpu_count" in text] == ["machine.py"]
    recorded = provenance.inputs(NOTEBOOKS[0])["packages"]
    assert {"matplotlib", "seaborn", "dask"} <= set(recorded) and set(machine.TRAINING_PACKAGES) <= set(recorded)


def test_the_readme_layout_names_every_file_and_only_those():
    """The README's layout: the package's files one by one; elsewhere a file, or the folder it is in."""
    import re

    readme = (PROJECT_ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```", 2)[1]
    named = {f"mnist_report/{name}" for name in re.findall(r"^\s+([\w.]+\.(?:py|md))\b", layout, re.M)}
    top = {line.split()[0] for line in layout.splitlines() if line and not line[0].isspace()}  # data/mnist/, .ci/run
    missing = {t for t in top | named if not (PROJECT_ROOT / t).exists()} - {"runs/"}  # runs/: made by make report
    if (PROJECT_ROOT / ".git").exists():  # a checkout (not an unpacked copy): what git tracks
        tracked = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
        files = set(tracked.stdout.splitlines())
    else:
        made = {".venv", "runs", "reproduce", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "custom"}
        files = {str(p.relative_to(PROJECT_ROOT)) for p in PROJECT_ROOT.rglob("*") if p.is_file() and not (
            made & set(p.parts) or any(part.endswith(".egg-info") for part in p.parts))}  # fmt: skip
    files -= {".gitignore", ".gitattributes", "README.md", "mnist_report/__init__.py"}
    unnamed = {f for f in files if f not in named and not (f in top or any(
        f.startswith(t) for t in top if t.endswith("/") and t != "mnist_report/"))}  # fmt: skip
    assert not missing and not unnamed, f"README layout names missing {sorted(missing)}; lacks {sorted(unnamed)}"


def test_every_notebook_has_small_parameters_and_a_test_module_of_its_own():
    from conftest import SMALL

    assert NOTEBOOKS and {p.stem for p in NOTEBOOKS} == set(SMALL)
    for p in NOTEBOOKS:
        assert (PROJECT_ROOT / "tests" / f"test_notebook_{p.stem[:2]}.py").is_file(), p.stem
