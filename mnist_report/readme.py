"""The generated parts of the documentation: in README.md, the results tables from the notebooks'
metrics JSON (`make report`) and the benchmark table from reports/bench.json (`make bench`); and
notebooks/README.md, the parameter reference, generated whole from the notebooks' `parameters` cells."""

from __future__ import annotations

import re
from pathlib import Path

from mnist_report import schema
from mnist_report.io import atomic_path
from mnist_report.paths import PROJECT_ROOT

REPRODUCTION_METRICS = "01-seed-reproduction.metrics.json"
STUDY_METRICS = "02-multi-seed-study.metrics.json"
BEYOND_METRICS = "03-beyond-the-seed.metrics.json"
BENCH = "bench.json"
NOTEBOOKS = PROJECT_ROOT / "notebooks"
PARAMETERS_PAGE = "README.md"  # in the notebooks' directory, so GitHub shows it when browsing notebooks/


def markers(name: str) -> tuple[str, str]:
    """The comment lines that open and close a generated block of the README."""
    return f"<!-- {name}:start: generated from reports/; do not edit -->", f"<!-- {name}:end -->"


def _threads(metrics: dict) -> str:
    """How the runs shared the cores, where the metrics record it."""
    ex = metrics.get("executor")
    if not ex:
        return ""
    return f", {ex['threads_per_run']} TensorFlow thread(s) per run, {ex['workers']} run(s) at once"


def _train_seconds(obj, counted: bool = False) -> list[float]:
    """The training time of each run a metrics structure records: the numbers under keys
    ``train_seconds`` and ``monitor_train_seconds`` (alone, or in lists and dicts); a precision
    comparison's runs in the other precision, each at their mean."""
    if isinstance(obj, int | float) and not isinstance(obj, bool):
        return [float(obj)] if counted else []
    if isinstance(obj, list):
        return [t for v in obj for t in _train_seconds(v, counted)]
    if not isinstance(obj, dict):
        return []
    out = [t for k, v in obj.items() for t in _train_seconds(v, counted or k in TRAIN_SECONDS)]
    if not counted and "mean_train_seconds" in obj and "names" in obj:  # notebook 02's precision comparison
        out += [obj["mean_train_seconds"][obj["names"][1]]] * obj["n_runs"]
    return out


TRAIN_SECONDS = ("train_seconds", "monitor_train_seconds")


def training_from_nothing(metrics: dict, aside: str = "") -> tuple[str, str]:
    """A table row: how long the notebook's runs trained when they were trained (read back from the
    cache or not), summed and shared among the runs trained at once: the least an execution from
    nothing takes on that machine. ``aside``: what the metrics do not time."""
    seconds = _train_seconds(metrics)
    workers = (metrics.get("executor") or {}).get("workers", 1)
    hours = sum(seconds) / workers / 3600
    env = metrics["environment"]
    return ("Training from nothing", f"{f'{hours:.1f} h' if hours >= 2 else f'{hours * 60:.0f} min'}: "
                                     f"{len(seconds)} runs, {workers} at a time, on {env['cpu_count']} CPU cores "
                                     f"({env.get('cpu_model') or env['processor']}){aside}")  # fmt: skip


