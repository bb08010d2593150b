"""`make reproduce`: every run of the report trained again into a scratch store, every notebook executed
again on them, and every number of the committed metrics set against the reproduced one.

The notebooks run with the parameters their committed executed copies record, into ``reproduce/``
(never ``reports/``), with ``reproduce/runs/`` as their only store (``resume``: the runs an
interrupted reproduction trained are kept). How a number that differs is judged depends on its kind,
declared with the metrics (``metrics.Kind``):

- where both reports came from the same machine and packages, every number must be identical;
- elsewhere an accuracy is judged against its noise: one run's against its binomial standard error
  (on the test or the validation images), a mean over seeds against the standard deviation over seeds
  divided by the root of their number. The two numbers are two draws, so their difference has root 2
  times that spread, and it is "within noise" up to ``z`` times that, ``z`` holding the chance that
  noise alone flags any of the numbers judged to 5% (Bonferroni);
- a setup number (configuration, data sizes, seeds) must be identical;
- a choice made on validation scores may differ: it is listed, and so are the numbers of the networks
  it made, where it differs;
- timings, and statistics the report gives no noise for (losses, p-values), are listed, not judged.

On another CPU, oneDNN sums in another order, the last bits of the first update differ and training
drifts from there: accuracies move within noise, and a close choice can fall the other way.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from statistics import NormalDist

import nbformat

from mnist_report.io import write_json
from mnist_report.paths import PROJECT_ROOT, shown
from mnist_report.reporting import metrics
from mnist_report.reporting.metrics import Kind
from mnist_report.reporting.runner import PLACES
from mnist_report.runs.store import STORE_ENV

FAMILY_ALPHA = 0.05  # the chance that noise alone puts any judged number outside noise


def recorded_parameters(executed: Path) -> dict:
    """The parameters papermill injected into an executed notebook, less where it wrote or trained."""
    nb = nbformat.read(executed, as_version=4)
    params = nb.metadata.get("papermill", {}).get("parameters", {})
    return {k: v for k, v in params.items() if k not in PLACES}


def _beside(numbers: dict, key: str, name: str):
    head = key.rpartition(".")[0]
    return numbers.get(f"{head}.{name}" if head else name, (None, None))[1]


def spread(
    kind: Kind, key: str, value: float, numbers: dict, n_test: int, n_val: int | None, seed_std: float | None
) -> float:
    """One draw's standard deviation of a number of ``kind`` (see the module's docstring)."""
    if kind == Kind.ERRORS:
        p = 1 - value / n_test
        return math.sqrt(max(p * (1 - p), 1 / n_test) / n_test) * n_test
    if kind == Kind.MEAN:
        std = _beside(numbers, key, "std") or seed_std or 0.0
        return std / math.sqrt(max(_beside(numbers, key, "n_runs") or 1, 1))
    n = n_val if kind == Kind.VAL_ACCURACY and n_val else n_test
    p = min(max(abs(value), 0.0), 1.0)
    return math.sqrt(max(p * (1 - p), 1 / n) / n)


def same_machine(old: dict, new: dict) -> bool:
    """Whether two metrics came from the same machine and packages: where the notebooks ran, and the
    processors their runs were trained on (a report's runs may come from several)."""
    a, b = old.get("environment") or {}, new.get("environment") or {}
    ran = a.get("fingerprint") is not None and all(
        a.get(k) == b.get(k) for k in ("fingerprint", "packages", "cpu_model")
    )
    return ran and old.get("trained_on") == new.get("trained_on")


def compare(committed: Path, reproduced: Path) -> dict:
    """Every number of ``committed``'s metrics files against ``reproduced``'s, judged (see above)."""
    committed, reproduced = Path(committed), Path(reproduced)
    study = committed / "02-multi-seed-study.metrics.json"
    seed_std = metrics.load(study)["accuracy_summary"]["std"] if study.is_file() else None
    rows, machines = [], {}
    for path in sorted(committed.glob("*.metrics.json")):
        name = path.name.removesuffix(".metrics.json")
        old = metrics.load(path)
        new = metrics.load(reproduced / path.name) if (reproduced / path.name).is_file() else {}
        machines[name] = same_machine(old, new)
        a_numbers, b_numbers = metrics.numbers(old), metrics.numbers(new)
        n_test = int(
            next((a_numbers[k][1] for k in ("test.n", "final.ensemble.n", "data.n_test") if k in a_numbers), 10000)
        )
        n_val = a_numbers.get("ablation.n_val", (None, None))[1]
        found = {k: metrics.kinds(name, list(p)) for k, (p, _) in {**b_numbers, **a_numbers}.items()}
        other_choice = not machines[name] and any(
            Kind.CHOICE in ks and a_numbers.get(k, (0, None))[1] != b_numbers.get(k, (0, None))[1]
            for k, ks in found.items()
        )
        for key, ks in found.items():
            a, b = a_numbers.get(key, (0, None))[1], b_numbers.get(key, (0, None))[1]
            kind = ks[-1] if ks else Kind.STATISTIC
            judged = kind in (Kind.ACCURACY, Kind.VAL_ACCURACY, Kind.ERRORS, Kind.MEAN)
            if isinstance(a if a is not None else b, str) and kind not in (Kind.SETUP, Kind.CHOICE):
                continue  # prose and paths: they follow the numbers
            row = {"notebook": name, "number": key, "kind": kind.value, "committed": a, "reproduced": b}
            if a == b:
                row["verdict"] = "identical"
            elif kind == Kind.TIMING:
                row["verdict"] = "timing"
            elif machines[name]:
                row["verdict"] = "DIFFERS on the same machine"
            elif a is None or b is None:
                row["verdict"] = "missing" if kind == Kind.SETUP or judged else "different (not judged)"
            elif Kind.CHOICE in ks:
                row["verdict"] = "another choice (not judged)"
            elif judged and other_choice and Kind.FOLLOWS_CHOICE in ks:
                row["verdict"] = "follows another choice (not judged)"
            elif judged:
                row["spread"] = math.sqrt(2) * spread(kind, key, a, a_numbers, n_test, n_val, seed_std)
            elif kind == Kind.SETUP:
                row["verdict"] = "OUTSIDE noise"  # the setup must be the same
            else:
                row["verdict"] = "different (not judged)"
            if isinstance(a, int | float) and isinstance(b, int | float) and a != b:
                row["difference"] = b - a
            row["kind_judged"] = judged
            rows.append(row)
    n_tests = sum(r.pop("kind_judged") and None not in (r["committed"], r["reproduced"]) for r in rows)
    z = NormalDist().inv_cdf(1 - FAMILY_ALPHA / (2 * max(n_tests, 1)))
    judged = [r for r in rows if "spread" in r]
    for r in judged:
        r["noise"] = z * r.pop("spread")
        r["verdict"] = "within noise" if abs(r["difference"]) <= r["noise"] else "OUTSIDE noise"
    bad = [r for r in rows if r["verdict"] in ("OUTSIDE noise", "missing", "DIFFERS on the same machine")]
    counted = [r for r in rows if r["kind"] != Kind.TIMING.value]
    same = sum(r["verdict"] == "identical" for r in counted)
    if bad:
        verdict = (
            f"NOT REPRODUCED: {len(bad)} of {len(counted)} numbers outside what noise explains "
            f"(first: {bad[0]['notebook']} {bad[0]['number']}: {bad[0]['verdict']})"
        )
    elif same == len(counted):
        verdict = f"REPRODUCED: all {len(counted)} numbers identical (timings aside)"
    else:
        verdict = (
            f"REPRODUCED WITHIN NOISE: {same} of {len(counted)} numbers identical; each of the "
            f"{len(judged)} accuracies that differ is within {z:.2f} x the noise the report measured "
            f"({n_tests} accuracies compared)"
        )
    return {"rows": rows, "verdict": verdict, "ok": not bad, "seed_std": seed_std, "z": z, "same_machine": machines}


def markdown(result: dict) -> str:
    """The comparison as a Markdown table: differences first, then the timings, then a count of the rest."""

    def fmt(v):
        return "-" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))

    differ = [r for r in result["rows"] if r["verdict"] not in ("identical", "timing")]
    timings = [r for r in result["rows"] if r["kind"] == Kind.TIMING.value]
    same = [name for name, yes in result.get("same_machine", {}).items() if yes]
    lines = [
        result["verdict"],
        "",
        f"Same machine and packages as the committed report (every number must be identical): "
        f"{', '.join(same) or 'none'}. Elsewhere an accuracy may differ by up to `allowed`: "
        f"{result.get('z', 2):.2f} times the noise of a difference between two runs.",
        "",
        "| notebook | number | kind | committed | reproduced | difference | allowed | verdict |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in differ:
        lines.append(
            f"| {r['notebook']} | {r['number']} | {r['kind']} | {fmt(r['committed'])} | "
            f"{fmt(r['reproduced'])} | {fmt(r.get('difference'))} | {fmt(r.get('noise'))} | {r['verdict']} |"
        )
    n_same = sum(r["verdict"] == "identical" and r["kind"] != Kind.TIMING.value for r in result["rows"])
    lines += [
        "",
        f"{n_same} other numbers are identical.",
        "",
        "Timings (not judged):",
        "",
        "| notebook | number | committed | reproduced |",
        "| --- | --- | ---: | ---: |",
    ]
    lines += [f"| {r['notebook']} | {r['number']} | {fmt(r['committed'])} | {fmt(r['reproduced'])} |" for r in timings]
    return "\n".join(lines) + "\n"


def reproduce(
    reports: Path = PROJECT_ROOT / "reports",
    out: Path = PROJECT_ROOT / "reproduce",
    notebooks_dir: Path = PROJECT_ROOT / "notebooks",
    names: list[str] | None = None,
    timeout: int | None = None,
    print_fn=print,
    resume: bool = False,
) -> dict:
    """Train every run again into ``out/runs`` and execute every notebook (or ``names``) into ``out``;
    compare; write ``out/reproduce.md`` and ``out/reproduce.json``. ``resume``: keep the runs an
    interrupted reproduction trained (a full one takes hours on a small machine)."""
    from mnist_report.reporting import runner

    reports, out = Path(reports).resolve(), Path(out).resolve()
    if out == reports:
        raise ValueError(f"reproduce writes into a directory of its own, never over {shown(reports)}")
    names = names or [p.stem for p in sorted(Path(notebooks_dir).glob("[0-9]*.ipynb"))]
    say = print_fn or (lambda line: None)
    plans = []
    for name in names:  # before hours of training: the committed report must be there and readable
        executed = reports / f"{name}.ipynb"
        try:
            metrics.load(reports / f"{name}.metrics.json")
        except (OSError, metrics.MetricsError) as e:
            raise ValueError(
                f"the committed report of {name} cannot be read as this code declares it, so there "
                f"is nothing to reproduce yet: regenerate it first (`make report`). {e}"
            ) from None
        if not executed.is_file():
            raise FileNotFoundError(f"{shown(executed)} does not exist: there is no committed report of {name}")
        plans.append((name, Path(notebooks_dir) / f"{name}.ipynb", recorded_parameters(executed)))
    if not resume:
        shutil.rmtree(out / "runs", ignore_errors=True)  # from nothing: no run is read back
    saved = os.environ.get(STORE_ENV)
    os.environ[STORE_ENV] = str(out / "runs")
    try:
        for name, source, params in plans:
            say(f"== {name}: training every run again, with the report's parameters {params}")
            runner.execute(source, out / f"{name}.ipynb", params, timeout=timeout or runner.CELL_TIMEOUT)
    finally:
        if saved is None:
            os.environ.pop(STORE_ENV, None)
        else:
            os.environ[STORE_ENV] = saved
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
        if not Path(out).is_dir():
            raise ValueError(f"nothing to compare: {shown(out)} does not exist (run `make reproduce` first)")
        result = compare_and_write(reports, out)
    else:
        result = reproduce(reports, out, timeout=timeout, resume=resume)
    print(markdown(result))
    print(f"written to {shown(Path(out) / 'reproduce.md')} and reproduce.json")
    print(result["verdict"])
    return 0 if result["ok"] else 1
