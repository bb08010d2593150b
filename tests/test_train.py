import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_notebook

from mnist_report import data, machine
from mnist_report.__main__ import main
from mnist_report.analysis.evaluate import evaluate
from mnist_report.config import TrainConfig
from mnist_report.modeling import train
from mnist_report.modeling.model import load_model, predict_proba
from mnist_report.paths import PROJECT_ROOT

# the configuration of conftest's small_splits (1,000 training images, a tenth held out, 500 test images, seed 0)
SMALL = dict(epochs=2, batch_size=64, n_train=1000, n_test=500, seed=0)


@pytest.fixture(scope="module")
def first_run(small_splits):
    same = data.splits_for(data.load_idx(), TrainConfig(**SMALL))  # the config describes the images it trains on
    for part in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(same, part), getattr(small_splits, part))
    run = train.train(TrainConfig(**SMALL), small_splits)
    return run, predict_proba(run.model, small_splits.x_test)


@pytest.mark.slow
def test_training_learns_and_logs_one_line_per_epoch(small_splits, capsys):
    run = train.train(TrainConfig(**{**SMALL, "epochs": 2}), small_splits)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert "\r" not in "".join(lines) and "val_accuracy" in lines[0]
    assert set(run.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(run.history["loss"]) == 2 and run.history["loss"][1] < run.history["loss"][0]
    ev = evaluate(small_splits.y_test, predict_proba(run.model, small_splits.x_test))
    assert ev.accuracy > 0.6  # 900 images, 2 epochs: far above the 10% of guessing


@pytest.mark.slow
def test_same_seed_same_numbers(first_run, small_splits):
    _, proba = first_run
    run2 = train.train(TrainConfig(**SMALL), small_splits)
    proba2 = predict_proba(run2.model, small_splits.x_test)
    np.testing.assert_array_equal(proba, proba2)
    a, b = evaluate(small_splits.y_test, proba), evaluate(small_splits.y_test, proba2)
    assert a.accuracy == b.accuracy
    np.testing.assert_array_equal(a.confusion, b.confusion)


@pytest.mark.slow
def test_another_seed_other_numbers(first_run, small_splits):
    _, proba = first_run
    run2 = train.train(TrainConfig(**{**SMALL, "seed": 1}), small_splits)  # the same images, another seed
    assert not np.array_equal(proba, predict_proba(run2.model, small_splits.x_test))


@pytest.mark.slow
def test_a_saved_network_reloads_to_the_same_predictions(first_run, small_splits, tmp_path):
    run, proba = first_run
    assert run.config == TrainConfig(**SMALL) and len(run.history["loss"]) == len(run.epoch_seconds) == 2
    assert run.resumed_at == 0 and run.train_seconds == pytest.approx(sum(run.epoch_seconds))
    run.model.save(tmp_path / "model.keras")
    np.testing.assert_allclose(
        predict_proba(load_model(tmp_path / "model.keras"), small_splits.x_test), proba, rtol=1e-5, atol=1e-6
    )


@pytest.mark.slow
def test_cli_evaluate_matches_the_array_path(first_run, small_splits, tmp_path, capsys):
    run, proba = first_run
    path = tmp_path / "m.keras"
    run.model.save(path)
    assert main(["evaluate", "--model", str(path), "--n-test", "500", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["accuracy"] == evaluate(small_splits.y_test, proba).accuracy and got["n"] == 500


def test_cli_rejects_bad_parameters_before_training(tmp_path):
    code = (
        "import sys; from mnist_report.__main__ import main; "
        f"status = main(['train', '--epochs', '0', '--save-model', {str(tmp_path / 'm.keras')!r}]); "
        "print('tensorflow' in sys.modules); sys.exit(status)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert r.returncode == 2 and "epochs must be an integer >= 1; got 0" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "m.keras").exists()
    assert r.stdout.strip() == "False"  # rejected before TensorFlow was loaded


def test_cli_bad_input_gets_one_line_before_any_work(tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path / "x.keras")]) == 2
    assert "no such model file" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_bytes(b"")
    assert main(["predict", "digit.png", "--model", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"is a folder; --model takes a model file, such as {tmp_path / 'run' / 'model.keras'}" in err
    (tmp_path / "a-file").write_text("")
    assert main(["train", "--save-model", str(tmp_path / "a-file" / "m.keras")]) == 2  # before training
    assert "a-file is not a folder this user can write to" in capsys.readouterr().err
    assert main(["train", "--save-model", str(tmp_path)]) == 2
    assert "must be a file whose name ends in .keras" in capsys.readouterr().err
    nb = write_notebook(tmp_path / "nb.ipynb", "x = 1", "print(x)")
    assert main(["notebook", str(nb), str(tmp_path / "out.html")]) == 2
    assert "a file whose name ends in .ipynb" in capsys.readouterr().err
    for args, message in [
        (["train", "--n-train", "abc"], "expected a whole number or None; got 'abc'"),
        (["notebook", str(nb), "o.ipynb", "--timeout", "0"], "at least 1; got '0'"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main([*args, "--save-model", "m.keras"] if args[0] == "train" else args)
        assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_bf16_training_learns_and_warns_where_bf16_is_emulated(small_splits, capsys):
    config = TrainConfig(**{**SMALL, "epochs": 1, "n_train": 1000, "precision": "mixed_bfloat16"})
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = train.train(config, small_splits)
    emulated = [w for w in caught if "bfloat16 is emulated" in str(w.message)]
    assert bool(emulated) == (not machine.bf16_native())
    # it learns as float32 does: one epoch (14 steps) of the same run in float32 reaches about the same accuracy
    bf16 = evaluate(small_splits.y_test, predict_proba(run.model, small_splits.x_test)).accuracy
    f32_run = train.train(TrainConfig(**{**config.to_dict(), "precision": "float32"}), small_splits, print_fn=None)
    f32 = evaluate(small_splits.y_test, predict_proba(f32_run.model, small_splits.x_test)).accuracy
    assert bf16 > 0.3 and abs(bf16 - f32) < 0.1, (bf16, f32)  # chance is 0.1; 500 test images


def test_cli_train_parser_types_every_config_field(capsys):
    from mnist_report.__main__ import _parser

    args = _parser().parse_args(
        [
            "train",
            "--save-model",
            "m.keras",
            "--precision",
            "mixed_bfloat16",
            "--learning-rate",
            "0.01",
            "--n-train",
            "500",
            "--patience",
            "None",
        ]
    )
    assert (args.precision, args.learning_rate, args.n_train, args.epochs) == ("mixed_bfloat16", 0.01, 500, 10)
    assert args.patience is None and _parser().parse_args(["train", "--save-model", "m.keras"]).n_test is None
    with pytest.raises(SystemExit):
        _parser().parse_args(["train", "--save-model", "m.keras", "--architecture", "resnet"])
    assert "invalid choice: 'resnet'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["train", "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert "--label-smoothing LABEL_SMOOTHING share of each one-hot target spread evenly" in helped  # config.py's words
    assert "exponential moving average of the weights" in helped  # a comment that goes on to a second line
    assert "--augment AUGMENT the better network's random rotations" in helped


def test_cli_train_parser_reads_false_for_the_ablation_switches():
    from mnist_report.__main__ import _parser

    args = _parser().parse_args(
        ["train", "--save-model", "m.keras", "--architecture", "better", "--augment", "False", "--batch-norm", "False"]
    )
    assert (args.augment, args.batch_norm) == (False, False)


@pytest.mark.slow
def test_cli_train_saves_the_model_it_tested(tmp_path, capsys):
    path = tmp_path / "new" / "folder" / "m.keras"  # made when the model is saved
    assert main(["train", "--epochs", "1", "--n-train", "300", "--n-test", "100", "--save-model", str(path)]) == 0
    said = capsys.readouterr().out.strip().splitlines()[-1]
    raw = data.load_idx()
    ev = evaluate(raw.y_test[:100], predict_proba(load_model(path), data.normalise(raw.x_test[:100])))
    assert said.endswith(f"test accuracy {ev.accuracy:.2%} ({ev.n_errors} errors in 100)")


@pytest.mark.slow
def test_the_better_network_trains_with_a_falling_learning_rate(small_splits):
    config = TrainConfig(architecture="better", epochs=2, batch_size=64, seed=3, conv_width=8, dense_units=32)
    run = train.train(config, small_splits, print_fn=None)
    assert run.model.name == "better_cnn"
    assert run.history["learning_rate"][1] < run.history["learning_rate"][0] == pytest.approx(config.learning_rate)
    assert len(run.history["val_accuracy"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "options", [{"augment": False}, {"batch_norm": False}], ids=["without-augmentation", "without-batch-norm"]
)
def test_the_better_network_trains_without_augmentation_or_without_batch_norm(small_splits, options):
    config = TrainConfig(
        architecture="better",
        epochs=3,
        batch_size=32,
        seed=3,
        conv_width=8,
        dense_units=32,
        dropout=0.1,
        learning_rate=3e-3,
        **options,
    )
    run = train.train(config, small_splits, print_fn=None)
    kinds = {type(layer).__name__ for layer in run.model.layers}
    assert ("RandomRotation" in kinds) == config.augment and ("BatchNormalization" in kinds) == config.batch_norm
    loss, accuracy = run.history["loss"], run.history["accuracy"]
    assert loss[0] > loss[1] > loss[2] and accuracy[-1] > accuracy[0]
    # 900 images, 3 epochs of a narrow network: the training accuracy is well above the 10% of guessing (batch
    # norm's moving statistics need more steps than this, so inference-mode accuracy says little here)
    assert accuracy[-1] > 0.25, run.history


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [{}, {"architecture": "better", "dense_units": 16, "conv_width": 4, "ema_momentum": 0.9, "label_smoothing": 0.1}],
    ids=["baseline", "better-averaged-smoothed"],
)
def test_one_trace_per_run_gives_the_numbers_of_two(small_splits, monkeypatch, options):
    """``train.build_state`` creates the optimizer's and the metrics' variables before ``fit`` traces the
    training step, which is then traced once, not twice; the numbers are those of a run that leaves it to
    ``fit``, bit for bit (what the run store relies on: a run's key is its configuration, not how it was traced)."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traces = []
    step = TensorFlowTrainer.train_step
    monkeypatch.setattr(TensorFlowTrainer, "train_step", lambda self, batch: traces.append(1) or step(self, batch))
    config = TrainConfig(epochs=2, batch_size=64, seed=3, **options)
    once = train.train(config, small_splits, print_fn=None)
    once_traces, traces[:] = len(traces), []
    monkeypatch.setattr(train, "build_state", lambda model, batch_spec: None)
    twice = train.train(config, small_splits, print_fn=None)
    assert (once_traces, len(traces)) == (1, 2)
    assert once.history == twice.history
    np.testing.assert_array_equal(
        predict_proba(once.model, small_splits.x_test), predict_proba(twice.model, small_splits.x_test)
    )


@pytest.mark.parametrize(
    ("capability", "cpu_flags", "native"),
    [
        (None, ["avx2", "fma"], False),  # no GPU, a CPU without bf16
        (None, ["avx2", "avx512_bf16"], True),  # no GPU, AVX512_BF16
        (None, ["amx_bf16", "amx_tile"], True),  # no GPU, AMX
        ((7, 5), ["avx2", "fma"], False),  # a Turing GPU emulates bf16
        ((8, 0), ["avx2", "fma"], True),  # Ampere and later have it
        ((9, 0), ["avx2", "fma"], True),
    ],
)
def test_bf16_native_needs_an_ampere_gpu_or_a_bf16_cpu(monkeypatch, capability, cpu_flags, native):
    gpus = ["GPU:0"] if capability else []
    monkeypatch.setattr(train.tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(
        train.tf.config.experimental, "get_device_details", lambda device: {"compute_capability": capability}
    )
    monkeypatch.setattr(machine, "cpu", lambda: {"model": "fake", "cores": 2, "flags": cpu_flags})
    assert machine.bf16_native() is native
