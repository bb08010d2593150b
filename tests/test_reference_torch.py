"""The PyTorch reference of `make bench`: skipped where torch (the [bench] extra) is not installed."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks.reference_torch import BaselineNet, TorchTrainer  # noqa: E402
from mnist_report import data  # noqa: E402
from mnist_report.config import TrainConfig  # noqa: E402
from mnist_report.modeling.model import BASELINE_PARAMS, build_baseline_model  # noqa: E402


def test_the_reference_network_has_the_baseline_networks_parameters():
    net = BaselineNet()
    n_params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert n_params == BASELINE_PARAMS == 225_034
    assert n_params == build_baseline_model(TrainConfig()).count_params()
    # the same layers, in the same order, with the same weight shapes (PyTorch stores them transposed)
    keras_shapes = [tuple(w.shape) for w in build_baseline_model(TrainConfig()).weights]
    torch_shapes = [tuple(p.shape) for p in net.parameters()]
    assert [int(np.prod(s)) for s in torch_shapes] == [int(np.prod(s)) for s in keras_shapes]
    # Keras' initialisation: zero biases
    layers = [m for m in net.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    assert len(layers) == 4 and all(torch.count_nonzero(m.bias) == 0 for m in layers)


@pytest.mark.slow
def test_the_reference_learns_mnist_in_a_tiny_run(raw):
    splits = data.splits_for(raw, TrainConfig(n_train=512, n_test=256, validation_fraction=0.0, seed=0))
    trainer = TorchTrainer(splits.x_train, splits.y_train, batch_size=32, seed=0, threads=1)
    before = trainer.predict(splits.x_test)
    assert before.shape == (256, 10) and before.dtype == np.float32
    losses = [trainer.epoch() for _ in range(2)]
    assert losses[1] < losses[0] < np.log(10) * 1.5  # from about ln(10), the loss of a uniform guess, down
    after = trainer.predict(splits.x_test)
    assert after.shape == (256, 10) and np.isfinite(after).all()
    accuracy = float((after.argmax(1) == splits.y_test).mean())
    assert accuracy > 0.6, accuracy  # chance is 0.1; 32 steps of Adam reach well above it
    # predict is in inference mode: dropout off, so the same images give the same outputs
    np.testing.assert_array_equal(trainer.predict(splits.x_test[:50]), after[:50])
