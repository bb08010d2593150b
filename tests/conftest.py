import gzip
import hashlib
from pathlib import Path

import nbformat
import numpy as np
import pytest

from mnist_report import data, fanout, train

# Training in this process uses one TensorFlow thread, as a run of the report does by default
# (TrainConfig.threads); it must be set before TensorFlow runs anything.
train.configure_threads(1)


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
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                *(nbformat.v4.new_code_cell(c) for c in cells)]  # fmt: skip
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="session")
def raw():
    """The real MNIST arrays from data/mnist/, verified."""
    return data.load_idx()


@pytest.fixture(scope="session")
def small_splits(raw):
    """1,000 training images (100 of them for validation) and 500 test images."""
    return data.make_splits(raw, validation_fraction=0.1, seed=0, n_train=1000, n_test=500)


@pytest.fixture(scope="session")
def pool():
    """A local Dask cluster of two workers, shared by the tests that train through the executor."""
    with fanout.start(workers=2, threads_per_run=1) as executor:
        yield executor
