"""One dataclass of run parameters, validated on construction, before any training starts."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

PRECISIONS = ("float32", "mixed_bfloat16")
ARCHITECTURES = ("baseline", "better")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run.  The defaults are the original experiment's (the baseline)."""

    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3  # Adam's default
    dropout: float = 0.5
    validation_fraction: float = 0.1  # held out from the training set
    n_train: int | None = None  # first n of the shuffled training set; None = all 60,000
    n_test: int | None = None  # first n test images; None = all 10,000
    seed: int = 42
    precision: str = "float32"  # or "mixed_bfloat16": bf16 compute, float32 weights and softmax
    dense_units: int = 128  # width of the dense layer (the baseline network's 128)
    architecture: str = "baseline"  # the original network; or "better": batch norm, more convolutions, augmentation
    threads: int = 1  # TensorFlow's intra- and inter-op threads for this run (its numbers depend on them)
    patience: int | None = None  # stop after this many epochs without a better validation accuracy; None: never
    ema_momentum: float = 0.0  # 0: no weight averaging; else the momentum of an exponential moving average of the
    # weights (Keras' optimizer ``use_ema``), which validation and the final network use
    label_smoothing: float = 0.0  # share of each one-hot target spread evenly over the 10 classes
    conv_width: int = 32  # the better network's filters in its first block (twice as many in its second)
    cycles: int = 1  # cycles of the better network's cosine schedule (cycles - 1 restarts), each ending in a snapshot
    augment: bool = True  # the better network's random rotations, shifts and zooms of the training images
    batch_norm: bool = True  # the better network's batch normalisation after each convolution and the dense layer

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "seed", "dense_units", "threads", "cycles", "conv_width"):
            _check_int(name, getattr(self, name))
        for name in ("n_train", "n_test", "patience"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name))
        for name in ("learning_rate", "dropout", "validation_fraction", "ema_momentum", "label_smoothing"):
            _check_number(name, getattr(self, name))
        _require(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _require(0 <= self.seed < 2**32, "seed", self.seed, "an integer in [0, 2**32 - 1]")
        _require(0 < self.learning_rate <= 1, "learning_rate", self.learning_rate, "a number in (0, 1]")
        _require(0 <= self.dropout < 1, "dropout", self.dropout, "a number in [0, 1)")
        _require(
            0 <= self.validation_fraction < 1,
            "validation_fraction",
            self.validation_fraction,
            "a number in [0, 1)",
        )
        if self.n_train is not None:
            _require(1 <= self.n_train <= 60000, "n_train", self.n_train, "None or an integer in [1, 60000]")
            n_fit = self.n_train - round(self.n_train * self.validation_fraction)
            _require(
                n_fit >= 1,
                "n_train",
                self.n_train,
                f"large enough to leave training images after the validation share {self.validation_fraction}",
            )
        _require(self.precision in PRECISIONS, "precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        _require(self.dense_units >= 1, "dense_units", self.dense_units, "an integer >= 1")
        _require(
            self.architecture in ARCHITECTURES,
            "architecture",
            self.architecture,
            f"one of {', '.join(ARCHITECTURES)}",
        )
        _require(1 <= self.threads <= 1024, "threads", self.threads, "an integer in [1, 1024]")
        if self.patience is not None:
            _require(self.patience >= 1, "patience", self.patience, "None or an integer >= 1")
            _require(
                self.validation_fraction > 0,
                "validation_fraction",
                self.validation_fraction,
                "> 0 when patience is set (early stopping watches the validation accuracy)",
            )
        _require(0 <= self.ema_momentum < 1, "ema_momentum", self.ema_momentum, "0 (none) or a number in (0, 1)")
        _require(0 <= self.label_smoothing < 1, "label_smoothing", self.label_smoothing, "a number in [0, 1)")
        _require(
            self.cycles >= 1 and self.epochs % self.cycles == 0,
            "cycles",
            self.cycles,
            f"an integer >= 1 that divides epochs ({self.epochs})",
        )
        _require(
            self.conv_width == 32 or (self.architecture == "better" and self.conv_width >= 1),
            "conv_width",
            self.conv_width,
            "32 for the baseline network (its layers are the experiment's); >= 1 for the better",
        )
        if self.cycles > 1:
            _require(
                self.architecture == "better",
                "cycles",
                self.cycles,
                "1 for the baseline network (only the better network has a learning-rate schedule)",
            )
            # the average would mix the weights of one cycle's end into the next cycle's snapshot
            _require(self.ema_momentum == 0, "cycles", self.cycles, "1 when ema_momentum is set")
        for name in ("augment", "batch_norm"):
            value = getattr(self, name)
            _require(isinstance(value, bool), name, value, "True or False")
            _require(
                value or self.architecture == "better",
                name,
                value,
                "True for the baseline network (it has neither; only the better network can leave them out)",
            )
        if self.n_test is not None:
            _require(1 <= self.n_test <= 10000, "n_test", self.n_test, "None or an integer in [1, 10000]")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainConfig:
        """Build from a mapping (notebook parameters, CLI, JSON); unknown names are an error."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)}; the allowed parameters are {', '.join(allowed)}"
            )
        return cls(**params)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {allowed}; got {value!r}")


def _check_int(name: str, value: Any) -> None:
    # bool is an int subclass in Python, but epochs=True is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")


def _check_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r} ({type(value).__name__})")
