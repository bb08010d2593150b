"""The networks, built from a config: the baseline (the original experiment's network) and a stronger one."""

from __future__ import annotations

from mnist_report import quiet_tf  # noqa: F401  (first: TensorFlow imported without its probe noise)

# isort: split
import zipfile
from pathlib import Path

import keras
import numpy as np

from mnist_report.config import TrainConfig
from mnist_report.data import IMAGE_SHAPE, NUM_CLASSES

BASELINE_PARAMS = 225_034  # trainable parameters of the baseline network, as the experiment states


class Seeds:
    """Explicit seeds for every initializer and dropout layer, drawn from the run's seed alone.

    Keras' defaults draw them from Python's global random state, which another thread of the same
    process (a Dask worker's event loop) can advance between seeding and building the model: one run
    in a test then gave other numbers than the same run repeated.
    """

    def __init__(self, seed: int):
        self._rng = np.random.default_rng([seed, 1])

    def __call__(self) -> int:
        return int(self._rng.integers(1, 2**31 - 1))

    def glorot(self) -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=self())


def build_baseline_model(config: TrainConfig) -> keras.Model:
    """Conv32-Pool-Conv64-Pool-Flatten-Dense128-Dropout-Dense10, compiled with Adam and CCE.

    With ``precision="mixed_bfloat16"`` the layers compute in bfloat16 and keep float32 weights; the
    softmax output stays float32, as Keras' mixed-precision guide advises.
    """
    p = keras.DTypePolicy(config.precision)
    seed = Seeds(config.seed)
    model = keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE),
            keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu", kernel_initializer=seed.glorot(), dtype=p),
            keras.layers.MaxPooling2D(pool_size=(2, 2), dtype=p),
            keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu", kernel_initializer=seed.glorot(), dtype=p),
            keras.layers.MaxPooling2D(pool_size=(2, 2), dtype=p),
            keras.layers.Flatten(dtype=p),
            keras.layers.Dense(config.dense_units, activation="relu", kernel_initializer=seed.glorot(), dtype=p),
            keras.layers.Dropout(config.dropout, seed=seed(), dtype=p),
            keras.layers.Dense(NUM_CLASSES, activation="softmax", kernel_initializer=seed.glorot(), dtype="float32"),
        ],
        name="baseline_cnn",
    )
    return _compile(model, config)


def build_better_model(config: TrainConfig) -> keras.Model:
    """A stronger network: small random rotations, shifts and zooms of the training images, two
    blocks of two 3x3 convolutions with batch normalisation (``config.conv_width`` filters in the first
    block, twice as many in the second), a strided 5x5 convolution in place of
    pooling, dropout, and a dense layer of ``config.dense_units``; Adam, categorical cross-entropy.

    The augmentation layers act in training only, and compute in float32 whatever the policy.
    The learning rate follows a cosine decay over the run (``train.fit`` adds the schedule).
    """
    p = keras.DTypePolicy(config.precision)
    layers = keras.layers
    seed = Seeds(config.seed)

    bn = config.batch_norm
    # without batch normalisation (an ablation) each layer gets its bias back

    def conv_bn(filters, kernel, strides=1):
        # 3x3 convolutions shrink the image (28 -> 26 -> 24); the strided 5x5 ones halve it (24 -> 12)
        return [
            layers.Conv2D(
                filters,
                kernel,
                strides=strides,
                padding="same" if strides > 1 else "valid",
                use_bias=not bn,
                kernel_initializer=seed.glorot(),
                dtype=p,
            ),
            *([layers.BatchNormalization(dtype=p)] if bn else []),
            layers.Activation("relu", dtype=p),
        ]

    s, w = config.seed, config.conv_width
    augment = [
        layers.RandomRotation(10 / 360, fill_mode="constant", seed=s, dtype="float32"),
        layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=s + 1, dtype="float32"),
        layers.RandomZoom(0.1, fill_mode="constant", seed=s + 2, dtype="float32"),
    ]
    model = keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE),
            *(augment if config.augment else []),
            *conv_bn(w, 3),
            *conv_bn(w, 3),
            *conv_bn(w, 5, strides=2),
            layers.Dropout(0.4, seed=seed(), dtype=p),
            *conv_bn(2 * w, 3),
            *conv_bn(2 * w, 3),
            *conv_bn(2 * w, 5, strides=2),
            layers.Dropout(0.4, seed=seed(), dtype=p),
            layers.Flatten(dtype=p),
            layers.Dense(config.dense_units, use_bias=not bn, kernel_initializer=seed.glorot(), dtype=p),
            *([layers.BatchNormalization(dtype=p)] if bn else []),
            layers.Activation("relu", dtype=p),
            layers.Dropout(config.dropout, seed=seed(), dtype=p),
            layers.Dense(NUM_CLASSES, activation="softmax", kernel_initializer=seed.glorot(), dtype="float32"),
        ],
        name="better_cnn",
    )
    return _compile(model, config)


