"""`make bench`: training speed of mnist_report against a reference PyTorch implementation of the
identical network on the identical arrays, measured in one run.

Each implementation lives in its own worker process, which loads only its own framework (so its peak
memory is its own: the torch worker never imports TensorFlow), and the parent alternates them epoch by
epoch (A B A B ...), so that drift on a shared machine hits all of them.

Each implementation is compared with the matrix-multiply peak of its own framework in its own
precision (``PEAK_OF``): TensorFlow's float32 matmul for keras-float32, TensorFlow's bfloat16 matmul for
keras-mixed_bfloat16, torch's float32 matmul for torch.  Each peak is measured in the worker that has
the framework, one process at a time while the others wait idle, before the first epoch and after
the last; the share of it that training reaches follows from the network's FLOPs per image (counted
from the layer shapes).  NumPy's float32 matmul is measured in the parent the same way, for comparison
only.  On a CPU without native bfloat16 TensorFlow emulates it: its peak is then low, and measured.

    python -m benchmarks.bench [--epochs 4] [--n-train 60000] [--impls keras-float32,torch] [--out FILE]

Run from the project root (``benchmarks`` is not installed with the package; ``make bench`` does this).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mnist_report.io import atomic_path, write_json
from mnist_report.paths import PROJECT_ROOT
from mnist_report.reporting.readme import replace_block

IMPLS = ("keras-float32", "keras-mixed_bfloat16", "torch")
REFERENCE = "torch"
TARGETS = {"keras-float32": 1.3, "keras-mixed_bfloat16": 2.0}  # images/s, as a multiple of the reference
IMPLIED_FACTOR = 2.0  # bf16 seconds per epoch within this factor of the FLOP-implied time (at the bf16 peak)

# The matmul peaks measured, and which one each implementation is compared with: the framework that
# trains it, in the precision it computes in.  NumPy's is for comparison only.
PEAKS = {
    "tf-float32": "TF float32 matmul",
    "tf-bfloat16": "TF bfloat16 matmul",
    "torch-float32": "torch float32 matmul",
    "numpy-float32": "NumPy float32 matmul",
}
PEAK_OF = {"keras-float32": "tf-float32", "keras-mixed_bfloat16": "tf-bfloat16", "torch": "torch-float32"}
COMPARISON_PEAK = "numpy-float32"  # measured in the parent, compared with no implementation
MATMUL_N = 1024  # the peaks' matrices are MATMUL_N x MATMUL_N
FRAMEWORKS = ("tensorflow", "keras", "torch")  # which of them each worker had loaded is recorded


# --- FLOPs, from the layer shapes --------------------------------------------------------------


def layer_flops(model) -> list[dict]:
    """Forward FLOPs per image of each Conv2D and Dense layer (a multiply-add counts as 2)."""
    rows = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            rows.append({"layer": layer.name, "flops": 2 * h * w * c_out * kh * kw * c_in})
        elif kind == "Dense":
            rows.append({"layer": layer.name, "flops": 2 * layer.input.shape[-1] * layer.units})
    return rows


def flops_per_image(model) -> dict:
    """Forward and training FLOPs per image.

    Training = forward + gradient w.r.t. the weights (as many FLOPs as forward) + gradient w.r.t.
    the inputs (as many again, except for the first layer, whose input needs none).  Activations,
    pooling, biases and the optimizer update are left out: under 2% of the total here.
    """
    rows = layer_flops(model)
    forward = sum(r["flops"] for r in rows)
    return {"forward": forward, "training": 3 * forward - rows[0]["flops"], "layers": rows}


def _matrices(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)


def numpy_product(n: int = MATMUL_N):
    """A call that multiplies two n x n float32 matrices through NumPy."""
    a, b = _matrices(n)
    return lambda: a @ b


def tf_product(n: int = MATMUL_N, dtype: str = "float32"):
    """A call that multiplies two n x n matrices of ``dtype`` through TensorFlow (imported here: only a
    TensorFlow worker calls this)."""
    from mnist_report import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    a, b = (tf.cast(tf.constant(m), dtype) for m in _matrices(n))
    # eager ops on the CPU return when done; reading one element back makes sure of it at no cost
    return lambda: tf.matmul(a, b)[0, 0].numpy()


def torch_product(n: int = MATMUL_N):
    """A call that multiplies two n x n float32 matrices through torch (imported here: only the torch
    worker calls this)."""
    import torch

    a, b = (torch.from_numpy(m) for m in _matrices(n))
    return lambda: a @ b


def matmul_gflops(n: int = MATMUL_N, repeats: int = 7, product=None) -> float:
    """Matrix-multiply throughput of ``product`` (one n x n by n x n product per call; default NumPy's
    float32) in GFLOP/s: the median of ``repeats`` timed calls after one warm-up call."""
    product = product or numpy_product(n)
    product()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def cpu_info() -> dict:
    from mnist_report import machine

    info = machine.cpu()
    return {"model": info["model"], "cores": info["cores"], "simd": machine.simd(info["flags"])}


# --- workers -------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB, since it started its program.

    Linux's ``VmHWM``: ``getrusage``'s ``ru_maxrss`` would be no use in a worker, because a child keeps the
    maximum of its parent's across fork and exec (the parent has imported TensorFlow, a worker started
    from it reported the parent's peak whatever it loaded itself).  Elsewhere ``ru_maxrss`` (kB on Linux,
    bytes on macOS), with that caveat.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def frameworks_loaded() -> list[str]:
    """Which of the frameworks this process has imported."""
    return [name for name in FRAMEWORKS if name in sys.modules]


def _worker(impl: str, n_train: int | None, n_test: int | None, batch_size: int, seed: int) -> None:
    """Serve ``epoch``, ``eval``, ``peak`` and ``quit`` commands on stdin, one JSON line per reply on stdout.

    Only ``impl``'s framework is imported: the data come from ``mnist_report.data``, which needs NumPy
    alone for the shipped files.
    """
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the protocol

    from mnist_report import data, machine

    config = bench_config(n_train, n_test, batch_size, seed)
    splits = data.splits_for(data.load_raw(), config)
    peak = PEAK_OF[impl]
    if impl == REFERENCE:
        from benchmarks.reference_torch import TorchTrainer

        trainer = TorchTrainer(splits.x_train, splits.y_train, batch_size, seed, threads=machine.cores())
        run_epoch, predict = trainer.epoch, trainer.predict
        product = torch_product()
    else:
        from dataclasses import replace

        from mnist_report.modeling import train
        from mnist_report.modeling.model import build_baseline_model, predict_proba

        config = replace(config, precision=impl.split("-", 1)[1])
        train.set_determinism(seed)
        model = build_baseline_model(config)
        # train.fit's pipeline, built once: every timed epoch reads the first epoch's order of batches
        # (an order is a permutation of the same images, so it does not change the time)
        batches = train.batches(splits.x_train, splits.y_train, batch_size, shuffle_seed=seed)
        run_epoch = lambda: model.fit(batches, epochs=1, shuffle=False, verbose=0)  # noqa: E731
        predict = lambda x: predict_proba(model, x)  # noqa: E731
        product = tf_product(dtype=peak.split("-", 1)[1])
    reply.write(json.dumps({"ready": True, "n_train": len(splits.y_train), "n_test": len(splits.y_test)}) + "\n")
    for command in sys.stdin:
        command = command.strip()
        start = time.perf_counter()
        if command == "epoch":
            run_epoch()
            out = {"seconds": time.perf_counter() - start}
        elif command == "eval":
            proba = predict(splits.x_test)
            seconds = time.perf_counter() - start
            out = {"seconds": seconds, "accuracy": float((np.argmax(proba, 1) == splits.y_test).mean())}
        elif command == "peak":
            out = {"peak": peak, "gflops": matmul_gflops(product=product)}
        elif command == "quit":
            out = {"peak_rss_mb": peak_rss_mb(), "frameworks": frameworks_loaded()}
        else:
            out = {"error": f"unknown command {command!r}"}
        reply.write(json.dumps(out) + "\n")
        if command == "quit":
            return


class Worker:
    def __init__(self, impl: str, n_train, n_test, batch_size: int, seed: int):
        self.impl = impl
        args = [
            sys.executable,
            "-m",
            "benchmarks.bench",
            "--worker",
            impl,
            "--batch-size",
            str(batch_size),
            "--seed",
            str(seed),
        ]
        args += ["--n-train", str(n_train)] if n_train is not None else []
        args += ["--n-test", str(n_test)] if n_test is not None else []
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT, env=env
        )
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker {self.impl} exited with status {self.proc.wait()}")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def bench_config(n_train: int | None, n_test: int | None, batch_size: int, seed: int):
    """The configuration every implementation is timed with: the baseline network on ``n_train`` training
    images drawn with ``seed`` (all of them trained on: no validation share) and the first ``n_test`` test
    images. Built in the parent first, so that a bad value is refused before any worker starts."""
    from mnist_report.config import TrainConfig

    return TrainConfig(
        epochs=1, batch_size=batch_size, seed=seed, n_train=n_train, n_test=n_test, validation_fraction=0.0
    )


def run(
    impls=IMPLS,
    epochs: int = 3,
    n_train: int | None = None,
    n_test: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    eval_repeats: int = 3,
    log=None,
) -> dict:
    """Alternate the implementations epoch by epoch; return per-implementation results."""
    from mnist_report.config import TrainConfig
    from mnist_report.modeling.model import build_baseline_model

    log = log or (lambda line: print(line, flush=True))
    for impl in impls:
        if impl not in IMPLS:
            raise ValueError(f"unknown implementation {impl!r}; choose from {', '.join(IMPLS)}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1; got {epochs}")
    bench_config(n_train, n_test, batch_size, seed)  # refuses a bad value here, not in a worker
    flops = flops_per_image(build_baseline_model(TrainConfig()))
    workers = []
    try:
        for impl in impls:
            log(f"starting {impl} ...")
            workers.append(Worker(impl, n_train, n_test, batch_size, seed))
        peaks = {key: [] for key in [PEAK_OF[w.impl] for w in workers] + [COMPARISON_PEAK]}

        def measure_peaks():
            # one process at a time; the others wait idle for their next command
            for w in workers:
                got = w.ask("peak")
                peaks[got["peak"]].append(got["gflops"])
            peaks[COMPARISON_PEAK].append(matmul_gflops())

        log("measuring the matmul peaks ...")
        measure_peaks()
        epoch_s = {w.impl: [] for w in workers}
        for e in range(epochs):
            for w in workers:
                epoch_s[w.impl].append(w.ask("epoch")["seconds"])
                log(f"epoch {e + 1}/{epochs}  {w.impl:<22} {epoch_s[w.impl][-1]:6.2f} s")
        evals = {w.impl: [w.ask("eval") for _ in range(eval_repeats)] for w in workers}
        measure_peaks()
        quits = {w.impl: w.ask("quit") for w in workers}
        n_train_used, n_test_used = workers[0].info["n_train"], workers[0].info["n_test"]
    finally:
        for w in workers:
            w.close()

    peaks = {
        key: {"label": PEAKS[key], "gflops": statistics.median(measured), "measured": measured}
        for key, measured in peaks.items()
    }
    results = summarize(epoch_s, evals, quits, peaks, flops["training"], n_train_used, n_test_used)
    return {
        "machine": cpu_info(),
        "peaks": peaks,
        "matmul_n": MATMUL_N,
        "flops_per_image": flops,
        "setup": {
            "epochs": epochs,
            "n_train": n_train_used,
            "n_test": n_test_used,
            "batch_size": batch_size,
            "seed": seed,
            "alternated": list(impls),
        },
        "results": results,
        "targets": check_targets(results),
    }


def summarize(
    epoch_s: dict, evals: dict, quits: dict, peaks: dict, training_flops: float, n_train: int, n_test: int
) -> dict:
    """Each implementation's results from its measurements, compared with its own peak (``PEAK_OF``).

    ``epoch_s``: seconds of each epoch; ``evals``: the ``eval`` replies; ``quits``: the ``quit`` reply;
    all by implementation.  ``peaks``: {peak key: {"gflops": ...}}; ``training_flops``: per image.
    """
    results = {}
    for impl, seconds in epoch_s.items():
        steady = statistics.median(seconds[1:] or seconds)
        ips = n_train / steady
        key = PEAK_OF[impl]
        gflops = peaks[key]["gflops"]
        results[impl] = {
            "epoch_seconds": seconds,
            "first_epoch_seconds": seconds[0],
            "steady_epoch_seconds": steady,
            "train_images_per_second": ips,
            "eval_images_per_second": n_test / statistics.median(r["seconds"] for r in evals[impl]),
            "test_accuracy": evals[impl][-1]["accuracy"],
            "peak_memory_mb": quits[impl]["peak_rss_mb"],
            "frameworks_loaded": quits[impl]["frameworks"],
            "peak": key,
            "peak_gflops": gflops,
            "peak_share": training_flops * ips / (gflops * 1e9),
            "flop_implied_epoch_seconds": training_flops * n_train / (gflops * 1e9),
        }
    if REFERENCE in results:
        reference_ips = results[REFERENCE]["train_images_per_second"]
        for r in results.values():
            r["speed_vs_reference"] = r["train_images_per_second"] / reference_ips
    return results


def throughput(n_runs: int = 4, epochs: int = 10, n_train: int | None = None, log=None) -> dict:
    """Runs of the baseline network per hour through the report's ``runs.get``: one worker with every
    core against the default (cores // threads_per_run workers), in the same run, same seeds.

    Every run is trained: each setting reads and writes a store of its own, a fresh temporary folder
    (``$MNIST_REPORT_STORE``), never the report's store or the user's cache (whose locks and backups are
    in a temporary folder too, so that no backup left by another run is resumed from). Each setting's
    cluster is started and its workers have imported TensorFlow before the clock starts, as in a notebook
    whose cluster is started once for many runs: ``runs.get`` is given its scheduler's address.
    """
    import tempfile
    from unittest import mock

    from mnist_report import data, machine, runs
    from mnist_report.config import TrainConfig
    from mnist_report.runs import executor, store

    log = log or (lambda line: print(line, flush=True))
    raw = data.load_raw()
    default_threads = TrainConfig().threads
    settings = {
        "1 worker": (1, machine.cores()),
        "default": (executor.default_workers(default_threads), default_threads),
    }
    rows = {}
    for name, (workers, threads) in settings.items():
        configs = runs.seeds_of(TrainConfig(epochs=epochs, n_train=n_train, threads=threads), range(n_runs))
        with (
            tempfile.TemporaryDirectory(prefix="mnist-report-bench-") as scratch,
            mock.patch.dict(
                os.environ,
                {store.STORE_ENV: str(Path(scratch) / "runs"), store.CACHE_ENV: str(Path(scratch) / "cache")},
            ),
            executor.start(workers=workers, threads_per_run=threads) as ex,
        ):
            ex.client.run(lambda: __import__("mnist_report.modeling.train"))  # TensorFlow imported in every worker
            start = time.perf_counter()
            done = runs.get(configs, raw, scheduler=ex.address, print_fn=None)
            seconds = time.perf_counter() - start
        if not all(r.trained_now for r in done):  # the store was empty: a run read from it was not timed
            raise RuntimeError(f"throughput, {name}: a run was read from a store instead of trained")
        rows[name] = {
            "workers": workers,
            "threads_per_run": threads,
            "runs": n_runs,
            "seconds": seconds,
            "runs_per_hour": n_runs * 3600 / seconds,
            "accuracies": [r.test_accuracy for r in done],
            "train_seconds": [r.train_seconds for r in done],
        }
        log(
            f"throughput, {name}: {workers} worker(s) x {threads} thread(s): {n_runs} runs in {seconds:.0f} s, "
            f"{rows[name]['runs_per_hour']:.1f} runs/hour"
        )
    # n_train: the images drawn for each run, of which validation_fraction is held out (as in notebook 02)
    return {
        "epochs": epochs,
        "n_train": n_train or len(raw.y_train),
        "validation_fraction": configs[0].validation_fraction,
        "settings": rows,
        "speedup": rows["default"]["runs_per_hour"] / rows["1 worker"]["runs_per_hour"],
    }


def check_targets(results: dict) -> list[dict]:
    """The issue's speed targets, each with the measured value and whether it is met."""
    rows = []
    for impl, minimum in TARGETS.items():
        if impl in results and "speed_vs_reference" in results[impl]:
            got = results[impl]["speed_vs_reference"]
            target = f"{impl} images/s >= {minimum}x {REFERENCE}"
            rows.append({"target": target, "measured": got, "met": got >= minimum})
    if "keras-mixed_bfloat16" in results:
        r = results["keras-mixed_bfloat16"]
        ratio = r["steady_epoch_seconds"] / r["flop_implied_epoch_seconds"]
        at = PEAKS[PEAK_OF["keras-mixed_bfloat16"]]  # summarize's flop_implied_epoch_seconds is at this peak
        rows.append(
            {
                "target": f"keras-mixed_bfloat16 epoch <= {IMPLIED_FACTOR}x the FLOP-implied time at the {at} peak",
                "measured": ratio,
                "met": ratio <= IMPLIED_FACTOR,
            }
        )
    return rows


# --- the README's table -----------------------------------------------------------------------


def _peak_used(report: dict, impl: str) -> dict:
    """The matmul peak ``impl``'s row is compared with: {"key", "label", "gflops", "share"}."""
    r = report["results"][impl]
    peak = report["peaks"][r["peak"]]
    return {"key": r["peak"], "label": peak["label"], "gflops": peak["gflops"], "share": r["peak_share"]}


def bench_table(report: dict) -> str:
    """A Markdown table of the benchmark's ``reports/bench.json``, for the README's bench block."""
    lines = [
        "| implementation | first epoch s | epoch s (median) | train img/s | eval img/s | peak memory MB "
        "| share of matmul peak | matmul peak used | vs reference | test acc |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for impl, r in report["results"].items():
        vs = f"{r['speed_vs_reference']:.2f}x" if "speed_vs_reference" in r else "-"
        p = _peak_used(report, impl)
        lines.append(
            f"| {impl} | {r['first_epoch_seconds']:.2f} | {r['steady_epoch_seconds']:.2f} | "
            f"{r['train_images_per_second']:,.0f} | {r['eval_images_per_second']:,.0f} | {r['peak_memory_mb']:,.0f} | "
            f"{p['share']:.1%} | {p['label']}, {p['gflops']:.0f} GFLOP/s | {vs} | {r['test_accuracy']:.2%} |"
        )
    m, s = report["machine"], report["setup"]
    n = report["matmul_n"]
    peaks = ", ".join(f"{p['label']} {p['gflops']:.0f}" for p in report["peaks"].values())
    peaks = (
        f"matmul peaks ({n}x{n}, each in the process that has the framework while the others are idle, "
        f"median of before and after the epochs): {peaks} GFLOP/s (NumPy for comparison only)"
    )
    lines += [
        "",
        f"Machine: {m['model']}, {m['cores']} cores, SIMD {' '.join(m['simd']) or 'unknown'}; {peaks}; "
        f"{report['flops_per_image']['training'] / 1e6:.2f} MFLOP per training image; {s['epochs']} epochs of "
        f"{s['n_train']:,} images, batch {s['batch_size']}, alternated.",
    ]
    for t in report["targets"]:
        lines.append(f"- {t['target']}: {t['measured']:.2f} -> {'met' if t['met'] else 'NOT met'}")
    if report.get("throughput"):
        t = report["throughput"]
        parts = [
            f"{r['workers']} worker(s) x {r['threads_per_run']} thread(s) {r['runs_per_hour']:.1f}"
            for r in t["settings"].values()
        ]
        held_out = t.get("validation_fraction", 0.1)  # bench.json written before it was recorded: the default
        lines.append(
            f"- Report throughput (baseline network, {t['epochs']} epochs per run on {t['n_train']:,} images "
            f"with {held_out:.0%} of them held out, runs per hour through the executor): {'; '.join(parts)}; "
            f"the default is {t['speedup']:.2f}x one worker"
        )
    return "\n".join(lines)


def update_readme(report: dict, readme: Path = PROJECT_ROOT / "README.md") -> None:
    """The README's bench block rewritten from ``report``."""
    text = replace_block(readme.read_text(), "bench", bench_table(report), readme)
    with atomic_path(readme) as tmp:
        tmp.write_text(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated, from {', '.join(IMPLS)}")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n-train", type=int, default=None, help="training images (default: all 60,000)")
    p.add_argument("--n-test", type=int, default=None, help="test images for the evaluation speed (default: all)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--throughput-runs",
        type=int,
        default=4,
        help="baseline-network runs per executor setting for the report-throughput figure (0: skip it)",
    )
    p.add_argument("--throughput-epochs", type=int, default=10, help="epochs of each of those runs (default 10)")
    p.add_argument(
        "--out",
        default=str(PROJECT_ROOT / "reports" / "bench.json"),
        help="where the JSON report goes (default reports/bench.json, which the README's table reads)",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.n_train, args.n_test, args.batch_size, args.seed)
        return 0
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    if REFERENCE in impls:
        try:
            import torch  # noqa: F401
        except ModuleNotFoundError:
            print(
                "error: the reference needs PyTorch, a bench-only extra: .venv/bin/pip install -e '.[bench]'",
                file=sys.stderr,
            )
            return 2
    try:
        report = run(impls, args.epochs, args.n_train, args.n_test, args.batch_size, args.seed)
        if args.throughput_runs > 0:
            report["throughput"] = throughput(args.throughput_runs, args.throughput_epochs, args.n_train)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_json(args.out, report)
    if Path(args.out).resolve() == (PROJECT_ROOT / "reports" / "bench.json").resolve():
        update_readme(report)
    print(bench_table(report))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
