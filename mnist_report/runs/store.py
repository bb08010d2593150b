"""The report's runs as data: one record per trained run, read back instead of training again.

A record is a folder named by the run's key, holding ``run.json`` (the configuration, history, timings,
and the machine and package versions that trained it) and ``predictions.npz`` (every probability the
notebooks compute from, float32, exactly as the worker returned them), plus ``model.keras`` for the
networks the report ships. ``run.json`` records the SHA-256 of the other files and of its own content,
so a damaged, truncated or hand-edited record is refused, never read as other numbers.

The key is the configuration, the data's fingerprint and ``NUMERICS_VERSION``: not the machine and not
the source text. ``tests/test_golden.py`` trains a tiny run of each network and fails when the numbers
move; then bump ``NUMERICS_VERSION``, and every run trains again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_report.config import TrainConfig
from mnist_report.io import read_json
from mnist_report.paths import PROJECT_ROOT, shown

# Bump when the same configuration would train other numbers (tests/test_golden.py says when).
NUMERICS_VERSION = 1
STORE = PROJECT_ROOT / "reports" / "runs"  # the committed runs of the report
CACHE_ENV = "MNIST_REPORT_CACHE"  # runs with other parameters, backups and locks: outside the repository
STORE_ENV = "MNIST_REPORT_STORE"  # the one store to read and write (make report: reports/runs; make reproduce)
ARRAYS = (
    "y_val",
    "val_proba",
    "y_test",
    "test_proba",
    "val_tta_proba",
    "test_tta_proba",
    "snapshot_val_proba",
    "snapshot_test_proba",
)


class RecordError(ValueError):
    """A stored run that cannot be trusted: damaged, truncated, edited by hand, or of another run."""


def key(config: TrainConfig, fingerprint: str, test: bool = True) -> str:
    """The run's name in every store: its configuration, the data and the numerics version.
    ``test=False``: a run scored on validation alone (a search trial), stored with its history only."""
    fields = {"config": config.to_dict(), "data": fingerprint, "numerics": NUMERICS_VERSION, "test": test}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Run:
    """One trained network, as stored: its configuration, history and predictions."""

    config: TrainConfig
    key: str
    path: Path
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    trained_on: dict  # the machine, the packages and the worker that trained it
    arrays: dict[str, np.ndarray] = field(repr=False)
    trained_now: bool = False
    sha256: str = ""  # the record's content hash, as a notebook's recorded inputs name it

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in ARRAYS:
            return arrays.get(name, np.zeros((0, 10), np.float32) if name.endswith("proba") else np.zeros(0, int))
        raise AttributeError(name)

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def train_seconds(self) -> float:
        return float(sum(self.epoch_seconds))

    @property
    def test_pred(self) -> np.ndarray:
        return self.test_proba.argmax(axis=1)

    @property
    def test_accuracy(self) -> float:
        return float(np.mean(self.test_pred == self.y_test))

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"


def places() -> tuple[list[Path], Path]:
    """Where runs are looked for, in order, and where a newly trained run goes. ``$MNIST_REPORT_STORE``
    names one store for both (``make report``: the committed one; ``make reproduce``: a scratch one, so
    that nothing is read from elsewhere); otherwise the committed store is read, and the local cache is
    read and written."""
    from mnist_report.paths import from_root

    chosen = os.environ.get(STORE_ENV)
    if chosen:
        return [from_root(chosen)], from_root(chosen)
    return [STORE, cache() / "runs"], cache() / "runs"


def cache() -> Path:
    """The local cache (``~/.cache/mnist-report``, or ``$MNIST_REPORT_CACHE``)."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/mnist-report").expanduser()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _content_hash(meta: dict) -> str:
    return hashlib.sha256(
        json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode()
    ).hexdigest()


