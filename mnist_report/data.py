"""MNIST from the IDX files this repository ships, checked against their SHA-256 sums.

The four files in ``data/mnist/`` are the original IDX files, gzip'd; ``SHA256SUMS`` there holds
the SHA-256 of each file's decompressed content.  Every load verifies it.  A checkout without the
files falls back to Keras' published ``mnist.npz``, verified by its published SHA-256.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_report.paths import PROJECT_ROOT, shown

DATA_DIR = PROJECT_ROOT / "data" / "mnist"
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)

# split -> (images file, labels file), names as in SHA256SUMS (the files on disk end in .gz)
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# The IDX magic numbers: 0x0803 = unsigned byte, 3 dimensions; 0x0801 = unsigned byte, 1 dimension.
IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}
EXPECTED_SHAPES = {
    "train-images-idx3-ubyte": (60000, 28, 28),
    "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28),
    "t10k-labels-idx1-ubyte": (10000,),
}

# Keras' own copy of MNIST, as keras.datasets.mnist.load_data() downloads it, with its published hash.
FALLBACK_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FALLBACK_FILE = "mnist.npz"
FALLBACK_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MIRROR_ENV = "MNIST_REPORT_MIRROR"  # base URL to fetch mnist.npz from instead of FALLBACK_ORIGIN

RESTORE_HINT = (
    "Restore the original files with `git checkout -- data/mnist` (or copy them from "
    "../shared/data/mnist/), then run again."
)


class DataError(RuntimeError):
    """A data file is missing, truncated, corrupt or not what MNIST should be."""


def read_checksums(data_dir: Path = DATA_DIR) -> dict[str, str]:
    """Parse ``SHA256SUMS`` (``<hex>  <name>`` per line) into {name: hex}."""
    path = Path(data_dir) / "SHA256SUMS"
    if not path.is_file():
        raise DataError(f"{path} is missing: cannot verify the MNIST files. {RESTORE_HINT}")
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataError(f"{path}, line {number}: expected '<sha256>  <file name>', got {line!r}")
        sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def parse_idx(content: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of one uncompressed IDX file of unsigned bytes into a uint8 array."""
    if len(content) < 4:
        raise DataError(f"{name}: {len(content)} bytes is too short to be an IDX file")
    magic = int.from_bytes(content[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 2, 3):
        raise DataError(
            f"{name}: IDX magic number 0x{magic:08x} is not an unsigned-byte IDX file "
            f"(expected 0x{IDX_MAGIC[3]:08x} for images or 0x{IDX_MAGIC[1]:08x} for labels)"
        )
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DataError(f"{name}: truncated IDX header ({len(content)} bytes, need {header})")
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(content) != expected:
        raise DataError(
            f"{name}: {len(content):,} bytes, but its header declares shape {shape}, "
            f"which needs {expected:,} bytes (truncated or padded)"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_file(path: Path, sha256: str | None) -> np.ndarray:
    """Read one gzip'd IDX file, verify the SHA-256 of its content, and decode it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing. {RESTORE_HINT}")
    try:
        with gzip.open(path, "rb") as f:
            content = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path} is not a readable gzip file ({e}). {RESTORE_HINT}") from e
    if sha256 is not None:
        digest = hashlib.sha256(content).hexdigest()
        if digest != sha256:
            raise DataError(
                f"{path}: SHA-256 of the decompressed content is {digest}, expected {sha256} "
                f"(from SHA256SUMS); the file is corrupt or not the original. {RESTORE_HINT}"
            )
    array = parse_idx(content, str(path))
    expected = EXPECTED_SHAPES.get(path.name.removesuffix(".gz"))
    if expected is not None and array.shape != expected:
        raise DataError(f"{path}: shape {array.shape}, expected {expected}. {RESTORE_HINT}")
    return array


@dataclass(frozen=True)
class RawMNIST:
    """The four MNIST arrays as stored: uint8 images (N, 28, 28) and uint8 labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where they came from, for the report


def load_idx(data_dir: Path = DATA_DIR) -> RawMNIST:
    """Load and verify the four IDX files in ``data_dir``."""
    data_dir = Path(data_dir)
    sums = read_checksums(data_dir)
    arrays = {}
    for split, names in FILES.items():
        for kind, name in zip(("x", "y"), names, strict=True):
            if name not in sums:
                raise DataError(f"{data_dir / 'SHA256SUMS'} has no checksum for {name}. {RESTORE_HINT}")
            arrays[f"{kind}_{split}"] = read_idx_file(data_dir / f"{name}.gz", sums[name])
    for split in FILES:
        if len(arrays[f"x_{split}"]) != len(arrays[f"y_{split}"]):
            raise DataError(f"{data_dir}: {split} images and labels differ in count")
    return RawMNIST(**arrays, source=f"IDX files in {shown(data_dir)}/, SHA-256 verified")


def load_fallback(
    origin: str | None = None,
    file_hash: str = FALLBACK_SHA256,
    cache_dir: Path = PROJECT_ROOT / "data",
) -> RawMNIST:
    """Download Keras' ``mnist.npz`` (once, cached under ``cache_dir/keras``) and verify its hash.

    ``origin`` is the base URL (default: ``$MNIST_REPORT_MIRROR`` or Keras' published location).
    """
    import keras  # imported here: loading the shipped IDX files does not need it

    origin = origin or os.environ.get(MIRROR_ENV) or FALLBACK_ORIGIN
    url = origin.rstrip("/") + "/" + FALLBACK_FILE
    Path(cache_dir).mkdir(parents=True, exist_ok=True)  # get_file silently uses /tmp if it is missing
    try:
        path = keras.utils.get_file(
            FALLBACK_FILE, origin=url, file_hash=file_hash, cache_dir=str(cache_dir), cache_subdir="keras"
        )
    except Exception as e:
        raise DataError(
            f"{DATA_DIR} has no MNIST files and the fallback download of {url} failed ({e}). "
            f"{RESTORE_HINT} Or set {MIRROR_ENV} to a base URL that serves {FALLBACK_FILE}."
        ) from e
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    for k, a in arrays.items():
        if a.dtype != np.uint8 or a.shape[1:] not in ((28, 28), ()):
            raise DataError(f"{path}: {k} has dtype {a.dtype} and shape {a.shape}, not MNIST's")
    return RawMNIST(**arrays, source=f"{url} (SHA-256 {file_hash} verified)")


def load_raw(data_dir: Path = DATA_DIR) -> RawMNIST:
    """The shipped IDX files if the directory holds any of them, else the verified download.

    Files that are present but damaged are an error, never a silent switch to the download.
    """
    data_dir = Path(data_dir)
    if data_dir.is_dir() and any(data_dir.iterdir()):
        return load_idx(data_dir)
    return load_fallback()


def fingerprint(raw: RawMNIST) -> str:
    """A hash of the arrays themselves (whichever files or download they came from)."""
    h = hashlib.sha256()
    for a in (raw.x_train, raw.y_train, raw.x_test, raw.y_test):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]."""
    return (np.asarray(images, dtype=np.float32) / 255.0).reshape(-1, *IMAGE_SHAPE)


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Integer labels (N,) -> float32 one-hot (N, 10), for categorical cross-entropy."""
    return np.eye(NUM_CLASSES, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


@dataclass(frozen=True)
class Splits:
    """Model-ready arrays: images float32 (N, 28, 28, 1) in [0, 1], labels as integers (N,).

    The validation split is carved from the training set; the test set is kept apart for the
    single final evaluation.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def describe(self) -> str:
        return (
            f"train {len(self.y_train):,}, validation {len(self.y_val):,} (from the training set), "
            f"test {len(self.y_test):,}; source: {self.source}"
        )


def make_splits(
    raw: RawMNIST,
    validation_fraction: float,
    seed: int,
    n_train: int | None = None,
    n_test: int | None = None,
) -> Splits:
    """Shuffle the training set with ``seed``, take ``n_train`` of it, hold out a validation share.

    ``n_test`` keeps the first ``n_test`` test images (for quick runs); None keeps all.
    """
    order = np.random.default_rng(seed).permutation(len(raw.y_train))
    if n_train is not None:
        order = order[:n_train]
    n_val = int(round(len(order) * validation_fraction))
    val, train = order[:n_val], order[n_val:]
    test = slice(None) if n_test is None else slice(0, n_test)
    return Splits(
        x_train=normalise(raw.x_train[train]),
        y_train=raw.y_train[train].astype(np.int64),
        x_val=normalise(raw.x_train[val]),
        y_val=raw.y_train[val].astype(np.int64),
        x_test=normalise(raw.x_test[test]),
        y_test=raw.y_test[test].astype(np.int64),
        source=raw.source,
    )


def splits_for(raw: RawMNIST, config) -> Splits:
    """The images a run of ``config`` (a ``TrainConfig``) trains on, is validated on and is tested on:
    its ``validation_fraction``, ``seed``, ``n_train`` and ``n_test``, applied in one place."""
    return make_splits(raw, config.validation_fraction, config.seed, config.n_train, config.n_test)
