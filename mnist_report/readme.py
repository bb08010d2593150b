"""The README's generated blocks: the results table from the seed notebook's metrics JSON
(`make report`) and the benchmark table from reports/bench.json (`make bench`)."""

from __future__ import annotations

import re
from pathlib import Path

from mnist_report.io import atomic_path, read_json
from mnist_report.paths import PROJECT_ROOT

SEED_METRICS = "01-seed-reproduction.metrics.json"
BENCH = "bench.json"


def markers(name: str) -> tuple[str, str]:
    """The comment lines that open and close a generated block of the README."""
    return f"<!-- {name}:start: generated from reports/; do not edit -->", f"<!-- {name}:end -->"


def results_table(metrics: dict) -> str:
    """A Markdown table of the seed reproduction's headline numbers and verdicts."""
    test, claims, env, cfg, data = (metrics[k] for k in ("test", "claims", "environment", "config", "data"))
    top = ", ".join(f"{r['pair']} ({r['count']})" for r in test["top_undirected_pairs"][:3])
    gap = f"{claims['accuracy_difference'] * 100:+.2f} points; one run's s.e. {claims['binomial_se'] * 100:.2f}"
    ranks = " and ".join(str(r) for r in claims["claimed_pair_ranks"])
    rows = [
        ("Test accuracy", f"{test['accuracy']:.2%} ({test['n_errors']} errors in {test['n']:,})"),
        ("Test loss", f"{test['loss']:.4f}"),
        ("Claimed 99.25% reached?", f"{'yes' if claims['accuracy_reached'] else 'no'} ({gap})"),
        ("Most confused pairs (both directions)", top),
        ("4<->9 and 3<->8 the top two?", f"{'yes' if claims['pairs_claim_holds'] else 'no'} (ranks {ranks})"),
        ("Trainable parameters", f"{metrics['parameters']:,}"),
        (
            "Training",
            f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, seed {cfg['seed']}; final model on "
            f"{data['n_train_final']:,} images (curves from a run on {data['n_train']:,} with "
            f"{data['n_val']:,} held out)",
        ),
        (
            "Training time (final model)",
            f"{metrics['train_seconds']:.0f} s on {env['cpu_count']} CPU cores ({env['processor']}), "
            f"TensorFlow {env['packages']['tensorflow']}, Keras {env['packages']['keras']}",
        ),
    ]
    lines = ["| | seed network, one run |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def blocks(reports: Path = PROJECT_ROOT / "reports") -> dict[str, str]:
    """Each generated block's Markdown, for the source files that exist."""
    from mnist_report.bench import table as bench_table

    sources = {"results": (SEED_METRICS, results_table), "bench": (BENCH, bench_table)}
    return {
        name: render(read_json(Path(reports) / file))
        for name, (file, render) in sources.items()
        if (Path(reports) / file).is_file()
    }


def block_pattern(name: str) -> re.Pattern:
    start, end = markers(name)
    return re.compile(re.escape(start) + r"\n(.*?)\n?" + re.escape(end), re.S)


def update_readme(readme: Path = PROJECT_ROOT / "README.md", reports: Path = PROJECT_ROOT / "reports") -> Path:
    """Rewrite every generated block of ``readme`` from the current files in ``reports``."""
    text = readme.read_text()
    for name, markdown in blocks(reports).items():
        pattern = block_pattern(name)
        if not pattern.search(text):
            raise ValueError(f"{readme} has no {name} block (the lines {' ... '.join(markers(name))})")
        start, end = markers(name)
        text = pattern.sub(lambda _, s=start, m=markdown, e=end: f"{s}\n{m}\n{e}", text)
    with atomic_path(readme) as tmp:
        tmp.write_text(text)
    return readme
