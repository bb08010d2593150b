"""`make reproduce`: every notebook executed again from nothing, and every number of the committed
metrics set against the reproduced one.

The notebooks run with the parameters their committed executed copies record, into a directory of
their own (never ``reports/``) with an empty run cache of their own (``resume``: the runs an
interrupted reproduction trained itself are kept). Each number is then identical,
or different by so much; a difference is judged against the noise the report itself measured:

- an accuracy (or a count of errors) over seeds, against the standard deviation over seeds that
  notebook 02 measured; one run's, against its binomial standard error on the test images; twice
  either is "within noise";
- a number that describes the setup (configuration, data sizes, seeds, parameter counts) must be
  identical;
- other statistics (losses, calibration, p-values, confusion counts) are listed with their
  difference but not judged, since the report gives them no noise of their own;
- timings are listed apart.

On the machine that made the report every number must be identical. On another CPU, oneDNN picks
other kernels and sums in another order, so the last bits of the first weights update differ and
training drifts from there: accuracies move within noise.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import nbformat

from mnist_report import schema
from mnist_report.io import write_json
from mnist_report.paths import PROJECT_ROOT, shown

NOISE_FACTOR = 2.0  # a difference within twice the measured noise is "within noise"
SETUP = ("config", "data", "seeds", "parameters", "space", "max_trials", "max_epochs", "n_bins", "min_runs",
         "executor", "selected", "n", "threads_per_run")  # fmt: skip
# parameters that say where a notebook writes or trains, not what it computes
PLACES = ("output_dir", "cache_dir", "run_dir", "scheduler", "workers")


def recorded_parameters(executed: Path) -> dict:
    """The parameters papermill injected into an executed notebook, less where it wrote."""
    nb = nbformat.read(executed, as_version=4)
    params = nb.metadata.get("papermill", {}).get("parameters", {})
    return {k: v for k, v in params.items() if k not in PLACES}


def flatten(obj, path: str = "") -> dict[str, float]:
    """Every number in a metrics structure, by its path (``runs[3].accuracy``); booleans and text aside."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in ("environment", "executor"):  # the machine, and how many runs trained at once: not results
                out.update(flatten(v, f"{path}.{k}" if path else str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{path}[{i}]"))
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        out[path] = obj
    return out


def _kind(path: str) -> str:
    parts = [p.split("[")[0] for p in path.split(".")]
    last = parts[-1]
    if "seconds" in last or last.endswith("_s") or "seconds" in parts:
        return "timing"
    if any(p in SETUP for p in parts[:-1]) or last in SETUP:
        return "setup"
    if "accuracy" in last or "accuracies" in parts or last in ("n_errors", "mean", "ci_low", "ci_high"):
        return "accuracy"
    return "statistic"


def noise(path: str, value: float, n_test: int, seed_std: float | None) -> float | None:
    """The noise a number of kind "accuracy" is judged against (see the module's docstring)."""
    over_seeds = any(k in path for k in ("summary", "mean", "ci_")) or path.startswith("accuracy_")
    if path.endswith("n_errors"):
        p = 1 - value / n_test
        return math.sqrt(max(p * (1 - p), 1 / n_test) / n_test) * n_test
    if over_seeds and seed_std:
        return seed_std
    p = min(max(value, 0.0), 1.0)
    return math.sqrt(max(p * (1 - p), 1 / n_test) / n_test)


def compare(committed: Path, reproduced: Path) -> dict:
    """Every number of ``committed``'s metrics files against ``reproduced``'s, judged (see above)."""
    committed, reproduced = Path(committed), Path(reproduced)
    study = committed / "02-multi-seed-study.metrics.json"
    seed_std = schema.load(study)["accuracy_summary"]["std"] if study.is_file() else None
    rows = []
    for path in sorted(committed.glob("*.metrics.json")):
        name = path.name.removesuffix(".metrics.json")
        other = reproduced / path.name
        old = schema.load(path)
        new = schema.load(other) if other.is_file() else {}
        n_test = (old.get("data") or {}).get("n_test") or 10000
        old_numbers, new_numbers = flatten(old), flatten(new)
        for key, a in old_numbers.items():
            b = new_numbers.get(key)
            kind = _kind(key)
            row = {"notebook": name, "number": key, "kind": kind, "committed": a, "reproduced": b}
            if b is None:
                row["verdict"] = "missing"
            elif a == b:
                row["verdict"] = "identical"
            elif kind == "timing":
                row["verdict"] = "timing"
            elif kind == "accuracy":
                tolerance = NOISE_FACTOR * noise(key, a, n_test, seed_std)
                row.update(noise=tolerance, verdict="within noise" if abs(b - a) <= tolerance else "OUTSIDE noise")
            elif kind == "setup":
                row["verdict"] = "OUTSIDE noise"  # the setup must be the same
            else:
                row["verdict"] = "different (not judged)"
            if b is not None and a != b:
                row["difference"] = b - a
            rows.append(row)
    bad = [r for r in rows if r["verdict"] in ("OUTSIDE noise", "missing")]
    judged = [r for r in rows if r["kind"] != "timing"]
    same = sum(r["verdict"] == "identical" for r in judged)
    if bad:
        verdict = (f"NOT REPRODUCED: {len(bad)} of {len(judged)} numbers outside what noise explains "
                   f"(first: {bad[0]['notebook']} {bad[0]['number']})")  # fmt: skip
    elif same == len(judged):
        verdict = f"REPRODUCED: all {len(judged)} numbers identical (timings aside)"
    else:
        verdict = (f"REPRODUCED WITHIN NOISE: {same} of {len(judged)} numbers identical; every accuracy that "
                   f"differs is within {NOISE_FACTOR:g}x the noise the report measured")  # fmt: skip
    return {"rows": rows, "verdict": verdict, "ok": not bad, "seed_std": seed_std}


def markdown(result: dict) -> str:
    """The comparison as a Markdown table: differences first, then the timings, then a count of the rest."""
    def fmt(v):
        return "-" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))

    differ = [r for r in result["rows"] if r["verdict"] not in ("identical", "timing")]
    timings = [r for r in result["rows"] if r["kind"] == "timing"]
    lines = [result["verdict"], "", "| notebook | number | committed | reproduced | difference | noise x2 | verdict |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for r in differ:
        lines.append(f"| {r['notebook']} | {r['number']} | {fmt(r['committed'])} | {fmt(r['reproduced'])} | "
                     f"{fmt(r.get('difference'))} | {fmt(r.get('noise'))} | {r['verdict']} |")  # fmt: skip
    n_same = sum(r["verdict"] == "identical" and r["kind"] != "timing" for r in result["rows"])
    lines += ["", f"{n_same} other numbers are identical.", "", "Timings (not judged):", "",
              "| notebook | number | committed | reproduced |", "| --- | --- | ---: | ---: |"]  # fmt: skip
    lines += [f"| {r['notebook']} | {r['number']} | {fmt(r['committed'])} | {fmt(r['reproduced'])} |" for r in timings]
    return "\n".join(lines) + "\n"


def reproduce(reports: Path = PROJECT_ROOT / "reports", out: Path = PROJECT_ROOT / "reproduce",
              notebooks_dir: Path = PROJECT_ROOT / "notebooks", names: list[str] | None = None,
              timeout: int | None = None, print_fn=print, resume: bool = False) -> dict:  # fmt: skip
    """Execute every notebook (or ``names``) again into ``out`` with an empty cache; compare; write
    ``out/reproduce.md`` and ``out/reproduce.json``.

    ``resume``: keep ``out/cache``, the runs that an interrupted reproduction trained itself (a full one
    takes hours on a small machine), so that the next attempt trains only what is missing. Nothing
    is ever read from the report's own cache; a run trained by other code has another key."""
    from mnist_report import notebooks

    reports, out = Path(reports).resolve(), Path(out).resolve()
    if out == reports:
        raise ValueError(f"reproduce writes into a directory of its own, never over {shown(reports)}")
    if not resume:
        shutil.rmtree(out / "cache", ignore_errors=True)  # from nothing: no run is read back
    names = names or [p.stem for p in sorted(Path(notebooks_dir).glob("[0-9]*.ipynb"))]
    say = print_fn or (lambda line: None)
    for name in names:  # before hours of training: the committed metrics must be readable at the end
        if (reports / f"{name}.metrics.json").is_file():
            schema.load(reports / f"{name}.metrics.json")
    for name in names:
        executed = reports / f"{name}.ipynb"
        if not executed.is_file():
            raise FileNotFoundError(f"{shown(executed)} does not exist: there is no committed report to reproduce")
        params = recorded_parameters(executed)
        source = Path(notebooks_dir) / f"{name}.ipynb"
        known = notebooks.pm.inspect_notebook(str(source))
        places = {"output_dir": str(out), "cache_dir": str(out / "cache"), "run_dir": str(out / "runs" / name)}
        params.update({k: v for k, v in places.items() if k in known})
        say(f"== {name}: executing from nothing with its recorded parameters {recorded_parameters(executed)}")
        notebooks.execute(source, out / f"{name}.ipynb", params, timeout=timeout or notebooks.CELL_TIMEOUT)
    return compare_and_write(reports, out)


def compare_and_write(reports: Path, out: Path) -> dict:
    """``compare``, written as ``out/reproduce.json`` and ``out/reproduce.md``."""
    result = compare(reports, out)
    write_json(Path(out) / "reproduce.json", result)
    (Path(out) / "reproduce.md").write_text(markdown(result))
    return result


def main(reports: Path, out: Path, timeout: int | None, compare_only: bool = False, resume: bool = False) -> int:
    """Exit status 1 if a reproduced number is outside what noise explains (or missing)."""
    if compare_only:
        result = compare_and_write(reports, out)
    else:
        result = reproduce(reports, out, timeout=timeout, resume=resume)
    print(markdown(result))
    print(f"written to {shown(Path(out) / 'reproduce.md')} and reproduce.json")
    print(result["verdict"])
    return 0 if result["ok"] else 1
