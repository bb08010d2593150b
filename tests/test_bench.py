import importlib.util

import pytest

from mnist_report import bench
from mnist_report.config import TrainConfig
from mnist_report.model import build_baseline_model


def test_flops_of_the_seed_network_from_its_layer_shapes():
    flops = bench.flops_per_image(build_baseline_model(TrainConfig()))
    by_layer = [r["flops"] for r in flops["layers"]]
    assert by_layer == [2 * 26 * 26 * 32 * 9, 2 * 11 * 11 * 64 * 9 * 32, 2 * 1600 * 128, 2 * 128 * 10]
    assert flops["forward"] == 5_262_080
    assert flops["training"] == 3 * 5_262_080 - 389_376


def test_matmul_throughput_is_flops_over_the_median_time(monkeypatch):
    ticks = iter([0.0, 0.5, 10.0, 12.0, 20.0, 21.0])  # three products timed: 0.5 s, 2 s and 1 s
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(ticks))
    assert bench.matmul_gflops(n=100, repeats=3) == pytest.approx(2 * 100**3 / 1.0 / 1e9)  # the median, 1 s


def test_targets_are_judged_from_the_numbers():
    results = {
        "torch": {"speed_vs_reference": 1.0},
        "keras-float32": {"speed_vs_reference": 1.31},
        "keras-mixed_bfloat16": {"speed_vs_reference": 1.5, "steady_epoch_seconds": 5.0,
                                 "flop_implied_epoch_seconds": 2.0},
    }  # fmt: skip
    rows = bench.check_targets(results)
    assert [r["met"] for r in rows] == [True, False, False]
    assert rows[2]["measured"] == 2.5


@pytest.mark.slow
def test_bench_smoke_tiny(tmp_path, capsys):
    impls = ["keras-float32"] + (["torch"] if importlib.util.find_spec("torch") else [])
    out = tmp_path / "bench.json"
    args = ["--impls", ",".join(impls), "--epochs", "2", "--n-train", "256", "--n-test", "128", "--out", str(out)]
    assert bench.main(args) == 0
    text = capsys.readouterr().out
    assert "| keras-float32 |" in text and "GFLOP/s" in text
    report = bench.json.loads(out.read_text())
    r = report["results"]["keras-float32"]
    assert len(r["epoch_seconds"]) == 2 and r["train_images_per_second"] > 0 and r["peak_memory_mb"] > 50
    assert report["setup"]["n_train"] == 256 and report["matmul_gflops"] > 0
    if "torch" in impls:
        assert report["results"]["torch"]["speed_vs_reference"] == 1.0


def test_bench_rejects_unknown_implementations():
    with pytest.raises(ValueError, match="unknown implementation 'jax'"):
        bench.run(["jax"])
