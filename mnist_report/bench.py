"""`make bench`: training speed of mnist_report against a reference PyTorch implementation of the
identical network on the identical arrays, measured in one run.

Each implementation lives in its own worker process (so its peak memory is its own), and the parent
alternates them epoch by epoch (A B A B ...), so that drift on a shared machine hits all of them.
The machine's fp32 matmul throughput is measured in the same run, with the workers idle, to say what
share of it training reaches given the network's FLOPs per image (counted from the layer shapes).

    python -m mnist_report.bench [--epochs 4] [--n-train 60000] [--impls keras-float32,torch]
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

import numpy as np

from mnist_report.io import write_json
from mnist_report.paths import PROJECT_ROOT

IMPLS = ("keras-float32", "keras-mixed_bfloat16", "torch")
REFERENCE = "torch"
TARGETS = {"keras-float32": 1.3, "keras-mixed_bfloat16": 2.0}  # images/s, as a multiple of the reference
IMPLIED_FACTOR = 2.0  # bf16 seconds per epoch within this factor of the FLOP-implied time


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


def matmul_gflops(n: int = 1024, repeats: int = 7) -> float:
    """fp32 matrix-multiply throughput of this machine through NumPy (median of ``repeats``)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def cpu_info() -> dict:
    from mnist_report import machine

    info = machine.cpu()
    return {"model": info["model"], "cores": info["cores"], "simd": machine.simd(info["flags"])}


# --- workers -------------------------------------------------------------------------------------


def _worker(impl: str, n_train: int | None, n_test: int | None, batch_size: int, seed: int) -> None:
    """Serve ``epoch``, ``eval`` and ``quit`` commands on stdin, one JSON line per reply on stdout."""
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the protocol

    from mnist_report import data

    splits = data.make_splits(data.load_raw(), 0.0, seed, n_train, n_test)
    if impl == REFERENCE:
        from mnist_report.reference_torch import TorchTrainer

        trainer = TorchTrainer(splits.x_train, splits.y_train, batch_size, seed, threads=os.cpu_count() or 1)
        run_epoch, predict = trainer.epoch, trainer.predict
    else:
        from mnist_report import train
        from mnist_report.config import TrainConfig
        from mnist_report.model import build_baseline_model
        from mnist_report.train import predict_proba

        config = TrainConfig(epochs=1, batch_size=batch_size, seed=seed, precision=impl.split("-", 1)[1])
        train.set_determinism(seed)
        model = build_baseline_model(config)
        # train.fit's pipeline, built once: every timed epoch reads the first epoch's order of batches
        # (an order is a permutation of the same images, so it does not change the time)
        batches = train.batches(splits.x_train, splits.y_train, batch_size, shuffle_seed=seed)
        run_epoch = lambda: model.fit(batches, epochs=1, shuffle=False, verbose=0)  # noqa: E731
        predict = lambda x: predict_proba(model, x)  # noqa: E731
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
        elif command == "quit":
            out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        else:
            out = {"error": f"unknown command {command!r}"}
        reply.write(json.dumps(out) + "\n")
        if command == "quit":
            return


class Worker:
    def __init__(self, impl: str, n_train, n_test, batch_size: int, seed: int):
        self.impl = impl
        args = [sys.executable, "-m", "mnist_report.bench", "--worker", impl, "--batch-size", str(batch_size),
                "--seed", str(seed)]  # fmt: skip
        args += ["--n-train", str(n_train)] if n_train else []
        args += ["--n-test", str(n_test)] if n_test else []
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=PROJECT_ROOT, env=env)  # fmt: skip
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


