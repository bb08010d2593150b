"""What this machine is and which package versions compute and draw the report, written once: the run
records, the recorded inputs of each notebook, the metrics' environment block and the benchmark all
read it from here."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

# The packages whose versions can change a trained run's numbers (recorded with every run) ...
TRAINING_PACKAGES = ("tensorflow", "keras", "numpy")
# ... and every package that computes a number or draws a figure of the report (a new version makes
# a notebook stale: `make check-report`), the executor included.
REPORT_PACKAGES = (
    *TRAINING_PACKAGES,
    "scipy",
    "scikit-learn",
    "statsmodels",
    "pandas",
    "keras-tuner",
    "pillow",
    "matplotlib",
    "seaborn",
    "nbconvert",
    "dask",
    "distributed",
)  # nbconvert: the HTML


def versions(names=REPORT_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None where it is not installed)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def cores() -> int:
    """The cores this process may use: the affinity mask (a container's or ``taskset``'s share), not the
    machine's count, where they differ."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu() -> dict:
    """The processor's model name, the cores this process may use, and every flag /proc/cpuinfo lists
    (empty where there is none)."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    return {"model": model, "cores": cores(), "flags": sorted(flags)}


def simd(flags=None) -> list[str]:
    """The vector-instruction flags (oneDNN picks its kernels by them)."""
    flags = cpu()["flags"] if flags is None else flags
    return sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4")))


def fingerprint() -> dict:
    """What makes the same code give other numbers on another machine: the vector instructions, any
    GPU, oneDNN on or off, and Python."""
    import tensorflow as tf

    return {
        "machine": platform.machine(),
        "simd": simd(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "python": platform.python_version(),
    }


def environment() -> dict:
    """The machine and package versions a result came from, for the metrics' ``environment`` block.
    ``fingerprint``, what decides a run's numbers on this machine, is there where TensorFlow is loaded;
    ``make reproduce`` reads it to know whether it runs on the report's machine, where every number must
    come out identical."""
    import sys

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.machine(),  # the architecture (x86_64, arm64); cpu_model names the processor
        "cpu_count": cores(),
        "cpu_model": cpu()["model"],
        "packages": versions(),
    }
    return env | ({"fingerprint": fingerprint()} if "tensorflow" in sys.modules else {})


def bf16_native() -> bool:
    """Whether bfloat16 math runs natively here: an NVIDIA GPU of compute capability 8.0 (Ampere) or
    later, or a CPU with AVX512_BF16 or AMX-BF16."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability is not None and tuple(capability) >= (8, 0):
            return True
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu()["flags"]))
