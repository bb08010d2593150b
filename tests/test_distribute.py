"""Training through tf.distribute: MirroredStrategy over two logical CPU devices, in a subprocess
(logical devices must be configured before TensorFlow starts)."""

import json
import subprocess
import sys
import textwrap

import pytest

from mnist_report.paths import PROJECT_ROOT

SCRIPT = textwrap.dedent(
    """
    import json
    import tensorflow as tf

    from mnist_report.modeling import train

    train.configure_threads(1)  # before the devices are configured, as the runs' configuration asks
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from mnist_report import data
    from mnist_report.config import TrainConfig
    from mnist_report.analysis.evaluate import evaluate
    from mnist_report.modeling.model import predict_proba

    config = TrainConfig(epochs=2, seed=0, n_train=1500, n_test=1000, batch_size=32)  # small batches: enough steps
    splits = data.splits_for(data.load_idx(), config)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {"replicas": strategy.num_replicas_in_sync}
    for name, s in (("mirrored", strategy), ("single", None)):
        run = train.train(config, splits, strategy=s)
        ev = evaluate(splits.y_test, predict_proba(run.model, splits.x_test))
        out[name] = {"accuracy": ev.accuracy, "epochs": len(run.history["loss"])}
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.slow
def test_mirrored_strategy_trains_to_the_same_accuracy_as_one_device():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert out["replicas"] == 2
    mirrored, single = out["mirrored"]["accuracy"], out["single"]["accuracy"]
    assert mirrored > 0.85 and single > 0.85
    # 1,000 test images: the binomial s.e. near 90% is about 1 point; allow three
    assert abs(mirrored - single) < 0.03, out
    assert out["mirrored"]["epochs"] == out["single"]["epochs"] == 2  # both trained the two epochs asked for