def write(root: Path, run_key: str, config: TrainConfig, result: dict, keep_model: bool = False) -> Path:
    """Write a worker's result as the record ``root/run_key``, whole or not at all (a folder written
    beside it, then renamed)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{run_key}.partial-"))
    try:
        files = {}
        arrays = {k: result[k] for k in ARRAYS if k in result and result[k] is not None}
        if arrays:
            with open(tmp / "predictions.npz", "wb") as f:
                np.savez_compressed(f, **arrays)
            files["predictions.npz"] = _sha256(tmp / "predictions.npz")
        if keep_model:
            (tmp / "model.keras").write_bytes(result["model"])
            files["model.keras"] = _sha256(tmp / "model.keras")
        meta = {
            "key": run_key,
            "numerics": NUMERICS_VERSION,
            "config": config.to_dict(),
            "history": result["history"],
            "epoch_seconds": result["epoch_seconds"],
            "trained_on": result["trained_on"],
            "files": files,
        }
        meta["sha256"] = _content_hash(meta)
        (tmp / "run.json").write_text(json.dumps(meta, indent=1) + "\n")
        os.chmod(tmp, 0o755)
        target = root / run_key
        if target.exists():  # moved aside first: an interruption leaves the old record or the new, never none
            aside = Path(tempfile.mkdtemp(dir=root, prefix=f".{run_key}.old-"))
            os.replace(target, aside / run_key)
            os.replace(tmp, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read(directory: Path, config: TrainConfig | None = None, run_key: str | None = None) -> Run:
    """The record in ``directory``, checked whole: a ``RecordError`` naming the file otherwise."""
    directory = Path(directory)
    where = shown(directory / "run.json")
    fix = (
        f"restore it with `git checkout -- {shown(directory)}` if it is committed, or delete the folder to "
        "train the run again"
    )
    try:
        meta = read_json(directory / "run.json")
    except (OSError, ValueError) as e:
        raise RecordError(f"{where} cannot be read ({e}): {fix}") from None
    if not isinstance(meta, dict) or meta.get("sha256") != _content_hash(meta):
        raise RecordError(f"{where} does not match its own checksum (damaged or edited by hand): {fix}")
    if run_key is not None and meta["key"] != run_key:
        raise RecordError(f"{where} holds run {meta['key']}, not {run_key}: {fix}")
    if config is not None and meta["config"] != config.to_dict():
        raise RecordError(f"{where} holds another configuration than the run asked for: {fix}")
    for name, digest in meta["files"].items():
        path = directory / name
        if not path.is_file() or _sha256(path) != digest:
            raise RecordError(f"{shown(path)} is missing or does not match the checksum in {where}: {fix}")
    arrays = {}
    if "predictions.npz" in meta["files"]:
        try:
            with np.load(directory / "predictions.npz") as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise RecordError(f"{shown(directory / 'predictions.npz')} cannot be read ({e}): {fix}") from None
    return Run(
        config=TrainConfig.from_params(meta["config"]),
        key=meta["key"],
        path=directory,
        history=meta["history"],
        epoch_seconds=meta["epoch_seconds"],
        trained_on=meta["trained_on"],
        arrays=arrays,
        sha256=meta["sha256"],
    )


def find(run_key: str, config: TrainConfig, need_model: bool = False) -> Run | None:
    """The stored run of this key from the first place that has it (with its model, where
    ``need_model``), or None; a record there without the model asked for is a ``RecordError``."""
    found = [root / run_key for root in places()[0] if (root / run_key / "run.json").is_file()]
    for folder in found:
        run = read(folder, config, run_key)
        if not need_model or "model.keras" in read_json(folder / "run.json")["files"]:
            return run
    if found:
        raise RecordError(
            f"{shown(found[0])} holds run {run_key} without the network the report ships (model.keras): "
            "delete the folder to train the run again"
        )
    return None


def backup_dir(run_key: str) -> Path:
    """Where a run in training keeps its state after each epoch (a killed run resumes from it)."""
    return cache() / "backup" / run_key


def remove_backup(run_key: str) -> None:
    shutil.rmtree(backup_dir(run_key), ignore_errors=True)
