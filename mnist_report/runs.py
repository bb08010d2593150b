"""Cached training runs, one per seed: trained once, then read back.

A run is stored under ``<cache_root>/<key>/seed-<seed>/``. The key is a hash of everything that
decides its result except the seed: the configuration, the training code (the package modules
listed in ``TRAINING_CODE``, comments aside), the data's content and the versions of the numerical packages. A
change to any of them gives a new key, so a stale result is never read back. Each run directory
holds the saved model, the class probabilities it gives on the validation and test images, and
``run.json`` (written last, so a run interrupted halfway is never half-read). While a run trains,
its ``backup/`` holds the state after each epoch, so a run killed halfway resumes where it stopped.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import platform
import shutil
import time
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from mnist_report import data, train
from mnist_report.config import TrainConfig
from mnist_report.evaluate import predict_proba
from mnist_report.io import atomic_path, read_json, write_json
from mnist_report.paths import from_root, shown

# The modules whose code decides a run's numbers; editing one of them (other than its comments or
# layout) invalidates the cache.
TRAINING_CODE = ("config.py", "data.py", "model.py", "train.py", "evaluate.py", "runs.py")
VERSIONED_PACKAGES = ("tensorflow", "keras", "numpy")
PACKAGE_DIR = Path(__file__).resolve().parent


def code_text(path: Path) -> bytes:
    """A module's code without its comments and layout (its parse tree), so that editing a comment
    or reformatting does not invalidate results computed by the same code."""
    return ast.dump(ast.parse(Path(path).read_bytes(), filename=str(path))).encode()


def source_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """A hash of the training code's files in ``package_dir``."""
    h = hashlib.sha256()
    for name in TRAINING_CODE:
        h.update(name.encode() + b"\0" + code_text(Path(package_dir) / name) + b"\0")
    return h.hexdigest()


# Read once, when the package is imported: the code that runs is the code imported, so a file edited
# afterwards (in a long-lived notebook kernel, say) cannot give old results a new key.
_SOURCE_HASH = source_hash()


def machine_fingerprint() -> dict:
    """What makes the same code give other numbers on another machine: the processor's vector
    instructions (oneDNN picks its kernels by them), any GPU, oneDNN on or off, and Python."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        simd = sorted(f for f in flags.split(":", 1)[1].split() if f.startswith(("avx", "amx", "fma", "sse4")))
    except (OSError, StopIteration):
        simd = []
    return {
        "machine": platform.machine(),
        "simd": simd,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "python": platform.python_version(),
    }


@functools.cache
def code_version() -> str:
    """The training code as imported, the numerical packages' versions and this machine."""
    h = hashlib.sha256(_SOURCE_HASH.encode())
    for name in VERSIONED_PACKAGES:
        h.update(f"{name}=={metadata.version(name)}\0".encode())
    h.update(json.dumps(machine_fingerprint(), sort_keys=True).encode())
    return h.hexdigest()


