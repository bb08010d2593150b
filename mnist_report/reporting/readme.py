"""The generated parts of the documentation: in README.md, the results tables from the notebooks'
metrics JSON (`make report`); and notebooks/README.md, the parameter reference, generated whole from the
notebooks' `parameters` cells."""

from __future__ import annotations

import re
from pathlib import Path

from mnist_report.analysis import verdicts
from mnist_report.io import atomic_path
from mnist_report.paths import PROJECT_ROOT
from mnist_report.reporting import metrics
from mnist_report.reporting.metrics import Kind

REPRODUCTION_METRICS = "01-seed-reproduction.metrics.json"
STUDY_METRICS = "02-multi-seed-study.metrics.json"
BEYOND_METRICS = "03-beyond-the-seed.metrics.json"
NOTEBOOKS = PROJECT_ROOT / "notebooks"
PARAMETERS_PAGE = "README.md"  # in the notebooks' directory, so GitHub shows it when browsing notebooks/


def markers(name: str) -> tuple[str, str]:
    """The comment lines that open and close a generated block of the README."""
    return f"<!-- {name}:start: generated from reports/; do not edit -->", f"<!-- {name}:end -->"


def training_time(name: str, data: dict) -> tuple[str, str]:
    """A table row: the training time of every run a notebook's metrics record (the numbers its
    declaration marks as timings), summed, and the processors that trained them."""
    seconds = [v for _, (path, v) in metrics.numbers(data).items() if metrics.kind(name, list(path)) is Kind.TIMING]
    hours = sum(seconds) / 3600
    cpus = data["trained_on"] if isinstance(data["trained_on"], list) else [data["trained_on"]["cpu"]]
    took = f"{hours:.1f} h" if hours >= 2 else f"{hours * 60:.0f} min"
    return "Training", f"{took} of single-run training in all, on {', '.join(cpus)}"


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    return "\n".join([f"| | {title} |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)])


def results_table(m: dict) -> str:
    """The baseline network's one run (notebook 01): headline numbers and verdicts."""
    test, claims, cfg = m["test"], m["claims"], m["final_config"]
    top = ", ".join(f"{r['pair']} ({r['count']})" for r in test["top_undirected_pairs"] if r["rank"] <= 3)
    ranks = " and ".join(str(r) for r in claims["claimed_pair_ranks"])
    claimed_pairs = " and ".join(f"{a}<->{b}" for a, b in claims["claimed_pairs"])
    return _table(
        "baseline network, one run",
        [
            ("Test accuracy", f"{test['accuracy']:.2%} ({test['n_errors']} errors in {test['n']:,}); one run"),
            (
                f"Claimed {claims['claimed_accuracy']:.2%}",
                verdicts.shortfall(claims["accuracy"], claims["claimed_accuracy"], claims["n"], claims["binomial_se"]),
            ),
            ("Most confused pairs (both directions)", top),
            (
                f"{claimed_pairs} the top {len(claims['claimed_pairs'])}?",
                f"{'yes' if claims['pairs_claim_holds'] else 'no'} (ranks {ranks})",
            ),
            (
                "Setup",
                f"{m['parameters']:,} parameters; {cfg['epochs']} epochs, batch {cfg['batch_size']}, seed "
                f"{cfg['seed']}, on all {m['data']['n_train_final']:,} training images, {cfg['precision']}",
            ),
            (
                "Typeset digits recognised",
                f"{m['font_digits']['rate']:.0%} ({m['font_digits']['recognised']} of "
                f"{m['font_digits']['n']}, {len(m['font_digits']['by_font'])} fonts)",
            ),
            training_time("01-seed-reproduction", m),
        ],
    )


def study_table(m: dict) -> str:
    """The claimed setup over many seeds (notebook 02): single runs by their spread, the mean by its interval."""
    s, v, pairs, core, cal, held = (
        m[k] for k in ("accuracy_summary", "accuracy_verdict", "pairs", "hard_core", "calibration", "holding_out")
    )
    claimed = v["claimed_accuracy"]
    return _table(
        "the claimed setup, many seeds",
        [
            (
                "Runs",
                f"{s['n_runs']} seeds ({m['seeds'][0]}-{m['seeds'][-1]}), each on all {m['data']['n_train']:,} "
                "training images",
            ),
            (
                "Test accuracy, mean +- std",
                f"{s['mean']:.2%} +- {s['std']:.2%} (range {s['min']:.2%} to {s['max']:.2%})",
            ),
            (
                f"A single run reaching {claimed:.2%}",
                f"{v['runs_reaching_claim']} of {s['n_runs']} runs; one more run: "
                f"{verdicts.span(s['prediction_low'], s['prediction_high'], claimed)} "
                f"({'plausible' if v['one_run_plausible'] else 'not plausible'})",
            ),
            (
                "The mean",
                f"{s['level']:.0%} interval {verdicts.span(s['ci_low'], s['ci_high'], claimed)}: "
                f"the claim is {v['position']} it",
            ),
            (
                f"{' and '.join(pairs['summed']['pairs'])} the top 2?",
                f"in {pairs['runs_holding'] or 'none'} of {pairs['n_runs']} runs; summed: ranks "
                f"{' and '.join(map(str, pairs['summed']['ranks']))}",
            ),
            ("Test images every run gets wrong", f"{core['wrong_by_all']} (at least one run: {core['wrong_by_any']})"),
            (
                f"Holding out {m['data']['n_held_out']:,} images",
                f"{held['mean_difference'] * 100:+.2f} points "
                f"({verdicts.paired_difference(held).rpartition(': ')[2].rstrip('.')})",
            ),
            (
                "Calibration (held-out runs)",
                f"ECE {cal['mean_ece_before']:.2%} -> {cal['mean_ece_after']:.2%} with "
                f"temperature {cal['mean_temperature']:.2f} (means; lower in {cal['runs_ece_lower']} of "
                f"{cal['n_runs']} runs)",
            ),
            training_time("02-multi-seed-study", m),
        ],
    )


def beyond_table(m: dict) -> str:
    """Tuning, the ablation, the final networks and their tests (notebook 03), null results stated."""
    s, final, ab = m["final"]["summary"], m["final"], m["ablation"]
    tuned, base = m["tuned"]["test"]["accuracy"], m["baseline"]["accuracies"]
    low, high = m["tuned"]["baseline_prediction"]
    where = "above" if tuned > high else "below"
    tuned_where = "no evidence that tuning helps" if low <= tuned <= high else f"{where} it"
    mc, earlier, ens = m["mcnemar"], m["mcnemar_earlier_better"][0], m["mcnemar_ensembles"]
    noise = m["label_errors"]
    return _table(
        "beyond the baseline",
        [
            (
                "Tuned baseline network",
                f"{tuned:.2%}, one run; single baseline runs {low:.2%} to {high:.2%} (prediction interval, "
                f"{len(base)} seeds): {tuned_where}",
            ),
            (
                f"Ablation (validation, {len(ab['rows'][0]['seeds'])} seeds each)",
                "; ".join(f"{r['variant']} {r['difference'] * 100:+.2f} points" for r in ab["rows"][1:])
                + f" (a difference below {ab['noise'] * 100:.2f} points cannot be told from seed noise). "
                + ab["text"].partition("seed noise (95%). ")[2],
            ),
            (
                "Final network",
                f"{s['mean']:.2%} +- {s['std']:.2%} over {s['n_runs']} seeds (interval of the mean "
                f"{s['ci_low']:.2%} to {s['ci_high']:.2%})",
            ),
            (f"Ensemble of those {s['n_runs']} runs", f"{final['ensemble']['accuracy']:.2%} (one ensemble)"),
            ("Snapshot ensemble", f"{m['snapshot']['ensemble_accuracy']:.2%} (one run)"),
            (
                "Final vs baseline network, seed 0",
                f"{mc['b_only']} vs {mc['a_only']} images right for one only, p = {mc['p_value']:.2g}",
            ),
            (
                "Final vs earlier better network, seed 0",
                f"{earlier['b_only']} vs {earlier['a_only']}, p = "
                f"{earlier['p_value']:.2g}: {earlier['text'].rpartition(': ')[2].removesuffix('.')}",
            ),
            (
                "Final vs baseline ensemble",
                f"{ens['b_only']} vs {ens['a_only']} images right for one only, p = {ens['p_value']:.2g}",
            ),
            ("Order on the images whose labels stand", _order(noise)),
            (
                "Test set used before",
                "; ".join(d["decided"].split(":")[0] for d in m["decisions"] if d["test_set_in_earlier_versions"])
                + ": scored on it in earlier versions of this report",
            ),
            (
                "Published, for comparison",
                "[Deotte](https://www.kaggle.com/code/cdeotte/25-million-images-0-99757-mnist): about 99.64% for "
                "one network of this family, 99.745% on average for 15 ensembled; [An et al. 2020](https://arxiv.org/"
                "abs/2008.10400): up to 99.91%, epochs chosen on the test set; [keras-io](https://keras.io/examples/"
                "vision/mnist_convnet/): about 99% with a 34,826-parameter network",
            ),
            training_time("03-beyond-the-seed", m),
        ],
    )


def _order(noise: dict) -> str:
    if not noise["ranking_changes"]:
        return "unchanged"
    significant = any(s["p_value"] < 0.05 for s in noise["swaps"])
    return "changes" + ("" if significant else " (no swap beyond noise: McNemar p >= 0.05)")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


PARAMETERS_HEADER = """\
# Notebook parameters

Generated from each notebook's cell tagged `parameters` by `python -m mnist_report readme` (which
`make report` runs); do not edit. Papermill reads each default, and the help from its
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
    sources = {
        "results": (REPRODUCTION_METRICS, results_table),
        "study": (STUDY_METRICS, study_table),
        "beyond": (BEYOND_METRICS, beyond_table),
    }
    out = {}
    for name, (file, render) in sources.items():
        if not (Path(reports) / file).is_file():
            continue
        try:
            out[name] = render(metrics.load(Path(reports) / file))
        except (metrics.MetricsError, KeyError, TypeError) as e:
            if left is None:
                raise
            left[name] = str(e)
    return out


def block_pattern(name: str) -> re.Pattern:
    start, end = markers(name)
    return re.compile(re.escape(start) + r"\n(.*?)\n?" + re.escape(end), re.S)


def replace_block(text: str, name: str, markdown: str, readme: Path) -> str:
    """``text`` (the README's) with its generated block ``name`` holding ``markdown``."""
    pattern = block_pattern(name)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {name} block (the lines {' ... '.join(markers(name))})")
    start, end = markers(name)
    return pattern.sub(lambda _: f"{start}\n{markdown}\n{end}", text)


def update_readme(
    readme: Path = PROJECT_ROOT / "README.md",
    reports: Path = PROJECT_ROOT / "reports",
    notebooks: Path = NOTEBOOKS,
    print_fn=print,
) -> Path:
    """Rewrite every generated block of ``readme`` from the current files in ``reports``, and the
    parameter reference ``notebooks``/README.md from the notebooks there (where there are any).
    Both are made before either is written, and each is written atomically. A block whose metrics
    do not follow today's schema (made by older code: run `make report`) is left as it is, and said."""
    text = readme.read_text()
    left: dict[str, str] = {}
    for name, markdown in blocks(reports, left).items():
        text = replace_block(text, name, markdown, readme)
    for name, why in left.items():
        print_fn(f"README {name} block left as it is: {why}; run `make report`")
    page = parameters_page(notebooks) if any(Path(notebooks).glob("[0-9]*.ipynb")) else None
    with atomic_path(readme) as tmp:
        tmp.write_text(text)
    if page is not None:
        with atomic_path(Path(notebooks) / PARAMETERS_PAGE) as tmp:
            tmp.write_text(page)
    return readme
