import zipfile

import keras
import numpy as np
import pytest

from mnist_report.config import TrainConfig
from mnist_report.modeling import model as M
from mnist_report.modeling.model import BASELINE_PARAMS, architecture_table, build_baseline_model, build_model
from mnist_report.modeling.train import cosine_schedule


def test_baseline_architecture_is_the_original_experiments_exactly():
    model = build_baseline_model(TrainConfig())
    layers = [
        (type(layer).__name__, getattr(layer, "filters", None) or getattr(layer, "units", None))
        for layer in model.layers
    ]
    assert layers == [
        ("Conv2D", 32),
        ("MaxPooling2D", None),
        ("Conv2D", 64),
        ("MaxPooling2D", None),
        ("Flatten", None),
        ("Dense", 128),
        ("Dropout", None),
        ("Dense", 10),
    ]
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
        return [
            layer.filters
            for layer in build_model(TrainConfig(architecture="better", conv_width=width)).layers
            if hasattr(layer, "filters")
        ]

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


NARROW = dict(architecture="better", conv_width=4, dense_units=16)  # the same layers, little arithmetic


def _kinds(model):
    return [type(layer).__name__ for layer in model.layers]


def test_the_better_network_without_augmentation_has_no_random_layers_and_the_same_rest():
    full, plain = build_model(TrainConfig(**NARROW)), build_model(TrainConfig(**NARROW, augment=False))
    assert not [k for k in _kinds(plain) if k.startswith("Random")]
    assert _kinds(full)[:3] == ["RandomRotation", "RandomTranslation", "RandomZoom"]
    assert _kinds(plain) == _kinds(full)[3:] and plain.count_params() == full.count_params()
    assert plain.output_shape == (None, 10)


def test_the_better_network_without_batch_norm_has_none_and_its_biases_back():
    with_bn, without = build_model(TrainConfig(**NARROW)), build_model(TrainConfig(**NARROW, batch_norm=False))
    assert "BatchNormalization" not in _kinds(without) and _kinds(with_bn).count("BatchNormalization") == 7
    assert _kinds(without).count("Conv2D") == 6 and without.output_shape == (None, 10)
    convs = [layer for layer in without.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(c.use_bias and c.bias is not None for c in convs)  # each convolution gets its bias back
    assert all(not layer.use_bias for layer in with_bn.layers if isinstance(layer, keras.layers.Conv2D))
    dense = [layer for layer in without.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.use_bias for d in dense] == [True, True]
    # by hand: conv filters 4, 4, 4, 8, 8, 8 and 16 dense units, 52 channels in all. Batch norm has 4 numbers
    # per channel (2 trainable: scale and offset); without it each channel has 1 bias instead
    channels = 3 * 4 + 3 * 8 + 16
    assert without.count_params() == with_bn.count_params() - 3 * channels
    trainable = [sum(int(keras.ops.size(w)) for w in m.trainable_weights) for m in (with_bn, without)]
    assert trainable[1] == trainable[0] - channels


def test_without_augmentation_and_batch_norm_at_once():
    kinds = _kinds(build_model(TrainConfig(**NARROW, augment=False, batch_norm=False)))
    assert kinds[0] == "Conv2D" and "BatchNormalization" not in kinds


def test_predict_proba_gives_float64_probabilities_and_takes_no_images():
    model = build_model(TrainConfig(seed=1))
    x = np.random.default_rng(0).random((5, 28, 28, 1)).astype("float32")
    p = M.predict_proba(model, x, batch_size=2)
    assert p.shape == (5, 10) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(p, M.predict_proba(model, x), rtol=1e-6)  # the batch size: rounding at most
    assert M.predict_proba(model, x[:0]).shape == (0, 10)


def test_shifted_moves_the_image_and_fills_the_border_with_background():
    img = np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4, 1)
    down = M.shifted(img, 1, 0)[0, :, :, 0]
    np.testing.assert_array_equal(down[0], 0)
    np.testing.assert_array_equal(down[1:], img[0, :3, :, 0])
    left = M.shifted(img, 0, -1)[0, :, :, 0]
    np.testing.assert_array_equal(left[:, :3], img[0, :, 1:, 0])
    np.testing.assert_array_equal(left[:, 3], 0)
    np.testing.assert_array_equal(M.shifted(img, 0, 0), img)
    # each of the five views moves the image by at most one pixel
    assert len(set(M.SHIFTS)) == 5 and (0, 0) in M.SHIFTS and all(abs(dy) + abs(dx) <= 1 for dy, dx in M.SHIFTS)


def test_tta_averages_the_views_and_the_identity_alone_is_the_plain_prediction():
    model = build_model(TrainConfig(seed=1))
    x = np.random.default_rng(0).random((6, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(M.tta_proba(model, x, shifts=[(0, 0)]), M.predict_proba(model, x))
    views = [M.predict_proba(model, M.shifted(x, dy, dx)) for dy, dx in M.SHIFTS]
    np.testing.assert_allclose(M.tta_proba(model, x), np.mean(views, axis=0), rtol=1e-6)
    assert M.tta_proba(model, x[:0]).shape == (0, 10)


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        M.load_model(tmp_path / "nope.keras")
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match="bad.keras is not a Keras model file: a .keras model is a zip archive") as e:
        M.load_model(bad)
    assert "not found" not in str(e.value)  # Keras' own message says "File not found" for a file that is there
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("hello.txt", "a zip, but no model")
    with pytest.raises(ValueError, match="bad.keras is not a Keras model that loads"):
        M.load_model(bad)


def test_a_saved_network_loads_to_the_same_predictions(tmp_path):
    from mnist_report.modeling.resume import model_bytes

    model = build_model(TrainConfig(**NARROW, seed=2))
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    slim = keras.models.clone_model(model)  # as runs.task stores a network: without its optimizer
    slim.set_weights(model.get_weights())
    (tmp_path / "m.keras").write_bytes(model_bytes(slim))
    np.testing.assert_allclose(
        M.predict_proba(M.load_model(tmp_path / "m.keras"), x), M.predict_proba(model, x), atol=1e-6
    )
