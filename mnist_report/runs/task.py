"""One run, as a Dask worker executes it: its images, training (resumed from a backup), and every
prediction the notebooks need, returned to the client that stores it (workers need no shared disk)."""

from __future__ import annotations

import dataclasses
import os
import socket

import numpy as np

from mnist_report import machine
from mnist_report.config import TrainConfig

_DATA: dict[str, object] = {}  # the MNIST arrays this worker has loaded, by fingerprint


def _data(fingerprint: str):
    """The arrays whose fingerprint is ``fingerprint``, loaded and checked by this worker once."""
    from mnist_report import data

    if fingerprint not in _DATA:
        raw = data.load_raw()
        if data.fingerprint(raw) != fingerprint:
            raise data.DataError(
                f"this worker's MNIST ({raw.source}) differs from the client's (fingerprint {fingerprint[:12]}...): "
                "give every worker the project's data/mnist/ files"
            )
        _DATA[fingerprint] = raw
    return _DATA[fingerprint]


def _worker_name() -> str:
    try:
        from distributed import get_worker

        name = str(get_worker().name)
    except (ImportError, ValueError):  # called outside a Dask worker
        name = "this process"
    return f"{name} ({socket.gethostname()})"


def trained_on() -> dict:
    """The machine and packages a run was trained on (recorded with it; not part of its key)."""
    import tensorflow as tf

    return {
        "cpu": machine.cpu()["model"],
        **machine.fingerprint(),
        "packages": machine.versions(machine.TRAINING_PACKAGES),
        "worker": _worker_name(),
        "threads": tf.config.threading.get_intra_op_parallelism_threads(),
    }


def run_task(config: TrainConfig, fingerprint: str, backup_dir: str | None, test: bool = True) -> dict:
    """Train ``config`` and return what the store keeps. ``test=False``: the test images are never
    looked at, and only the history is kept (a search trial)."""
    from mnist_report import quiet_tf  # noqa: F401  (first: TensorFlow imported without its probe noise)

    # isort: split
    from mnist_report import data
    from mnist_report.modeling import model, resume, train

    raw = _data(fingerprint)
    splits = data.splits_for(raw, config)
    if not test:
        splits = dataclasses.replace(splits, x_test=splits.x_test[:0], y_test=splits.y_test[:0])
    run = train.train(config, splits, print_fn=None, backup_dir=backup_dir)
    result = {
        "history": run.history,
        "epoch_seconds": run.epoch_seconds,
        "resumed_at": run.resumed_at,
        "trained_on": trained_on(),
    }
    if os.environ.get("MALLOC_TRIM_THRESHOLD_"):  # see executor.start
        result["trained_on"]["worker"] += ", MALLOC_TRIM_THRESHOLD_ set: slow"
    if not test:
        return result
    proba = {
        split: model.predict_proba(run.model, x).astype(np.float32)
        for split, x in (("val", splits.x_val), ("test", splits.x_test))
    }
    result |= {"y_val": splits.y_val, "val_proba": proba["val"], "y_test": splits.y_test, "test_proba": proba["test"]}
    if config.architecture == "better":
        # test-time augmentation is judged on the validation images where a run has them, and used on the
        # test images by the networks trained on all training images (which have none)
        split, x = ("val", splits.x_val) if len(splits.y_val) else ("test", splits.x_test)
        result[f"{split}_tta_proba"] = model.tta_proba(run.model, x).astype(np.float32)
    result |= run.snapshots  # snapshot_val_proba, snapshot_test_proba where cycles > 1
    result.pop("snapshot_models", None)
    result["model"] = resume.model_bytes(model.without_training_state(run.model))
    return result
