"""`make reproduce`: every notebook executed again from nothing, and every number of the committed
metrics set against the reproduced one.

The notebooks run with the parameters their committed executed copies record, into a directory of
their own (never ``reports/``) with an empty run cache of their own (``resume``: the runs an
interrupted reproduction trained itself are kept). A parameter left at "auto" that each machine
resolves for itself (``AUTO``: the precision) is set to what the report's machine resolved, so that
every machine trains the report's setup. Each number is then identical, or different by so much.
How a difference is judged:

- On the machine that made the report (the same vector instructions, GPUs, oneDNN setting and
  package versions, as the metrics' ``environment`` records them) every number must be identical,
  timings aside.
- Elsewhere, a difference is judged against the noise the report itself measured:
  - an accuracy (or a count of errors) of one run, against its binomial standard error on the test
    images; a figure over seeds (a mean, its interval), against the standard deviation over seeds
    that the report measured beside it (else notebook 02's), divided by the root of the number of
    seeds. The committed and the reproduced number are two draws, so their difference has root 2
    times that spread. It is "within noise" up to ``z`` times that, where ``z`` holds the chance
    that noise alone flags any of the numbers judged to 5% (Bonferroni: about 3.5 for a hundred);
  - a number or text that describes the setup (configuration, data sizes, seeds, precision) must be
    identical;
  - a choice made on validation scores (notebook 03's selected hyperparameters and recipe) may
    differ; it is listed, not judged, and so are the accuracies that follow from it when it did
    (``FOLLOWS_CHOICES``: the tuned and final networks, their tests), and the other statistics
    (losses, calibration, p-values, confusion counts, training curves) that the report gives no
    noise of their own; a validation accuracy is a share of the validation images;
  - timings, and how many runs were read back from a cache, are listed apart.
- A list of records is matched by each record's name (``runs[seed=3]``, ``top_undirected_pairs[pair=4-9]``),
  not by position, so that a reordering is no difference; a record only one side has is listed, and
  counts against the reproduction only when it is part of the setup or an accuracy.

On another CPU, oneDNN picks other kernels and sums in another order, so the last bits of the first
weights update differ and training drifts from there: accuracies move within noise, and a choice
made on close validation scores can fall the other way.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from statistics import NormalDist

import nbformat

from mnist_report import schema
from mnist_report.io import write_json
from mnist_report.notebooks import PLACES, parameter_value
from mnist_report.paths import PROJECT_ROOT, shown

FAMILY_ALPHA = 0.05  # the chance that noise alone puts any judged number outside noise
SETUP = ("config", "final_config", "base_config", "data", "seeds", "parameters", "space", "max_trials", "max_epochs",
         "n_bins", "min_runs", "n", "n_val", "threads_per_run")  # fmt: skip
SETUP_PATHS = ("precision",)  # notebook 03's resolved precision ("auto" is bfloat16 on some CPUs only)
CHOICES = ("selected", "choice")  # and notebook 03's final and snapshot recipes (see _kind)
CURVES = ("history", "final_history")  # accuracy epoch by epoch: the final numbers are judged instead
# what follows from a choice: where the choice differs (off the report's machine), listed, not judged
FOLLOWS_CHOICES = ("tuned", "final", "snapshot", "mcnemar", "mcnemar_by_seed", "mcnemar_earlier_better",
                   "mcnemar_ensembles", "label_errors")  # fmt: skip
COST = ("time.cached", "time.runs")  # how much a run read back from its cache: not a result
RECORD_NAMES = ("pair", "candidate", "digit", "seed", "trial", "step", "index")


def recorded_parameters(executed: Path) -> dict:
    """The parameters papermill injected into an executed notebook, less where it wrote."""
    nb = nbformat.read(executed, as_version=4)
    params = nb.metadata.get("papermill", {}).get("parameters", {})
    return {k: v for k, v in params.items() if k not in PLACES}


# Parameters whose "auto" each machine resolves for itself, and how to read back from a committed
# metrics file what the report's machine resolved it to.
AUTO = {
    "precision": lambda m: m.get("precision", "auto"),  # notebook 03: mixed_bfloat16 where bf16 is native
    "compare_precision": lambda m: (m.get("precision_comparison") or {"names": [None, None]})["names"][1],  # 02
}


def as_resolved(params: dict, defaults: dict, committed: dict) -> dict:
    """``params`` with each ``AUTO`` parameter at "auto" set to what the committed report resolved it
    to: on a CPU with native bfloat16 a reproduction of a report made without it trains the same
    precision (and no comparison the report does not have), not what "auto" picks there."""
    out = dict(params)
    for name, read in AUTO.items():
        if name in defaults and parameter_value(out, defaults, name) == "auto":
            out[name] = read(committed)
    return out


def check_precisions(params: dict, defaults: dict, name: str) -> None:
    """Refuse, before hours of training, a report in bfloat16 (or with a bfloat16 comparison) on a
    machine without native bfloat16, where train.py would refuse it in the middle."""
    wanted = {f"{p}={v}" for p in AUTO if p in defaults and (v := parameter_value(params, defaults, p)) not in
              (None, "float32", "auto")}  # fmt: skip
    if wanted:
        from mnist_report.train import bf16_native  # TensorFlow: only when bfloat16 is asked for

        if not bf16_native():
            raise ValueError(f"the committed report of {name} ran with {', '.join(sorted(wanted))}, which this "
                             f"machine does not compute natively (no AVX512_BF16, AMX or Ampere GPU): its numbers "
                             f"can be reproduced only on such a machine")  # fmt: skip


def _label(item, i: int) -> str:
    """A list element's place in a path: its name where it is a named record, else its position."""
    if isinstance(item, dict):
        if "true" in item and "predicted" in item:
            return f"{item['true']}->{item['predicted']}"
        for key in RECORD_NAMES:
            if isinstance(item.get(key), str | int) and not isinstance(item.get(key), bool):
                return f"{key}={item[key]}"
    return str(i)


