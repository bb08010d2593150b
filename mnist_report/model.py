"""The seed network, built from a config."""

from __future__ import annotations

import keras

from mnist_report.config import TrainConfig
from mnist_report.data import IMAGE_SHAPE, NUM_CLASSES

SEED_PARAMS = 225_034  # trainable parameters of the seed network, as the experiment states


def build_seed_model(config: TrainConfig) -> keras.Model:
    """Conv32-Pool-Conv64-Pool-Flatten-Dense128-Dropout-Dense10, compiled with Adam and CCE.

    With ``precision="mixed_bfloat16"`` the layers compute in bfloat16 and keep float32 weights; the
    softmax output stays float32, as Keras' mixed-precision guide advises.
    """
    p = keras.DTypePolicy(config.precision)
    model = keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE),
            keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu", dtype=p),
            keras.layers.MaxPooling2D(pool_size=(2, 2), dtype=p),
            keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu", dtype=p),
            keras.layers.MaxPooling2D(pool_size=(2, 2), dtype=p),
            keras.layers.Flatten(dtype=p),
            keras.layers.Dense(128, activation="relu", dtype=p),
            keras.layers.Dropout(config.dropout, dtype=p),
            keras.layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name="seed_cnn",
    )
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        metrics=["accuracy"],
    )
    return model


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