def run(impls=IMPLS, epochs: int = 3, n_train: int | None = None, n_test: int | None = None,
        batch_size: int = 128, seed: int = 0, eval_repeats: int = 3, log=None) -> dict:  # fmt: skip
    """Alternate the implementations epoch by epoch; return per-implementation results."""
    from mnist_report.config import TrainConfig
    from mnist_report.model import build_baseline_model

    log = log or (lambda line: print(line, flush=True))
    for impl in impls:
        if impl not in IMPLS:
            raise ValueError(f"unknown implementation {impl!r}; choose from {', '.join(IMPLS)}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1; got {epochs}")
    flops = flops_per_image(build_baseline_model(TrainConfig()))
    workers = []
    try:
        for impl in impls:
            log(f"starting {impl} ...")
            workers.append(Worker(impl, n_train, n_test, batch_size, seed))
        gflops = [matmul_gflops()]
        epoch_s = {w.impl: [] for w in workers}
        for e in range(epochs):
            for w in workers:
                epoch_s[w.impl].append(w.ask("epoch")["seconds"])
                log(f"epoch {e + 1}/{epochs}  {w.impl:<22} {epoch_s[w.impl][-1]:6.2f} s")
        evals = {w.impl: [w.ask("eval") for _ in range(eval_repeats)] for w in workers}
        gflops.append(matmul_gflops())
        peak = {w.impl: w.ask("quit")["peak_rss_mb"] for w in workers}
        n_train_used, n_test_used = workers[0].info["n_train"], workers[0].info["n_test"]
    finally:
        for w in workers:
            w.close()

    matmul = statistics.median(gflops)
    results = {}
    for impl in impls:
        steady = statistics.median(epoch_s[impl][1:] or epoch_s[impl])
        ips = n_train_used / steady
        implied = flops["training"] * n_train_used / (matmul * 1e9)
        results[impl] = {
            "epoch_seconds": epoch_s[impl],
            "first_epoch_seconds": epoch_s[impl][0],
            "steady_epoch_seconds": steady,
            "train_images_per_second": ips,
            "eval_images_per_second": n_test_used / statistics.median(r["seconds"] for r in evals[impl]),
            "test_accuracy": evals[impl][-1]["accuracy"],
            "peak_memory_mb": peak[impl],
            "matmul_share": flops["training"] * ips / (matmul * 1e9),
            "flop_implied_epoch_seconds": implied,
        }
    if REFERENCE in results:
        reference_ips = results[REFERENCE]["train_images_per_second"]
        for r in results.values():
            r["speed_vs_reference"] = r["train_images_per_second"] / reference_ips
    return {
        "machine": cpu_info(),
        "matmul_gflops": matmul,
        "matmul_gflops_measured": gflops,
        "flops_per_image": flops,
        "setup": {"epochs": epochs, "n_train": n_train_used, "n_test": n_test_used, "batch_size": batch_size,
                  "seed": seed, "alternated": list(impls)},  # fmt: skip
        "results": results,
        "targets": check_targets(results),
    }


def throughput(n_runs: int = 4, epochs: int = 10, n_train: int | None = None, log=None) -> dict:
    """Runs of the baseline network per hour through the report's executor: one worker with every
    core against the default (cores // threads_per_run workers), in the same run, same seeds.

    Each setting's cluster is started and its workers have imported TensorFlow before the clock
    starts, as in a notebook, where the cluster is started once for many runs.
    """
    import tempfile

    from mnist_report import data, fanout, runs
    from mnist_report.config import TrainConfig

    log = log or (lambda line: print(line, flush=True))
    raw = data.load_raw()
    default_threads = TrainConfig().threads
    settings = {"1 worker": (1, fanout.cores()),
                "default": (fanout.default_workers(default_threads), default_threads)}  # fmt: skip
    rows = {}
    for name, (workers, threads) in settings.items():
        config = TrainConfig(epochs=epochs, n_train=n_train, threads=threads)
        with tempfile.TemporaryDirectory() as cache, fanout.start(workers=workers, threads_per_run=threads) as ex:
            ex.client.run(lambda: __import__("mnist_report.train"))  # TensorFlow imported in every worker
            start = time.perf_counter()
            done = runs.run_seeds(config, range(n_runs), raw, cache, ex, print_fn=None)
            seconds = time.perf_counter() - start
        rows[name] = {"workers": workers, "threads_per_run": threads, "runs": n_runs, "seconds": seconds,
                      "runs_per_hour": n_runs * 3600 / seconds, "accuracies": [r.test_accuracy for r in done]}
        log(f"throughput, {name}: {workers} worker(s) x {threads} thread(s): {n_runs} runs in {seconds:.0f} s, "
            f"{rows[name]['runs_per_hour']:.1f} runs/hour")
    return {"epochs": epochs, "n_train": n_train or len(raw.y_train), "settings": rows,
            "speedup": rows["default"]["runs_per_hour"] / rows["1 worker"]["runs_per_hour"]}


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
        rows.append({"target": f"keras-mixed_bfloat16 epoch <= {IMPLIED_FACTOR}x the FLOP-implied time",
                     "measured": ratio, "met": ratio <= IMPLIED_FACTOR})  # fmt: skip
    return rows


