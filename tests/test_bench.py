import ast
import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks import bench
from mnist_report.config import TrainConfig
from mnist_report.io import read_json
from mnist_report.modeling.model import build_baseline_model
from mnist_report.paths import PROJECT_ROOT
from mnist_report.reporting.readme import block_pattern
from mnist_report.runs import store


def test_flops_of_the_baseline_network_from_its_layer_shapes():
    flops = bench.flops_per_image(build_baseline_model(TrainConfig()))
    by_layer = [r["flops"] for r in flops["layers"]]
    assert by_layer == [2 * 26 * 26 * 32 * 9, 2 * 11 * 11 * 64 * 9 * 32, 2 * 1600 * 128, 2 * 128 * 10]
    assert flops["forward"] == 5_262_080
    assert flops["training"] == 3 * 5_262_080 - 389_376


def test_matmul_throughput_is_flops_over_the_median_time(monkeypatch):
    ticks = iter([0.0, 0.5, 10.0, 12.0, 20.0, 21.0])  # three products timed: 0.5 s, 2 s and 1 s
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(ticks))
    assert bench.matmul_gflops(n=100, repeats=3) == pytest.approx(2 * 100**3 / 1.0 / 1e9)  # the median, 1 s


def test_matmul_throughput_times_the_product_it_is_given(monkeypatch):
    calls = []
    ticks = iter([0.0, 0.25, 1.0, 1.25, 2.0, 2.25])
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(ticks))
    gflops = bench.matmul_gflops(n=512, repeats=3, product=lambda: calls.append(1))
    assert len(calls) == 4  # one warm-up call, then the three timed ones
    assert gflops == pytest.approx(2 * 512**3 / 0.25 / 1e9)


def test_the_peak_products_multiply_matrices():
    a, b = bench._matrices(64)
    np = bench.np
    np.testing.assert_allclose(bench.numpy_product(64)(), a @ b, rtol=1e-6)
    for dtype, rel in (("float32", 1e-5), ("bfloat16", 0.02)):  # bfloat16: 8 bits of mantissa
        got = bench.tf_product(64, dtype)()  # element [0, 0] of the product, computed in ``dtype``
        assert got.dtype.name == dtype and float(got) == pytest.approx(float((a @ b)[0, 0]), rel=rel)


# Fake measurements: each peak a different number, so that comparing a row with any other peak than its
# own gives another share and another FLOP-implied time.
PEAKS = {"tf-float32": 200.0, "tf-bfloat16": 600.0, "torch-float32": 300.0, "numpy-float32": 50.0}
TRAINING_FLOPS = 15e6  # per image
EPOCH_S = {"keras-float32": [9.0, 10.0, 10.0], "keras-mixed_bfloat16": [9.0, 4.0, 4.0], "torch": [9.0, 5.0, 5.0]}


def fake_report() -> dict:
    """A report as ``run`` writes it, from the fake measurements above (60,000 training images)."""
    peaks = {k: {"label": bench.PEAKS[k], "gflops": g, "measured": [g, g]} for k, g in PEAKS.items()}
    evals = {impl: [{"seconds": 0.5, "accuracy": 0.98}] for impl in EPOCH_S}
    quits = {impl: {"peak_rss_mb": 900.0, "frameworks": []} for impl in EPOCH_S}
    results = bench.summarize(EPOCH_S, evals, quits, peaks, TRAINING_FLOPS, 60_000, 10_000)
    return {
        "machine": {"model": "Test CPU", "cores": 2, "simd": ["avx2"]},
        "peaks": peaks,
        "matmul_n": 1024,
        "flops_per_image": {"training": TRAINING_FLOPS},
        "setup": {"epochs": 3, "n_train": 60_000, "n_test": 10_000, "batch_size": 128},
        "results": results,
        "targets": bench.check_targets(results),
    }