def flatten(obj, path: str = "") -> dict[str, float | str]:
    """Every number and text in a metrics structure, by its path (``runs[seed=3].accuracy``); booleans
    aside, and the machine and executor (how many runs trained at once: never a result)."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in ("environment", "executor"):
                out.update(flatten(v, f"{path}.{k}" if path else str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{path}[{_label(v, i)}]"))
    elif isinstance(obj, int | float | str) and not isinstance(obj, bool):
        out[path] = obj
    return out


def _kind(path: str) -> str:
    parts = [p.split("[")[0] for p in path.split(".")]
    last = parts[-1]
    if "seconds" in last or last.endswith("_s") or "seconds" in parts or path in COST:
        return "timing"
    if any(p in CHOICES for p in parts) or (parts[0] in ("final", "snapshot") and parts[1:2] == ["config"]):
        return "choice"
    if path in SETUP_PATHS or any(p in SETUP for p in parts[:-1]) or last in SETUP:
        return "setup"
    if parts[0] in CURVES:
        return "statistic"
    if "accurac" in last or "accuracies" in parts or last in ("n_errors", "mean", "ci_low", "ci_high"):
        return "accuracy"
    return "statistic"


def _sibling(path: str, name: str, keep_index: bool = True) -> str:
    """The path of ``name`` beside the number at ``path`` (``a.mean[3]`` -> ``a.std[3]`` for "std";
    without ``keep_index``, ``a.std``)."""
    head, _, last = path.rpartition(".")
    index = last[last.index("["):] if "[" in last and keep_index else ""
    return f"{head}.{name}{index}" if head else f"{name}{index}"


def spread(path: str, numbers: dict, n_test: int, seed_std: float | None, n_seeds: int, n_val: int | None = None
           ) -> float:  # fmt: skip
    """How much a number of kind "accuracy" varies from one reproduction to the next (one draw's
    standard deviation; see the module's docstring). A validation accuracy is a share of ``n_val``
    images, where the metrics give it."""
    value = numbers[path]
    if n_val and ("val_" in path or path.startswith(("search.", "candidates."))):
        n_test = n_val
    if path.endswith("n_errors"):
        p = 1 - value / n_test
        return math.sqrt(max(p * (1 - p), 1 / n_test) / n_test) * n_test
    last = path.rpartition(".")[2].split("[")[0]
    if last in ("mean", "ci_low", "ci_high") and (seed_std or _sibling(path, "std") in numbers):
        std = numbers.get(_sibling(path, "std"), seed_std)
        n_runs = numbers.get(_sibling(path, "n_runs", keep_index=False), n_seeds)
        return std / math.sqrt(max(n_runs, 1))
    if "difference" in last:  # a difference from a fixed claim: the accuracy's own error
        value = numbers.get(_sibling(path, "accuracy"), value)
    p = min(max(value, 0.0), 1.0)
    return math.sqrt(max(p * (1 - p), 1 / n_test) / n_test)


def _n_test(numbers: dict) -> int:
    for key in ("data.n_test", "test.n", "tuned.test.n", "final.ensemble.n"):
        if key in numbers:
            return int(numbers[key])
    return 10000


def same_machine(old: dict, new: dict) -> bool:
    """Whether two metrics came from the same machine and packages (both must record ``fingerprint``)."""
    a, b = old.get("environment") or {}, new.get("environment") or {}
    same = ("fingerprint", "packages")
    return "fingerprint" in a and all(a.get(k) == b.get(k) for k in same)


def compare(committed: Path, reproduced: Path) -> dict:
    """Every number of ``committed``'s metrics files against ``reproduced``'s, judged (see above)."""
    committed, reproduced = Path(committed), Path(reproduced)
    study = committed / "02-multi-seed-study.metrics.json"
    seed_std = schema.load(study)["accuracy_summary"]["std"] if study.is_file() else None
    rows, machines = [], {}
    for path in sorted(committed.glob("*.metrics.json")):
        name = path.name.removesuffix(".metrics.json")
        other = reproduced / path.name
        old = schema.load(path)
        new = schema.load(other) if other.is_file() else {}
        machines[name] = same_machine(old, new)
        old_numbers, new_numbers = flatten(old), flatten(new)
        n_test, n_seeds = _n_test(old_numbers), len(old.get("seeds") or []) or 1
        n_val = old_numbers.get("data.n_val") or old_numbers.get("candidates.n_val")
        other_choice = not machines[name] and any(
            _kind(k) == "choice" and old_numbers.get(k) != new_numbers.get(k) for k in {*old_numbers, *new_numbers})
        for key in [*old_numbers, *(k for k in new_numbers if k not in old_numbers)]:
            a, b, kind = old_numbers.get(key), new_numbers.get(key), _kind(key)
            if isinstance(a if a is not None else b, str) and kind not in ("setup", "choice"):
                continue  # prose and paths: they follow the numbers
            row = {"notebook": name, "number": key, "kind": kind, "committed": a, "reproduced": b}
            if a == b:
                row["verdict"] = "identical"
            elif kind == "timing":
                row["verdict"] = "timing"
            elif machines[name]:
                row["verdict"] = "DIFFERS on the same machine"
            elif a is None or b is None:
                row["verdict"] = "missing" if kind in ("setup", "accuracy") else "different (not judged)"
            elif kind == "accuracy" and other_choice and key.split(".")[0].split("[")[0] in FOLLOWS_CHOICES:
                row["verdict"] = "follows another choice (not judged)"
            elif kind == "accuracy":
                row["spread"] = math.sqrt(2) * spread(key, old_numbers, n_test, seed_std, n_seeds, n_val)
            elif kind == "setup":
                row["verdict"] = "OUTSIDE noise"  # the setup must be the same
            elif kind == "choice":
                row["verdict"] = "another choice (not judged)"
            else:
                row["verdict"] = "different (not judged)"
            if isinstance(a, int | float) and isinstance(b, int | float) and a != b:
                row["difference"] = b - a
            rows.append(row)
    judged = [r for r in rows if "spread" in r]
    # every accuracy compared is a test, the identical ones included
    n_tests = sum(r["kind"] == "accuracy" and None not in (r["committed"], r["reproduced"]) for r in rows)
    z = NormalDist().inv_cdf(1 - FAMILY_ALPHA / (2 * max(n_tests, 1)))
    for r in judged:
        r["noise"] = z * r.pop("spread")
        r["verdict"] = "within noise" if abs(r["difference"]) <= r["noise"] else "OUTSIDE noise"
    bad = [r for r in rows if r["verdict"] in ("OUTSIDE noise", "missing", "DIFFERS on the same machine")]
    counted = [r for r in rows if r["kind"] != "timing"]
    same = sum(r["verdict"] == "identical" for r in counted)
    if bad:
        verdict = (f"NOT REPRODUCED: {len(bad)} of {len(counted)} numbers outside what noise explains "
                   f"(first: {bad[0]['notebook']} {bad[0]['number']}: {bad[0]['verdict']})")  # fmt: skip
    elif same == len(counted):
        verdict = f"REPRODUCED: all {len(counted)} numbers identical (timings aside)"
    else:
        verdict = (f"REPRODUCED WITHIN NOISE: {same} of {len(counted)} numbers identical; each of the "
                   f"{len(judged)} accuracies that differ is within {z:.2f} x the noise the report measured "
                   f"({n_tests} accuracies compared)")  # fmt: skip
    return {"rows": rows, "verdict": verdict, "ok": not bad, "seed_std": seed_std, "z": z,
            "same_machine": machines}  # fmt: skip


def markdown(result: dict) -> str:
    """The comparison as a Markdown table: differences first, then the timings, then a count of the rest."""
    def fmt(v):
        return "-" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))

    differ = [r for r in result["rows"] if r["verdict"] not in ("identical", "timing")]
    timings = [r for r in result["rows"] if r["kind"] == "timing"]
    same = [name for name, yes in result.get("same_machine", {}).items() if yes]
    lines = [result["verdict"], "",
             f"Same machine and packages as the committed report (every number must be identical): "
             f"{', '.join(same) or 'none'}. Elsewhere an accuracy may differ by up to `allowed`: "
             f"{result.get('z', 2):.2f} times the noise of a difference between two runs "
             "(see mnist_report/reproduce.py).",
             "", "| notebook | number | committed | reproduced | difference | allowed | verdict |",
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
    names = names or [p.stem for p in sorted(Path(notebooks_dir).glob("[0-9]*.ipynb"))]
    say = print_fn or (lambda line: None)
    plans = []
    for name in names:  # before hours of training: the committed report must be there, readable at the end,
        metrics, executed = reports / f"{name}.metrics.json", reports / f"{name}.ipynb"  # and trainable here
        try:
            committed = schema.load(metrics) if metrics.is_file() else None
        except schema.MetricsError as e:
            raise ValueError(f"the committed report of {name} was made by older code, so there is nothing "
                             f"to reproduce yet: regenerate it first (`make check-report` names what changed, "
                             f"`make report` regenerates it). {e}") from None  # fmt: skip
        if not executed.is_file():
            raise FileNotFoundError(f"{shown(executed)} does not exist: there is no committed "
                                    f"report of {name} to reproduce (`make report` makes it)")  # fmt: skip
        source = Path(notebooks_dir) / f"{name}.ipynb"
        known = notebooks.pm.inspect_notebook(str(source))
        params = recorded_parameters(executed)
        params = as_resolved(params, known, committed) if committed is not None else params
        check_precisions(params, known, name)
        plans.append((name, source, known, params))
    if not resume:
        shutil.rmtree(out / "cache", ignore_errors=True)  # from nothing: no run is read back
    for name, source, known, params in plans:
        say(f"== {name}: executing from nothing with the report's parameters {params}")
        places = {"output_dir": str(out), "cache_dir": str(out / "cache"), "run_dir": str(out / "runs" / name)}
        params = {**params, **{k: v for k, v in places.items() if k in known}}
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
        if not Path(out).is_dir():
            raise ValueError(f"nothing to compare: {shown(out)} does not exist (run `make reproduce` first)")
        result = compare_and_write(reports, out)
    else:
        result = reproduce(reports, out, timeout=timeout, resume=resume)
    print(markdown(result))
    print(f"written to {shown(Path(out) / 'reproduce.md')} and reproduce.json")
    print(result["verdict"])
    return 0 if result["ok"] else 1