def table(report: dict) -> str:
    """A Markdown table of a report from ``run``."""
    lines = [
        "| implementation | first epoch s | epoch s (median) | train img/s | eval img/s | peak MB "
        "| share of matmul peak | vs reference | test acc |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for impl, r in report["results"].items():
        vs = f"{r['speed_vs_reference']:.2f}x" if "speed_vs_reference" in r else "-"
        lines.append(
            f"| {impl} | {r['first_epoch_seconds']:.2f} | {r['steady_epoch_seconds']:.2f} | "
            f"{r['train_images_per_second']:,.0f} | {r['eval_images_per_second']:,.0f} | {r['peak_memory_mb']:,.0f} | "
            f"{r['matmul_share']:.1%} | {vs} | {r['test_accuracy']:.2%} |"
        )
    m, s = report["machine"], report["setup"]
    lines += [
        "",
        f"Machine: {m['model']}, {m['cores']} cores, SIMD {' '.join(m['simd']) or 'unknown'}; NumPy fp32 matmul "
        f"{report['matmul_gflops']:.0f} GFLOP/s; {report['flops_per_image']['training'] / 1e6:.2f} MFLOP per "
        f"training image; {s['epochs']} epochs of {s['n_train']:,} images, batch {s['batch_size']}, alternated.",
    ]
    for t in report["targets"]:
        lines.append(f"- {t['target']}: {t['measured']:.2f} -> {'met' if t['met'] else 'NOT met'}")
    if report.get("throughput"):
        t = report["throughput"]
        parts = [f"{r['workers']} worker(s) x {r['threads_per_run']} thread(s) {r['runs_per_hour']:.1f}"
                 for r in t["settings"].values()]  # fmt: skip
        lines.append(f"- Report throughput (baseline network, {t['epochs']} epochs on {t['n_train']:,} images per run, "
                     f"runs per hour through the executor): {'; '.join(parts)}; the default is {t['speedup']:.2f}x "
                     "one worker")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mnist_report.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated, from {', '.join(IMPLS)}")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n-train", type=int, default=None, help="training images (default: all 60,000)")
    p.add_argument("--n-test", type=int, default=None, help="test images for the evaluation speed (default: all)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--throughput-runs", type=int, default=4,
                   help="baseline-network runs per executor setting for the report-throughput figure (0: skip it)")
    p.add_argument("--throughput-epochs", type=int, default=10, help="epochs of each of those runs (default 10)")
    p.add_argument("--out", default=str(PROJECT_ROOT / "reports" / "bench.json"))
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
            print("error: the reference needs PyTorch, a bench-only extra: .venv/bin/pip install -e '.[bench]'",
                  file=sys.stderr)  # fmt: skip
            return 2
    try:
        report = run(impls, args.epochs, args.n_train, args.n_test, args.batch_size, args.seed)
        if args.throughput_runs > 0:
            report["throughput"] = throughput(args.throughput_runs, args.throughput_epochs, args.n_train)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_json(args.out, report)
    print(table(report))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