def test_each_row_is_compared_with_its_own_frameworks_peak_in_its_precision():
    report = fake_report()
    results = report["results"]
    assert {impl: r["peak"] for impl, r in results.items()} == {
        "keras-float32": "tf-float32",
        "keras-mixed_bfloat16": "tf-bfloat16",
        "torch": "torch-float32",
    }
    # images/s: 6,000, 15,000 and 12,000; 15 MFLOP each: 90, 225 and 180 GFLOP/s reached
    assert results["keras-float32"]["peak_share"] == pytest.approx(90 / 200)
    assert results["keras-mixed_bfloat16"]["peak_share"] == pytest.approx(225 / 600)
    assert results["torch"]["peak_share"] == pytest.approx(180 / 300)
    # bfloat16's FLOP-implied epoch at the bfloat16 peak: 60,000 x 15 MFLOP / 600 GFLOP/s = 1.5 s (at NumPy's
    # float32 peak it would be 18 s, and the target would be met)
    assert results["keras-mixed_bfloat16"]["flop_implied_epoch_seconds"] == pytest.approx(1.5)
    implied = report["targets"][2]
    assert "TF bfloat16 matmul" in implied["target"]
    assert implied["measured"] == pytest.approx(4.0 / 1.5) and not implied["met"]
    for impl in results:
        assert bench._peak_used(report, impl)["gflops"] == PEAKS[bench.PEAK_OF[impl]]


def test_the_table_names_the_peak_each_row_used():
    lines = bench.bench_table(fake_report()).splitlines()
    row = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ")}
    assert "| 45.0% | TF float32 matmul, 200 GFLOP/s |" in row["keras-float32"]
    assert "| 37.5% | TF bfloat16 matmul, 600 GFLOP/s |" in row["keras-mixed_bfloat16"]
    assert "| 60.0% | torch float32 matmul, 300 GFLOP/s |" in row["torch"]
    assert "NumPy float32 matmul 50" in lines[-4]  # measured, and said to be for comparison only
    assert "| matmul peak used |" in lines[0]


def test_the_readmes_bench_block_is_the_committed_bench_report():
    report = read_json(PROJECT_ROOT / "reports" / "bench.json")
    rows = [line for line in bench.bench_table(report).splitlines() if line.startswith("| ") and "GFLOP/s |" in line]
    assert len(rows) == len(report["results"]) > 0
    found = block_pattern("bench").search((PROJECT_ROOT / "README.md").read_text())
    assert found and found.group(1) == bench.bench_table(report), "README bench block is stale: run `make bench`"


def test_the_benchmark_rewrites_only_the_readmes_bench_block(tmp_path):
    readme = tmp_path / "README.md"
    start, end = ("<!-- bench:start: generated from reports/; do not edit -->", "<!-- bench:end -->")
    readme.write_text(f"Before.\n{start}\nold\n{end}\nAfter.\n")
    bench.update_readme(fake_report(), readme)
    assert readme.read_text() == f"Before.\n{start}\n{bench.bench_table(fake_report())}\n{end}\nAfter.\n"


