import keras
import numpy as np
import pytest

from mnist_report.config import TrainConfig
from mnist_report.modeling.model import BASELINE_PARAMS, architecture_table, build_baseline_model, build_model
from mnist_report.modeling.train import cosine_schedule


def test_baseline_architecture_is_the_original_experiments_exactly():
    model = build_baseline_model(TrainConfig())
    layers = [(type(layer).__name__, getattr(layer, "filters", None) or getattr(layer, "units", None))
              for layer in model.layers]
    assert layers == [("Conv2D", 32), ("MaxPooling2D", None), ("Conv2D", 64), ("MaxPooling2D", None),
                      ("Flatten", None), ("Dense", 128), ("Dropout", None), ("Dense", 10)]
    assert model.layers[0].kernel_size == (3, 3) and model.layers[1].pool_size == (2, 2)
    assert model.layers[0].activation.__name__ == "relu" and model.layers[-1].activation.__name__ == "softmax"
    assert model.layers[6].rate == 0.5
    trainable = sum(keras.ops.size(w) for w in model.trainable_weights)
    assert int(trainable) == BASELINE_PARAMS == 225_034
    assert isinstance(model.loss, keras.losses.CategoricalCrossentropy)
    assert model.loss.get_config()["label_smoothing"] == 0 and not model.loss.get_config()["from_logits"]
    assert isinstance(model.optimizer, keras.optimizers.Adam) and not model.optimizer.use_ema


def test_label_smoothing_and_weight_averaging_reach_the_loss_and_the_optimizer():
    model = build_model(TrainConfig(architecture="better", label_smoothing=0.1, ema_momentum=0.999))
    assert model.loss.get_config()["label_smoothing"] == 0.1
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == 0.999


def test_conv_width_sets_the_better_network_filters():
    def filters(width):
        return [layer.filters for layer in build_model(TrainConfig(architecture="better", conv_width=width)).layers
                if hasattr(layer, "filters")]  # fmt: skip

    assert filters(32) == [32, 32, 32, 64, 64, 64] and filters(48) == [48, 48, 48, 96, 96, 96]


def test_architecture_table_sums_to_the_parameter_count():
    table = architecture_table(build_baseline_model(TrainConfig(dropout=0.25)))
    assert sum(r["parameters"] for r in table) == BASELINE_PARAMS
    assert table[-1]["output shape"] == "(None, 10)"


def test_mixed_bfloat16_computes_in_bf16_with_float32_weights_and_output():
    model = build_baseline_model(TrainConfig(precision="mixed_bfloat16"))
    assert model.layers[0].compute_dtype == "bfloat16" and model.layers[0].variable_dtype == "float32"
    assert model.layers[-1].compute_dtype == "float32"  # the softmax stays float32
    assert model.count_params() == BASELINE_PARAMS


def test_dense_units_sets_the_dense_layer_width():
    model = build_baseline_model(TrainConfig(dense_units=64))
    assert model.layers[5].units == 64
    assert model.count_params() == BASELINE_PARAMS - 64 * (1600 + 1) - 64 * 10  # 64 fewer units in and out


def test_the_better_network_augments_normalises_and_ends_in_a_float32_softmax():
    model = build_model(TrainConfig(architecture="better", precision="mixed_bfloat16", dense_units=256))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[:3] == ["RandomRotation", "RandomTranslation", "RandomZoom"]
    assert kinds.count("BatchNormalization") == 7 and kinds.count("Conv2D") == 6
    assert all(layer.compute_dtype == "float32" for layer in model.layers[:3])  # augmentation in float32
    assert model.layers[-1].compute_dtype == "float32" and model.output_shape == (None, 10)
    assert model.name == "better_cnn" and build_model(TrainConfig()).name == "baseline_cnn"
    # augmentation acts in training only: inference is deterministic
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(model(x, training=False), model(x, training=False))


def test_the_cosine_schedule_falls_from_the_rate_to_one_percent():
    schedule = cosine_schedule(0.002, 10)
    rates = [schedule(e) for e in range(10)]
    assert rates[0] == 0.002 and abs(rates[-1] - 0.00002) < 1e-12
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))


def test_a_cyclic_schedule_restarts_the_cosine_each_cycle():
    rates = [cosine_schedule(0.002, 12, cycles=3)(e) for e in range(12)]
    one_cycle = [cosine_schedule(0.002, 4)(e) for e in range(4)]
    assert rates == one_cycle * 3


@pytest.mark.parametrize("architecture", ["baseline", "better"])
def test_the_initial_weights_come_from_the_run_seed_alone(architecture):
    """Not from Python's global random state, which another thread may advance while a model is built."""
    import random

    config = TrainConfig(architecture=architecture, seed=3)
    random.seed(1)
    first = build_model(config).get_weights()
    random.seed(2)
    random.random()
    again = build_model(config).get_weights()
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = build_model(TrainConfig(architecture=architecture, seed=4)).get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
