"""Two classifiers on the same test images: McNemar's test, and an ensemble of several runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar


def mcnemar_test(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, names=("A", "B")) -> dict:
    """McNemar's test of whether A and B err at different rates on the same images.

    Only the discordant images count: ``a_only`` (A right, B wrong) and ``b_only`` (B right, A
    wrong). The exact (binomial) test, statsmodels' default, is used whatever their number.
    """
    y_true, pred_a, pred_b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    if not (y_true.shape == pred_a.shape == pred_b.shape) or y_true.ndim != 1:
        raise ValueError(f"labels and predictions must be 1-D and the same length; got "
                         f"{y_true.shape}, {pred_a.shape}, {pred_b.shape}")  # fmt: skip
    a_right, b_right = pred_a == y_true, pred_b == y_true
    table = np.array([[np.sum(a_right & b_right), np.sum(a_right & ~b_right)],
                      [np.sum(~a_right & b_right), np.sum(~a_right & ~b_right)]])  # fmt: skip
    result = mcnemar(table, exact=True)
    p = float(result.pvalue)
    a_only, b_only = int(table[0, 1]), int(table[1, 0])
    better = names[0] if a_only > b_only else names[1]
    text = (
        f"On the same {len(y_true):,} test images, {a_only} are right for {names[0]} only and {b_only} for "
        f"{names[1]} only ({int(table[0, 0]):,} right for both, {int(table[1, 1])} wrong for both). McNemar's "
        f"exact test: p = {p:.2g}; "
        + (f"{better} is better at the 5% level." if p < 0.05 and a_only != b_only
           else "no difference at the 5% level.")
    )  # fmt: skip
    return {"table": table.tolist(), "a_only": a_only, "b_only": b_only, "exact": True, "p_value": p,
            "statistic": float(result.statistic), "names": list(names), "text": text}  # fmt: skip


def ensemble(probas: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of several models' class probabilities on the same images."""
    stacked = np.asarray(probas, dtype=np.float64)
    if stacked.ndim != 3 or len(stacked) == 0:
        raise ValueError(f"expected a list of (N, classes) probability arrays; got shape {stacked.shape}")
    return stacked.mean(axis=0)


MEAN_GOAL = 0.9965  # the goal for the better network's mean over seeds
ENSEMBLE_GOAL = 0.9975  # and for the ensemble of its runs


RUN_SECONDS_GOAL = 600  # each run of the better network at most 10 minutes on the report's machine


def goals_text(summary: dict, ensemble_accuracy: float, n_runs: int, run_seconds=(), precision: str = "",
               mean_goal: float = MEAN_GOAL, ensemble_goal: float = ENSEMBLE_GOAL) -> str:  # fmt: skip
    """Whether the better network meets its goals (accuracy, ensemble, time per run), with the numbers."""
    mean_met = summary["mean"] >= mean_goal
    ens_met = ensemble_accuracy >= ensemble_goal
    timing = ""
    if len(run_seconds):
        slowest = max(run_seconds)
        timing = (f" The slowest run took {slowest / 60:.1f} minutes of training on this machine ({precision}); "
                  f"the limit of {RUN_SECONDS_GOAL / 60:.0f} minutes per run is "
                  f"**{'met' if slowest <= RUN_SECONDS_GOAL else 'not met'}**.")  # fmt: skip
    return (
        f"**Better network.** Over {n_runs} seeds: {summary['mean']:.2%} +- {summary['std']:.2%} (mean +- std; "
        f"{summary['level']:.0%} interval of the mean {summary['ci_low']:.2%} to {summary['ci_high']:.2%}). "
        f"The goal of a mean of at least {mean_goal:.2%} is **{'met' if mean_met else 'not met'}**. "
        f"The ensemble (mean of the {n_runs} runs' probabilities) scores {ensemble_accuracy:.2%}; the goal of "
        f"{ensemble_goal:.2%} is **{'met' if ens_met else 'not met'}**." + timing
    )
