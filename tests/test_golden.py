"""The golden numerics: a tiny run of each network, whose losses must match the recorded ones.

A run's key in the store is its configuration, the data and ``store.NUMERICS_VERSION``, not the code,
so a change that moves the numbers (an initialiser, the schedule, the augmentation, a dependency's
behaviour) must bump that version, or the store would serve runs the code no longer trains. This test
notices such a change. Its tolerances, ``RTOL``, were measured (relative). Another CPU moves the losses
by at most 1.3e-6 (the Intel Xeon that recorded them, with oneDNN limited to AVX2, AVX-512 or AMX
kernels, or off) or 1.7e-7 (an AMD EPYC with AVX-512), except in the two-cycle case, where the
schedule's restart amplifies the last bits: 5.3e-5 on that EPYC, with or without oneDNN. The smallest
changes tried move them by more: the weight average's momentum 0.9 -> 0.91 by 3.2e-5, the
schedule's floor 1% -> 1.1% by 3.5e-4 (the two-cycle case).

To re-record after a deliberate change: bump ``NUMERICS_VERSION``, then
``python tests/test_golden.py --record``.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_report import data
from mnist_report.config import TrainConfig
from mnist_report.runs.store import NUMERICS_VERSION

GOLDEN = Path(__file__).with_name("golden_numerics.json")
RTOL = {"better, two cycles of the schedule": 1.5e-4}  # by case, else 2e-5 (measured: the docstring)
TINY = {"n_train": 256, "validation_fraction": 0.25, "batch_size": 32, "seed": 0}
NARROW = {**TINY, "architecture": "better", "conv_width": 8, "dense_units": 32}
CASES = {
    "baseline": TrainConfig(**TINY, epochs=2),
    "better, weight average and label smoothing": TrainConfig(
        **NARROW, epochs=2, ema_momentum=0.9, label_smoothing=0.1
    ),
    "better, two cycles of the schedule": TrainConfig(**NARROW, epochs=4, cycles=2),
    "baseline, early stopping": TrainConfig(**TINY, epochs=6, patience=1, learning_rate=0.03),  # stops after 2
}


def losses(config: TrainConfig) -> list[float]:
    """The losses epoch by epoch, then the mean probability of the true digit on the validation images,
    as trained and with test-time augmentation (what the store keeps: a change there moves it)."""
    from mnist_report.modeling import model, train

    splits = data.splits_for(data.load_raw(), config)
    run = train.train(config, splits, print_fn=None)
    true = np.arange(len(splits.y_val)), splits.y_val
    proba = [model.predict_proba(run.model, splits.x_val), model.tta_proba(run.model, splits.x_val)]
    return run.history["loss"] + run.history["val_loss"] + [float(p[true].mean()) for p in proba]


def moved(name: str, got: list[float], want: list[float]) -> str | None:
    """Why ``got`` is not the recorded ``want``, or None."""
    rtol = RTOL.get(name, 2e-5)
    if len(got) == len(want) and np.allclose(got, want, rtol=rtol, atol=0):
        return None
    worst = float(np.max(np.abs(np.asarray(got) / np.asarray(want) - 1))) if len(got) == len(want) else np.inf
    return (
        f"{name}: the losses moved by up to {worst:.1e} (relative; {rtol:.1e} allowed): {got} against the "
        f"recorded {want}. The same configuration now trains other numbers, so the stored runs no longer "
        f"match the code: bump NUMERICS_VERSION in mnist_report/runs/store.py (every run trains again), then "
        f"re-record with `python tests/test_golden.py --record`"
    )


def test_the_recorded_numerics_belong_to_this_version():
    assert json.loads(GOLDEN.read_text())["numerics"] == NUMERICS_VERSION, (
        "NUMERICS_VERSION changed: re-record the golden losses with `python tests/test_golden.py --record`"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_a_tiny_run_trains_the_recorded_numbers(name):
    problem = moved(name, losses(CASES[name]), json.loads(GOLDEN.read_text())["losses"][name])
    assert problem is None, problem


@pytest.mark.slow
def test_the_check_catches_a_changed_schedule(monkeypatch):
    from mnist_report.modeling import train

    original = train.cosine_schedule
    monkeypatch.setattr(
        train, "cosine_schedule", lambda lr, epochs, floor=0.01, cycles=1: original(lr, epochs, 0.011, cycles)
    )
    name = "better, two cycles of the schedule"
    assert moved(name, losses(CASES[name]), json.loads(GOLDEN.read_text())["losses"][name]) is not None


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    from mnist_report.modeling.train import configure_threads

    configure_threads(1)
    GOLDEN.write_text(
        json.dumps({"numerics": NUMERICS_VERSION, "losses": {name: losses(c) for name, c in CASES.items()}}, indent=1)
        + "\n"
    )
    print(f"recorded {GOLDEN}")