def test_the_torch_workers_data_path_imports_no_tensorflow():
    # the torch worker runs `python -m benchmarks.bench --worker torch`, loads the verified data, then torch
    code = (
        "from benchmarks import bench; from mnist_report import data, machine; machine.cores(); "
        "data.splits_for(data.load_raw(), bench.bench_config(64, 32, 16, 0)); "
        "print(','.join(bench.frameworks_loaded()))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_workers_peak_memory_is_its_own_not_its_parents():
    ballast = bench.np.ones(400 * 2**20 // 8)  # 400 MB touched: this process's peak is above it
    assert bench.peak_rss_mb() > 400
    code = "from benchmarks import bench; print(bench.peak_rss_mb())"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert 5 < float(out.stdout) < 200  # a Python with NumPy (getrusage's ru_maxrss would say above 400)
    del ballast


@pytest.mark.slow
def test_the_torch_worker_loads_torch_alone():
    pytest.importorskip("torch")
    worker = bench.Worker("torch", 64, 32, 32, 0)
    try:
        assert worker.ask("epoch")["seconds"] > 0
        peak = worker.ask("peak")
        assert peak["peak"] == "torch-float32" and peak["gflops"] > 0
        assert worker.ask("quit")["frameworks"] == ["torch"]
    finally:
        worker.close()


def test_targets_are_judged_from_the_numbers():
    results = {
        "torch": {"speed_vs_reference": 1.0},
        "keras-float32": {"speed_vs_reference": 1.31},
        "keras-mixed_bfloat16": {
            "speed_vs_reference": 1.5,
            "steady_epoch_seconds": 5.0,
            "flop_implied_epoch_seconds": 2.0,
        },
    }
    rows = bench.check_targets(results)
    assert [r["met"] for r in rows] == [True, False, False]
    assert rows[2]["measured"] == 2.5


class FakeClusters:
    """``executor.start`` and ``runs.get`` for the throughput figure, without clusters: the settings it
    starts, the runs it asks for and the store they would be read from and written to are recorded
    (starting three worker processes, each importing TensorFlow, was most of the smoke test's time; the
    executor and ``runs.get`` themselves are tested in tests/test_runs.py)."""

    def __init__(self):
        self.started, self.trained, self.stores = [], [], []

    def start(self, scheduler=None, workers=None, threads_per_run=1):
        self.started.append((workers, threads_per_run))
        address = f"tcp://fake-{len(self.started)}"
        return contextlib.nullcontext(SimpleNamespace(client=SimpleNamespace(run=lambda fn: {}), address=address))

    def get(
        self, configs, raw, *, test=True, keep_models=(), describe=None, scheduler=None, workers=None, print_fn=print
    ):
        self.trained.append((list(configs), scheduler, test, print_fn))
        self.stores.append(
            {
                "env": os.environ.get(store.STORE_ENV),
                "places": store.places(),
                "cache": store.cache(),
                "backup": store.backup_dir("k"),
            }
        )
        where = Path(os.environ[store.STORE_ENV])
        assert where.parent.is_dir() and not (where.exists() and any(where.iterdir()))  # a fresh, empty store
        time.sleep(0.01)  # the clock moves: runs per hour are finite
        return [
            SimpleNamespace(test_accuracy=0.9 + c.seed / 100, train_seconds=1.0 + c.seed, trained_now=True)
            for c in configs
        ]


@pytest.mark.slow
def test_bench_smoke_tiny(tmp_path, capsys, monkeypatch):
    from mnist_report import machine, runs
    from mnist_report.runs import executor

    clusters = FakeClusters()
    monkeypatch.setattr(executor, "start", clusters.start)
    monkeypatch.setattr(runs, "get", clusters.get)
    before = (os.environ.get(store.STORE_ENV), store.cache())
    impls = ["keras-float32"] + (["torch"] if importlib.util.find_spec("torch") else [])
    out = tmp_path / "bench.json"
    args = [
        "--impls",
        ",".join(impls),
        "--epochs",
        "2",
        "--n-train",
        "256",
        "--n-test",
        "128",
        "--out",
        str(out),
        "--throughput-runs",
        "2",
        "--throughput-epochs",
        "1",
    ]
    assert bench.main(args) == 0
    # the throughput figure: one worker with every core, then the default, each given the same seeds
    assert clusters.started == [(1, machine.cores()), (executor.default_workers(1), 1)]
    assert [[(c.threads, c.epochs, c.n_train, c.seed) for c in configs] for configs, *_ in clusters.trained] == [
        [(machine.cores(), 1, 256, 0), (machine.cores(), 1, 256, 1)],
        [(1, 1, 256, 0), (1, 1, 256, 1)],
    ]
    # each setting's runs on the cluster the benchmark started (and warmed) before the clock, no lines printed
    assert [(scheduler, test, print_fn) for _, scheduler, test, print_fn in clusters.trained] == [
        ("tcp://fake-1", True, None),
        ("tcp://fake-2", True, None),
    ]
    # ... read from and written to a fresh temporary store of its own (every run trained), never the report's
    # store or the user's cache, whose locks and backups are in the temporary folder too; all undone after
    envs = [Path(s["env"]) for s in clusters.stores]
    assert len(set(envs)) == 2 and not any(e.exists() for e in envs)
    for s, env in zip(clusters.stores, envs, strict=True):
        assert s["places"] == ([env], env) and s["cache"] == env.parent / "cache"
        assert s["backup"] == env.parent / "cache" / "backup" / "k"
        assert store.STORE not in (env, *env.parents) and PROJECT_ROOT not in env.parents
        assert Path("~/.cache/mnist-report").expanduser() not in (env, *env.parents)
    assert (os.environ.get(store.STORE_ENV), store.cache()) == before
    text = capsys.readouterr().out
    assert "| keras-float32 |" in text and "TF float32 matmul" in text
    report = bench.json.loads(out.read_text())
    r = report["results"]["keras-float32"]
    assert len(r["epoch_seconds"]) == 2 and r["train_images_per_second"] > 0 and r["peak_memory_mb"] > 50
    assert report["setup"]["n_train"] == 256
    t = report["throughput"]
    assert set(t["settings"]) == {"1 worker", "default"} and (t["epochs"], t["n_train"]) == (1, 256)
    assert t["validation_fraction"] == 0.1 and "1 epochs per run on 256 images with 10% of them held out" in text
    for s in t["settings"].values():
        assert s["runs"] == 2 and s["runs_per_hour"] == pytest.approx(2 * 3600 / s["seconds"])
        assert s["accuracies"] == [0.9, 0.91] and s["train_seconds"] == [1.0, 2.0]
    per_hour = {name: s["runs_per_hour"] for name, s in t["settings"].items()}
    assert t["speedup"] == pytest.approx(per_hour["default"] / per_hour["1 worker"])
    assert "the default is" in text
    assert r["peak"] == "tf-float32" and "tensorflow" in r["frameworks_loaded"]
    assert set(report["peaks"]) == {bench.PEAK_OF[impl] for impl in impls} | {"numpy-float32"}
    for p in report["peaks"].values():
        assert len(p["measured"]) == 2 and min(p["measured"]) > 0  # before the epochs and after
    if "torch" in impls:
        t = report["results"]["torch"]
        assert t["speed_vs_reference"] == 1.0 and t["peak"] == "torch-float32"
        assert t["frameworks_loaded"] == ["torch"]  # no TensorFlow in the torch worker's memory


def test_bench_rejects_unknown_implementations_and_image_counts_before_starting_a_worker(capsys):
    with pytest.raises(ValueError, match="unknown implementation 'jax'"):
        bench.run(["jax"])
    with pytest.raises(ValueError, match=r"n_train must be None or an integer in \[1, 60000\]; got 70000"):
        bench.run(["keras-float32"], n_train=70000)
    assert bench.main(["--impls", "keras-float32", "--n-test", "0"]) == 2
    assert "n_test must be None or an integer in [1, 10000]; got 0" in capsys.readouterr().err
    config = bench.bench_config(300, 100, 32, 5)  # each implementation's images: 300 drawn with seed 5, all trained on
    assert (config.n_train, config.n_test, config.validation_fraction, config.seed) == (300, 100, 0.0, 5)


def test_the_package_never_imports_the_benchmark():
    """benchmarks/ is not installed with the package: no module of mnist_report/ may import it (the README's
    speed table is rendered from reports/bench.json, the file the benchmark writes)."""
    offenders = []
    for path in sorted((PROJECT_ROOT / "mnist_report").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value]  # importlib.import_module("benchmarks..."), __import__, python -m
            else:
                continue
            if any(n == "benchmarks" or n.startswith("benchmarks.") for n in names):
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert offenders == [], f"mnist_report imports benchmarks/: {', '.join(offenders)}"
