import gzip
import hashlib
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest

from mnist_report import data
from mnist_report.paths import PROJECT_ROOT
from mnist_report.reporting import runner as notebooks
from mnist_report.runs import executor as fanout

REPORTS = PROJECT_ROOT / "reports"


def skip_if_owed(name: str) -> None:
    """The committed report's content is checked against the code only where it was made from the
    code as it is. A notebook whose source or feeding modules changed since (its regeneration owed,
    as a closing note says, while several issues share one regeneration) is skipped with the reason;
    `make check-report` lists the same."""
    from mnist_report.io import read_json
    from mnist_report.reporting import provenance

    record = REPORTS / f"{name}.inputs.json"
    if not record.is_file():
        pytest.skip(f"reports/{name}.inputs.json is missing: regeneration owed")
    notebook = PROJECT_ROOT / "notebooks" / f"{name}.ipynb"
    recorded, current = read_json(record), provenance.inputs(notebook)
    changed = provenance.differences(
        {k: recorded.get(k, {}) for k in ("notebook", "code")}, {k: current[k] for k in ("notebook", "code")}
    )
    if changed:
        pytest.skip(f"reports/{name} is stale, its regeneration owed: {'; '.join(changed[:4])}")


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (the inverse of data.parse_idx)."""
    magic = 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_dir(directory: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write gzip'd IDX files and a matching SHA256SUMS, like data/mnist/ but with any arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, array in arrays.items():
        content = idx_bytes(array)
        (directory / f"{name}.gz").write_bytes(gzip.compress(content, mtime=0))
        lines.append(f"{hashlib.sha256(content).hexdigest()}  {name}")
    (directory / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return directory


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A small notebook at ``path``: a cell tagged ``parameters``, then ``cells``, for the runner's tests."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        *(nbformat.v4.new_code_cell(c) for c in cells),
    ]
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="session", autouse=True)
def _one_tensorflow_thread():
    """Training in a test process uses one TensorFlow thread, as a run of the report does by default
    (TrainConfig.threads); set before any test runs TensorFlow. (Here, not when this file is imported:
    pytest-xdist's controller, which runs no test, then never loads TensorFlow.)"""
    from mnist_report.modeling import train

    train.configure_threads(1)


@pytest.fixture(scope="session")
def raw():
    """The real MNIST arrays from data/mnist/, verified."""
    return data.load_idx()


@pytest.fixture(scope="session")
def small_splits(raw):
    """1,000 training images (100 of them for validation) and 500 test images, drawn with seed 0."""
    from mnist_report.config import TrainConfig

    return data.splits_for(raw, TrainConfig(n_train=1000, n_test=500, validation_fraction=0.1, seed=0))


@pytest.fixture(autouse=True)
def _slow_means_it_trains(request, monkeypatch):
    """Keeps the ``slow`` marker honest: a test not marked slow that trains through ``train.train`` (in
    this process) or ``runs.get`` (through the executor), or executes a notebook, fails and says
    so, so that ``pytest -m "not slow"`` stays the quick loop. (Not caught: ``train.fit`` called
    directly, the benchmark's worker processes, and fixtures of a wider scope, which are set up before
    this one; the tests that use those are marked by hand.)"""
    if request.node.get_closest_marker("slow"):
        return

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.name} trains or executes a notebook: mark it @pytest.mark.slow")

    for target in (
        "mnist_report.modeling.train.train",
        "mnist_report.runs.get",
        "mnist_report.reporting.runner.pm.execute_notebook",
    ):
        monkeypatch.setattr(target, refuse)


@pytest.fixture(scope="session", autouse=True)
def _stores_of_their_own(tmp_path_factory):
    """Every run the tests train goes to a store and a cache of the tests' own, never the report's store
    (reports/runs) or the user's cache; notebooks' kernels inherit it."""
    from mnist_report.runs import store

    root = tmp_path_factory.mktemp("stores")
    saved = {k: os.environ.get(k) for k in (store.STORE_ENV, store.CACHE_ENV)}
    os.environ[store.STORE_ENV], os.environ[store.CACHE_ENV] = str(root / "runs"), str(root / "cache")
    yield root
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="session")
def pool():
    """A local Dask cluster of two workers, shared by the tests that train through the executor."""
    with fanout.start(workers=2, threads_per_run=1) as executor:
        yield executor


# Small parameters per notebook: seconds, not minutes.
SMALL = {
    "01-seed-reproduction": {"epochs": 1, "n_train": 2000, "n_test": 1000},
    "02-multi-seed-study": {"n_seeds": 2, "epochs": 1, "n_train": 1000, "n_test": 1000},  # 947: a label error
    "03-beyond-the-seed": {
        "max_trials": 2,
        "max_epochs": 1,
        "n_seeds": 2,
        "epochs": 2,
        "snapshot_cycles": 2,
        "conv_width": 4,
        "dense_units": 16,
        "ema_momentum": 0.9,
        "n_train": 600,
        "n_test": 300,  # narrow: every layer, less work
        "variants": {
            "full recipe": {},
            "without weight average and label smoothing": {"ema_momentum": 0.0, "label_smoothing": 0.0},
            "without augmentation": {"augment": False},
        },
    },
}


def execute_notebook(nb_path, out_dir, params, scheduler=None):
    """``scheduler``: the address of the tests' warm Dask cluster (the ``pool`` fixture), so that the
    notebook does not start a cluster of its own, whose workers would import TensorFlow again."""
    params = {**params, "output_dir": str(out_dir), **({"scheduler": scheduler} if scheduler else {})}
    return notebooks.execute(nb_path, out_dir / nb_path.name, params, timeout=600)


@pytest.fixture(scope="session")
def executed(tmp_path_factory, pool):
    """``executed(name)``: the notebook run once by papermill with its small parameters, on the tests'
    warm Dask cluster, for every test (of any module) that asks for it in this pytest process;
    (name, executed notebook, output directory). Tests must not change what it wrote."""
    done = {}

    def run(name):
        if name not in done:
            out_dir = tmp_path_factory.mktemp(name)
            nb = PROJECT_ROOT / "notebooks" / f"{name}.ipynb"
            done[name] = name, execute_notebook(nb, out_dir, SMALL[name], pool.address), out_dir
        return done[name]

    return run


# The longest modules first: `make test` hands whole modules to its two pytest-xdist workers in this order
# (--dist loadscope --no-loadscope-reorder; a worker gets its next module when two or fewer of its tests are
# left), so that a long module does not start last. The others follow in file order; list here any module that
# grows slower than test_predict (about 10 s). (xdist's own order is by number of tests, which says little about time.)
LONGEST_FIRST = [
    "test_notebook_03",
    "test_runs",
    "test_notebook_01",
    "test_resume",
    "test_train",
    "test_notebook_02",
    "test_distribute",
    "test_notebook_runner",
    "test_bench",
    "test_report_outputs",
    "test_tuning",
    "test_predict",
]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: each module's tests keep their order