def data_fingerprint(raw: data.RawMNIST) -> str:
    """A hash of the arrays themselves (whichever files or download they came from)."""
    h = hashlib.sha256()
    for a in (raw.x_train, raw.y_train, raw.x_test, raw.y_test):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def cache_key(config: TrainConfig, raw: data.RawMNIST) -> str:
    """The directory name shared by every seed of ``config`` (its seed is not part of the key)."""
    settings = {k: v for k, v in config.to_dict().items() if k != "seed"}
    payload = json.dumps(
        {"config": settings, "code": code_version(), "data": data_fingerprint(raw)}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class SeedRun:
    """One seed's trained network, summarised by its predictions."""

    seed: int
    y_val: np.ndarray
    val_proba: np.ndarray  # (n_val, 10)
    y_test: np.ndarray
    test_proba: np.ndarray  # (n_test, 10)
    history: dict[str, list[float]]
    train_seconds: float
    path: Path
    key: str  # the cache key of its configuration (shared by all its seeds)
    cached: bool  # read back from the cache rather than trained now
    resumed_at: int = 0  # epochs restored from the backup of a run killed earlier

    @property
    def test_pred(self) -> np.ndarray:
        return self.test_proba.argmax(axis=1)

    @property
    def test_accuracy(self) -> float:
        return float(np.mean(self.test_pred == self.y_test))


def run_seed(config: TrainConfig, raw: data.RawMNIST, cache_root: str | Path, key: str | None = None) -> SeedRun:
    """Train ``config`` (with its own seed) and store the result, or read it back if already stored."""
    key = key or cache_key(config, raw)
    run_dir = from_root(cache_root) / key / f"seed-{config.seed}"
    if (run_dir / "run.json").is_file():
        try:
            return _load(run_dir, config, key)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # damaged
            print(f"cached run {shown(run_dir)} is unreadable ({e}); training it again")
    splits = data.make_splits(raw, config.validation_fraction, config.seed, config.n_train, config.n_test)
    run = train.train(config, splits, print_fn=None, backup_dir=run_dir / "backup")  # resumes a killed run
    val_proba = predict_proba(run.model, splits.x_val) if len(splits.y_val) else np.zeros((0, data.NUM_CLASSES))
    test_proba = predict_proba(run.model, splits.x_test)
    with atomic_path(run_dir / "model.keras") as tmp:
        run.model.save(tmp)
    with atomic_path(run_dir / "predictions.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f, y_val=splits.y_val, val_proba=val_proba.astype(np.float32),
                y_test=splits.y_test, test_proba=test_proba.astype(np.float32),
            )  # fmt: skip
    write_json(
        run_dir / "run.json",
        {
            "key": key,
            "config": config.to_dict(),
            "code_version": code_version(),
            "history": run.history,
            "train_seconds": run.train_seconds,
            "test_accuracy": float(np.mean(test_proba.argmax(axis=1) == splits.y_test)),
        },
    )
    shutil.rmtree(run_dir / "backup", ignore_errors=True)  # the run is whole: its backup is not needed
    return replace(_load(run_dir, config, key), cached=False, resumed_at=run.resumed_at)


def _load(run_dir: Path, config: TrainConfig, key: str) -> SeedRun:
    """Read a stored run back, checking that it is the run asked for."""
    meta = read_json(run_dir / "run.json")
    if meta["key"] != key or meta["config"] != config.to_dict():
        raise ValueError("its run.json records another key or configuration")
    with np.load(run_dir / "predictions.npz") as z:
        arrays = {k: z[k] for k in ("y_val", "val_proba", "y_test", "test_proba")}
    for split in ("val", "test"):
        y, proba = arrays[f"y_{split}"], arrays[f"{split}_proba"]
        if proba.shape != (len(y), data.NUM_CLASSES):
            raise ValueError(f"{split} probabilities have shape {proba.shape} for {len(y)} labels")
    return SeedRun(
        seed=int(meta["config"]["seed"]),
        history=meta["history"],
        train_seconds=float(meta["train_seconds"]),
        path=run_dir,
        key=key,
        cached=True,
        **arrays,
    )


def run_seeds(
    config: TrainConfig, seeds: Iterable[int], raw: data.RawMNIST, cache_root: str | Path, print_fn=print
) -> list[SeedRun]:
    """Every seed of ``config``, trained or read from the cache, with one progress line per run.

    Each line carries a text progress bar (runs done, elapsed and remaining time), so a notebook, a
    log file and a terminal all show plain lines rather than a bar redrawn with carriage returns.
    """
    seeds = list(seeds)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct; got {seeds}")
    key = cache_key(config, raw)
    say = print_fn or (lambda line: None)
    say(f"{len(seeds)} runs of one configuration, cached under {shown(from_root(cache_root) / key)}/")
    runs: list[SeedRun] = []
    start = time.perf_counter()
    for i, seed in enumerate(seeds, 1):
        run = run_seed(replace(config, seed=seed), raw, cache_root, key)
        runs.append(run)
        how = "cached" if run.cached else f"trained in {run.train_seconds:.0f} s"
        if run.resumed_at:
            how += f", resumed after epoch {run.resumed_at}"
        bar = tqdm.format_meter(i, len(seeds), time.perf_counter() - start, ncols=60, ascii=True, unit="run")
        say(f"{bar}  seed {seed:>3}: test accuracy {run.test_accuracy:.2%} ({how})")
    return runs
