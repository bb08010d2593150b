"""The README's results table, written from the metrics JSON that `make report` produced."""

from __future__ import annotations

import re
from pathlib import Path

from mnist_report.io import atomic_path, read_json
from mnist_report.paths import PROJECT_ROOT

START = "<!-- results:start: written by `make report` from reports/*.metrics.json; do not edit -->"
END = "<!-- results:end -->"
SEED_METRICS = "01-seed-reproduction.metrics.json"


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


def update_readme(readme: Path = PROJECT_ROOT / "README.md", reports: Path = PROJECT_ROOT / "reports") -> Path:
    """Replace the block between the START and END markers of ``readme`` with the current table."""
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no results block (the lines {START!r} ... {END!r})")
    block = f"{START}\n{results_table(read_json(Path(reports) / SEED_METRICS))}\n{END}"
    with atomic_path(readme) as tmp:
        tmp.write_text(pattern.sub(lambda _: block, text))
    return readme
