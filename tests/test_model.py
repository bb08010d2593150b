import keras

from mnist_report.config import TrainConfig
from mnist_report.model import SEED_PARAMS, architecture_table, build_seed_model


def test_seed_architecture_exactly():
    model = build_seed_model(TrainConfig())
    layers = [(type(layer).__name__, getattr(layer, "filters", None) or getattr(layer, "units", None))
              for layer in model.layers]
    assert layers == [("Conv2D", 32), ("MaxPooling2D", None), ("Conv2D", 64), ("MaxPooling2D", None),
                      ("Flatten", None), ("Dense", 128), ("Dropout", None), ("Dense", 10)]
    assert model.layers[0].kernel_size == (3, 3) and model.layers[1].pool_size == (2, 2)
    assert model.layers[0].activation.__name__ == "relu" and model.layers[-1].activation.__name__ == "softmax"
    assert model.layers[6].rate == 0.5
    trainable = sum(keras.ops.size(w) for w in model.trainable_weights)
    assert int(trainable) == SEED_PARAMS == 225_034
    assert model.loss == "categorical_crossentropy"
    assert isinstance(model.optimizer, keras.optimizers.Adam)


def test_architecture_table_sums_to_the_parameter_count():
    table = architecture_table(build_seed_model(TrainConfig(dropout=0.25)))
    assert sum(r["parameters"] for r in table) == SEED_PARAMS
    assert table[-1]["output shape"] == "(None, 10)"


def test_mixed_bfloat16_computes_in_bf16_with_float32_weights_and_output():
    model = build_seed_model(TrainConfig(precision="mixed_bfloat16"))
    assert model.layers[0].compute_dtype == "bfloat16" and model.layers[0].variable_dtype == "float32"
    assert model.layers[-1].compute_dtype == "float32"  # the softmax stays float32
    assert model.count_params() == SEED_PARAMS