def _compile(model: keras.Model, config: TrainConfig) -> keras.Model:
    """Both networks: categorical cross-entropy (with ``config.label_smoothing``), Adam at
    ``config.learning_rate`` (keeping an exponential moving average of the weights where
    ``config.ema_momentum`` is set; ``train.fit`` evaluates with it and ends with it), accuracy."""
    ema = config.ema_momentum > 0
    model.compile(
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        optimizer=keras.optimizers.Adam(
            learning_rate=config.learning_rate, use_ema=ema, ema_momentum=config.ema_momentum if ema else 0.99
        ),
        metrics=["accuracy"],
    )
    return model


def build_model(config: TrainConfig) -> keras.Model:
    """The network ``config.architecture`` names."""
    return build_better_model(config) if config.architecture == "better" else build_baseline_model(config)


def architecture_table(model: keras.Model) -> list[dict]:
    """One row per layer: name, type, output shape, parameters (for the report)."""
    return [
        {
            "layer": layer.name,
            "type": type(layer).__name__,
            "output shape": str(tuple(layer.output.shape)),
            "parameters": layer.count_params(),
        }
        for layer in model.layers
    ]


def without_training_state(model: keras.Model) -> keras.Model:
    """The same network, uncompiled: no loss, no optimizer and none of its state (a third of the size with
    Adam's moments), loadable with ``keras.models.load_model`` alone."""
    plain = model.__class__.from_config(model.get_config())
    plain.set_weights(model.get_weights())
    return plain


# The views test-time augmentation averages: the image itself, and moved one pixel up, down, left and right.
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def predict_proba(model: keras.Model, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities (N, 10), in inference mode (dropout and augmentation off)."""
    if not len(images):
        return np.zeros((0, NUM_CLASSES))
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float64)


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``images`` (N, H, W, C) moved ``dy`` pixels down and ``dx`` right; the uncovered border is 0 (background)."""
    out = np.zeros_like(images)
    h, w = images.shape[1:3]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = images[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def tta_proba(model: keras.Model, images: np.ndarray, shifts=SHIFTS) -> np.ndarray:
    """The mean of the model's class probabilities over ``shifts`` of each image."""
    if not len(images):
        return np.zeros((0, NUM_CLASSES))
    return np.mean([predict_proba(model, shifted(images, dy, dx)) for dy, dx in shifts], axis=0)


def load_model(path: str | Path) -> keras.Model:
    """Load a saved model, with a clear error if the file is missing or not a Keras model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such model file (train one with `make report` or "
            f"`python -m mnist_report train --save-model {path}`)"
        )
    # Keras says "File not found" for a .keras file that is there but not a zip (.h5 files are HDF5)
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a Keras model file: a .keras model is a zip archive written by Keras "
            "(`model.save`), and this file is not one"
        )
    try:
        return keras.models.load_model(path)
    except Exception as e:
        raise ValueError(f"{path} is not a Keras model that loads ({type(e).__name__}: {e})") from e