def results_table(metrics: dict) -> str:
    """A Markdown table of the baseline network's one run (notebook 01): headline numbers and verdicts."""
    test, claims, env, cfg, data = (metrics[k] for k in ("test", "claims", "environment", "config", "data"))
    # the pairs ranked 1 to 3 (equal counts share a rank, so there may be more than three)
    top = ", ".join(f"{r['pair']} ({r['count']})" for r in test["top_undirected_pairs"] if r["rank"] <= 3)
    gap = f"{claims['accuracy_difference'] * 100:+.2f} points; one run's s.e. {claims['binomial_se'] * 100:.2f}"
    ranks = " and ".join(str(r) for r in claims["claimed_pair_ranks"])
    claimed_pairs = " and ".join(f"{a}<->{b}" for a, b in claims["claimed_pairs"])
    reached = "yes" if claims["accuracy_reached"] else "no"
    holds = "yes" if claims["pairs_claim_holds"] else "no"
    rows = [
        ("Test accuracy", f"{test['accuracy']:.2%} ({test['n_errors']} errors in {test['n']:,})"),
        ("Test loss", f"{test['loss']:.4f}"),
        (f"Claimed {claims['claimed_accuracy']:.2%} reached?", f"{reached} ({gap})"),
        ("Most confused pairs (both directions)", top),
        (f"{claimed_pairs} the top {len(claims['claimed_pairs'])}?", f"{holds} (ranks {ranks})"),
        ("Trainable parameters", f"{metrics['parameters']:,}"),
        (
            "Training",
            f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, seed {cfg['seed']}; final model on "
            f"{data['n_train_final']:,} images (curves from a run on {data['n_train']:,} with "
            f"{data['n_val']:,} held out)",
        ),
        (
            "Training time (final model)",
            f"{metrics['train_seconds']:.0f} s on {env['cpu_count']} CPU cores "
            f"({env.get('cpu_model', env['processor'])})"
            f"{_threads(metrics)}, TensorFlow {env['packages']['tensorflow']}, Keras {env['packages']['keras']}",
        ),
    ]
    rows.append(training_from_nothing(metrics))
    if "font_digits" in metrics:  # digits typeset in fonts, through `predict`'s preprocessing
        fonts = metrics["font_digits"]
        rows.append((f"Typeset digits recognised ({len(fonts['by_font'])} fonts)",
                     f"{fonts['rate']:.0%} ({fonts['recognised']} of {fonts['n']})"))  # fmt: skip
    lines = ["| | baseline network, one run |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def study_table(metrics: dict) -> str:
    """A Markdown table of the multi-seed study's measurement and verdicts."""
    s, v, pairs, core, cal = (
        metrics[k] for k in ("accuracy_summary", "accuracy_verdict", "pairs", "hard_core", "calibration")
    )
    claimed = v["claimed_accuracy"]
    names = " and ".join(r for r in pairs["summed"]["pairs"])
    rows = [
        ("Runs", f"{s['n_runs']} seeds ({metrics['seeds'][0]}-{metrics['seeds'][-1]}), each trained on "
                 f"{metrics['data']['n_train']:,} images with {metrics['data']['n_val']:,} held out"),
        ("Test accuracy, mean +- std", f"{s['mean']:.2%} +- {s['std']:.2%} (range {s['min']:.2%} to {s['max']:.2%})"),
        (f"{s['level']:.0%} confidence interval of the mean", f"{s['ci_low']:.2%} to {s['ci_high']:.2%}"),
        (f"Claimed {claimed:.2%}", f"{v['position']} the interval; reached by {v['runs_reaching_claim']} of "
                                   f"{s['n_runs']} runs"),
        ("One run's binomial s.e. on the test set", f"{s['binomial_se_one_run']:.2%}"),
        (f"{names} the top {len(pairs['summed']['pairs'])}?", f"in {pairs['runs_holding']} of {pairs['n_runs']} runs; "
         f"summed over runs: {'yes' if pairs['summed']['holds'] else 'no'} (ranks "
         f"{' and '.join(str(r) for r in pairs['summed']['ranks'])})"),
        ("Test images every run gets wrong", f"{core['wrong_by_all']} (at least one run: {core['wrong_by_any']})"),
        ("Calibration (mean over runs)", f"ECE {cal['mean_ece_before']:.2%} -> {cal['mean_ece_after']:.2%} with "
                                         f"temperature {cal['mean_temperature']:.2f} fitted on validation"),
        training_from_nothing(metrics),
    ]  # fmt: skip
    lines = ["| | baseline configuration, many seeds |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def beyond_table(metrics: dict) -> str:
    """A Markdown table of the tuning study, the recipe chosen on validation, the final networks, their
    ensembles and McNemar's test."""
    sel, tuned, final, mc = (metrics["search"]["selected"], metrics["tuned"], metrics["final"], metrics["mcnemar"])
    s, choice, snap = final["summary"], metrics["candidates"]["choice"], metrics["snapshot"]
    trials = metrics["search"]["trials"]
    rows = [
        ("Search", f"{len(trials)} trials (KerasTuner random search, at most {metrics['search']['max_epochs']} "
                   f"epochs each with early stopping), scored on the validation split"),
        ("Selected", f"learning rate {sel['learning_rate']:.2e}, batch {sel['batch_size']}, dropout {sel['dropout']}, "
                     f"dense {sel['dense_units']}, {sel['epochs']} epochs (validation accuracy "
                     f"{trials[0]['val_accuracy']:.2%})"),
        ("Tuned baseline network, test", f"{tuned['test']['accuracy']:.2%} (one run, trained on the full "
                                         "training set)"),
        ("Recipe chosen on validation", f"{choice['candidate']} ({choice['mean']:.2%} mean validation accuracy; "
                                        f"{len(metrics['candidates']['rows'])} candidates); test-time augmentation "
                                        f"{'kept' if choice['tta'] else 'left out'}"),
        ("Final network, test", f"{s['mean']:.2%} +- {s['std']:.2%} over {s['n_runs']} seeds "
                                f"({final['config']['epochs']} epochs on all training images, {metrics['precision']})"),
        ("Ensemble of those runs", f"{final['ensemble']['accuracy']:.2%}"),
        ("Snapshot ensemble (one run)", f"{snap['ensemble_accuracy']:.2%} ({len(snap['snapshot_accuracies'])} "
                                        "snapshots)"),
        ("McNemar, baseline vs final network (seed 0)", f"{mc['a_only']} vs {mc['b_only']} images right for "
                                                        f"one only; exact p = {mc['p_value']:.2g}"),
        ("McNemar, the two ensembles", f"{metrics['mcnemar_ensembles']['a_only']} vs "
                                       f"{metrics['mcnemar_ensembles']['b_only']}; exact p = "
                                       f"{metrics['mcnemar_ensembles']['p_value']:.2g}"),
        ("Notebook time", f"{metrics['time']['seconds'] / 60:.0f} min ({metrics['time']['cached']} of "
                          f"{metrics['time']['runs']} runs from the cache)"),
        training_from_nothing(metrics, f"; and the search's {len(trials)} trials, which the metrics do not "
                                               "time"),
    ]  # fmt: skip
    lines = ["| | beyond the baseline |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


PARAMETERS_HEADER = """\
# Notebook parameters

Generated from each notebook's cell tagged `parameters` by `python -m mnist_report readme` (which
`make report` and `make bench` run); do not edit. Papermill reads each default, and the help from its
trailing comment. The defaults reproduce the committed report; to run a notebook with others, see
[Other parameters](../README.md#other-parameters).
"""


def parameters_reference(notebooks: Path = NOTEBOOKS) -> str:
    """For each notebook (``NN-name.ipynb``), a Markdown table of its parameters as papermill reads
    them from the `parameters` cell: name, default, and the help its trailing comment gives. Links
    are relative to ``notebooks``, where the page lives."""
    import papermill as pm  # here, not at the top: importing mnist_report stays light

    sections = []
    for path in sorted(Path(notebooks).glob("[0-9]*.ipynb")):
        lines = [f"## [`{path.stem}`]({path.name})", "", "| parameter | default | meaning |", "| --- | --- | --- |"]
        for name, p in pm.inspect_notebook(str(path)).items():
            lines.append(f"| `{name}` | `{_cell(p['default'])}` | {_cell(p['help'])} |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def parameters_page(notebooks: Path = NOTEBOOKS) -> str:
    """The whole of notebooks/README.md: a header saying how it is made, then each notebook's table."""
    return f"{PARAMETERS_HEADER}\n{parameters_reference(notebooks)}\n"


def blocks(reports: Path = PROJECT_ROOT / "reports", left: dict[str, str] | None = None) -> dict[str, str]:
    """Each generated block of the README, for the metrics files in ``reports`` that exist and follow
    their notebook's schema. A file made by older code (its notebook's regeneration owed) is not
    rendered: its block is left as it is, and ``left`` (if given) gets the block's name and why."""
    from mnist_report.bench import table as bench_table

    sources = {
        "results": (REPRODUCTION_METRICS, results_table),
        "study": (STUDY_METRICS, study_table),
        "beyond": (BEYOND_METRICS, beyond_table),
        "bench": (BENCH, bench_table),
    }
    out = {}
    for name, (file, render) in sources.items():
        if not (Path(reports) / file).is_file():
            continue
        try:
            out[name] = render(schema.load(Path(reports) / file))
        except schema.MetricsError as e:
            if left is None:
                raise
            left[name] = str(e)
    return out


def block_pattern(name: str) -> re.Pattern:
    start, end = markers(name)
    return re.compile(re.escape(start) + r"\n(.*?)\n?" + re.escape(end), re.S)


def update_readme(
    readme: Path = PROJECT_ROOT / "README.md", reports: Path = PROJECT_ROOT / "reports", notebooks: Path = NOTEBOOKS,
    print_fn=print,
) -> Path:
    """Rewrite every generated block of ``readme`` from the current files in ``reports``, and the
    parameter reference ``notebooks``/README.md from the notebooks there (where there are any).
    Both are made before either is written, and each is written atomically. A block whose metrics
    do not follow today's schema (made by older code: run `make report`) is left as it is, and said."""
    text = readme.read_text()
    left: dict[str, str] = {}
    for name, markdown in blocks(reports, left).items():
        pattern = block_pattern(name)
        if not pattern.search(text):
            raise ValueError(f"{readme} has no {name} block (the lines {' ... '.join(markers(name))})")
        start, end = markers(name)
        text = pattern.sub(lambda _, s=start, m=markdown, e=end: f"{s}\n{m}\n{e}", text)
    for name, why in left.items():
        print_fn(f"README {name} block left as it is: {why}; run `make report`")
    page = parameters_page(notebooks) if any(Path(notebooks).glob("[0-9]*.ipynb")) else None
    with atomic_path(readme) as tmp:
        tmp.write_text(text)
    if page is not None:
        with atomic_path(Path(notebooks) / PARAMETERS_PAGE) as tmp:
            tmp.write_text(page)
    return readme
