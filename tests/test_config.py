import pytest

from mnist_report.config import TrainConfig


def test_defaults_are_the_original_experiment():
    c = TrainConfig()
    assert (c.epochs, c.batch_size, c.dropout, c.learning_rate) == (10, 128, 0.5, 0.001)
    assert c.n_train is None and c.n_test is None
    assert c.augment is True and c.batch_norm is True  # the full recipe unless an ablation leaves a part out


def test_the_better_network_may_leave_out_augmentation_and_batch_norm():
    c = TrainConfig(architecture="better", augment=False, batch_norm=False)
    assert (c.augment, c.batch_norm) == (False, False)
    assert TrainConfig.from_params(c.to_dict()) == c and c != TrainConfig(architecture="better")


@pytest.mark.parametrize(
    "params, message",
    [
        ({"epochs": 0}, r"epochs must be an integer >= 1; got 0"),
        ({"epochs": -3}, r"epochs must be an integer >= 1"),
        ({"epochs": 2.5}, r"epochs must be an integer; got 2.5 \(float\)"),
        ({"epochs": "10"}, r"epochs must be an integer; got '10' \(str\)"),
        ({"epochs": True}, r"epochs must be an integer; got True \(bool\)"),
        ({"batch_size": 0}, r"batch_size must be an integer >= 1; got 0"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\); got 1.0"),
        ({"dropout": -0.1}, r"dropout must be a number in \[0, 1\)"),
        ({"dropout": float("nan")}, r"dropout must be a finite number"),
        ({"learning_rate": 0}, r"learning_rate must be a number in \(0, 1\]"),
        ({"validation_fraction": 1}, r"validation_fraction must be a number in \[0, 1\)"),
        ({"n_train": 0}, r"n_train must be None or an integer in \[1, 60000\]"),
        ({"n_train": 70000}, r"n_train must be None or an integer in \[1, 60000\]"),
        ({"n_train": 1, "validation_fraction": 0.9}, r"n_train must be large enough"),
        ({"n_test": 10001}, r"n_test must be None or an integer in \[1, 10000\]"),
        ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*32 - 1\]"),
        ({"seed": 2**32}, r"seed must be an integer in \[0, 2\*\*32 - 1\]; got 4294967296"),
        ({"precision": "float16"}, r"precision must be one of float32, mixed_bfloat16; got 'float16'"),
        ({"architecture": "resnet"}, r"architecture must be one of baseline, better; got .resnet."),
        ({"dense_units": 0}, r"dense_units must be an integer >= 1; got 0"),
        ({"threads": 0}, r"threads must be an integer in \[1, 1024\]; got 0"),
        ({"threads": 1.5}, r"threads must be an integer; got 1.5"),
        ({"patience": 0}, r"patience must be None or an integer >= 1; got 0"),
        ({"patience": 2, "validation_fraction": 0.0}, r"validation_fraction must be > 0 when patience is set"),
        ({"ema_momentum": 1.0}, r"ema_momentum must be 0 \(none\) or a number in \(0, 1\); got 1.0"),
        ({"label_smoothing": -0.1}, r"label_smoothing must be a number in \[0, 1\)"),
        (
            {"architecture": "better", "epochs": 20, "cycles": 3},
            r"cycles must be an integer >= 1 that divides epochs \(20\)",
        ),
        ({"epochs": 20, "cycles": 4}, r"cycles must be 1 for the baseline network"),
        (
            {"architecture": "better", "epochs": 20, "cycles": 4, "ema_momentum": 0.99},
            r"cycles must be 1 when ema_momentum",
        ),
        ({"conv_width": 48}, r"conv_width must be 32 for the baseline network"),
        ({"architecture": "better", "conv_width": 0}, r"conv_width must be 32 for the baseline network .*; >= 1"),
        ({"epoch": 3}, r"unknown parameter\(s\) epoch; the allowed parameters are epochs, batch_size"),
        # the ablation's switches: the better network's alone, and booleans only
        ({"augment": False}, r"augment must be True for the baseline network \(it has neither; only the better"),
        ({"batch_norm": False}, r"batch_norm must be True for the baseline network"),
        ({"architecture": "better", "augment": 0}, r"augment must be True or False; got 0"),
        ({"architecture": "better", "augment": "no"}, r"augment must be True or False; got 'no'"),
        ({"architecture": "better", "batch_norm": None}, r"batch_norm must be True or False; got None"),
        ({"batch_norm": 1}, r"batch_norm must be True or False; got 1"),
    ],
)
def test_bad_parameters_raise_a_value_error_naming_them(params, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_params(params)


def test_numpy_integers_are_accepted():
    import numpy as np

    assert TrainConfig(epochs=np.int64(3)).epochs == 3


def test_round_trip_through_a_dict():
    c = TrainConfig(epochs=3, n_train=2000)
    assert TrainConfig.from_params(c.to_dict()) == c
    assert {"augment", "batch_norm"} <= set(c.to_dict())
