"""Many runs of one configuration: the spread of test accuracy and its interval, the errors that
recur across seeds, and calibration (reliability, expected calibration error, temperature scaling).
Numbers only: the sentences are built in ``verdicts``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats
from sklearn.calibration import calibration_curve

from mnist_report.analysis.evaluate import (
    CLAIMED_ACCURACY,
    CLAIMED_PAIRS,
    binomial_se,
    cross_entropy,
    pairs_claim,
    ranked_pairs,
)


def accuracy_summary(accuracies: Sequence[float], n_test: int, level: float = 0.95) -> dict:
    """Mean, spread and a Student-t confidence interval of the mean, across runs.

    Also the binomial standard error of one run on ``n_test`` images (at the mean accuracy) and the
    t prediction interval for the accuracy of one further run.
    """
    a = np.asarray(accuracies, dtype=np.float64)
    if len(a) < 2:
        raise ValueError(f"an interval needs at least 2 runs; got {len(a)}")
    n = len(a)
    mean, std = float(a.mean()), float(a.std(ddof=1))
    t = float(stats.t.ppf(0.5 + level / 2, df=n - 1))
    half = t * std / math.sqrt(n)
    half_one = t * std * math.sqrt(1 + 1 / n)
    return {
        "n_runs": n,
        "mean": mean,
        "std": std,
        "min": float(a.min()),
        "max": float(a.max()),
        "level": level,
        "interval_method": f"Student t, {n - 1} degrees of freedom: mean +- t * std / sqrt(n)",
        "ci_low": mean - half,
        "ci_high": mean + half,
        "prediction_low": max(0.0, mean - half_one),  # an accuracy, so within [0, 1]
        "prediction_high": min(1.0, mean + half_one),
        "binomial_se_one_run": binomial_se(mean, n_test),
    }


def claim_position(summary: dict, claimed: float = CLAIMED_ACCURACY, accuracies=None) -> dict:
    """Where the claimed accuracy lies relative to the interval of the mean (inside, above or below),
    whether one run reaching it is plausible (inside the prediction interval of one run), and how many
    of ``accuracies`` reach it (the sentence is ``verdicts.seed_accuracy``)."""
    lo, hi = summary["ci_low"], summary["ci_high"]
    return {
        "claimed_accuracy": claimed,
        "position": "inside" if lo <= claimed <= hi else ("above" if claimed > hi else "below"),
        "one_run_plausible": bool(summary["prediction_low"] <= claimed <= summary["prediction_high"]),
        "runs_reaching_claim": None if accuracies is None else int(np.sum(np.asarray(accuracies) >= claimed)),
    }


def pairs_across_seeds(confusions: Sequence[np.ndarray], claimed_pairs=CLAIMED_PAIRS) -> dict:
    """How often the claimed pairs are the most common confusions, run by run and in the summed matrix."""
    per_run = [pairs_claim(ranked_pairs(np.asarray(cm), directed=False), claimed_pairs) for cm in confusions]
    summed = pairs_claim(ranked_pairs(np.sum(confusions, axis=0), directed=False), claimed_pairs)
    holds = sum(r["holds"] for r in per_run)
    return {"runs": per_run, "runs_holding": holds, "n_runs": len(per_run), "summed": summed}


def per_digit_error_rates(confusions: Sequence[np.ndarray]) -> np.ndarray:
    """(n_runs, 10): the share of each digit's test images that each run gets wrong."""
    cms = np.asarray(confusions, dtype=np.float64)
    support = cms.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, 1 - np.diagonal(cms, axis1=1, axis2=2) / support, np.nan)


def digit_rate_summary(rates: np.ndarray) -> dict:
    """Each digit's mean and standard deviation of the error rate over runs; ``None`` where a digit has
    no test image (a small test set), since JSON has no NaN."""
    rates = np.asarray(rates, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: the digit is absent
        mean, std = np.nanmean(rates, axis=0), np.nanstd(rates, axis=0, ddof=1)
    return {k: [None if np.isnan(x) else float(x) for x in v] for k, v in (("mean", mean), ("std", std))}


def wrong_counts(y_true: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """For each test image, in how many runs (rows of ``preds``) it is misclassified."""
    return (np.asarray(preds) != np.asarray(y_true)[None, :]).sum(axis=0)


def hard_core(y_true: np.ndarray, preds: np.ndarray, min_runs: int) -> list[dict]:
    """The images misclassified in at least ``min_runs`` runs: most often wrong first, then by index.

    For each: its index, true digit, how many runs got it wrong, and the most frequent wrong answer.
    """
    preds = np.asarray(preds)
    counts = wrong_counts(y_true, preds)
    chosen = np.flatnonzero(counts >= max(1, min_runs))
    chosen = chosen[np.lexsort((chosen, -counts[chosen]))]
    rows = []
    for i in chosen:
        wrong = preds[:, i][preds[:, i] != y_true[i]]
        rows.append(
            {
                "index": int(i),
                "true": int(y_true[i]),
                "wrong_runs": int(counts[i]),
                "usual_prediction": int(np.bincount(wrong, minlength=10).argmax()),
            }
        )
    return rows


# --- calibration -------------------------------------------------------------------------------


def reliability(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> dict:
    """Top-label reliability: in bins of confidence, the mean confidence against the accuracy.

    The bins are scikit-learn's ``calibration_curve`` (uniform on [0, 1]) applied to the event "the
    predicted class is right" and its predicted probability; empty bins are left out.
    """
    y_true = np.asarray(y_true)
    confidence = np.asarray(proba).max(axis=1)
    correct = (np.asarray(proba).argmax(axis=1) == y_true).astype(int)
    accuracy, mean_confidence = calibration_curve(correct, confidence, pos_label=1, n_bins=n_bins, strategy="uniform")
    # the same bin edges and assignment as calibration_curve, for the number of images per bin
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=n_bins)
    counts = counts[counts > 0]
    return {"accuracy": accuracy, "confidence": mean_confidence, "count": counts}


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the image-weighted mean gap between confidence and accuracy over the reliability bins."""
    r = reliability(y_true, proba, n_bins)
    return float(np.sum(r["count"] * np.abs(r["accuracy"] - r["confidence"])) / np.sum(r["count"]))


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Soften (T > 1) or sharpen (T < 1) probabilities: softmax(log p / T), i.e. logits divided by T."""
    logits = np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(y_true: np.ndarray, proba: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``proba`` on labelled data.

    Fitted on a validation split, never on the test set (Guo et al. 2017, "On Calibration of
    Modern Neural Networks"). A bounded scalar search over log T, T in [0.05, 20].
    """
    y_true = np.asarray(y_true)
    if len(y_true) == 0:
        raise ValueError("fitting a temperature needs a validation split (validation_fraction > 0)")

    def nll(log_t: float) -> float:  # the same clipped cross-entropy the report shows
        return cross_entropy(y_true, apply_temperature(proba, math.exp(log_t)))

    bounds = (math.log(0.05), math.log(20.0))
    result = optimize.minimize_scalar(nll, bounds=bounds, method="bounded")
    if min(abs(result.x - b) for b in bounds) < 1e-3:
        warnings.warn(
            f"the fitted temperature {math.exp(result.x):.3g} is at the edge of the search range", stacklevel=2
        )
    return float(math.exp(result.x))


def calibrate(runs, n_bins: int = 15) -> tuple[list[dict], dict, dict]:
    """Each run's temperature, fitted on its own held-out images (``y_val``, ``val_proba``), and the
    calibration of its test probabilities before and after: the rows (one per run), the reliability
    curves pooled over the runs, and their summary (``calibration_summary``)."""
    from mnist_report.analysis.evaluate import cross_entropy

    rows, scaled = [], []
    for r in runs:
        t = fit_temperature(r.y_val, r.val_proba)
        scaled.append(apply_temperature(r.test_proba, t))
        rows.append(
            {
                "seed": r.seed,
                "temperature": t,
                "ece_before": expected_calibration_error(r.y_test, r.test_proba, n_bins),
                "ece_after": expected_calibration_error(r.y_test, scaled[-1], n_bins),
                "nll_before": cross_entropy(r.y_test, r.test_proba),
                "nll_after": cross_entropy(r.y_test, scaled[-1]),
            }
        )
    y = np.concatenate([r.y_test for r in runs])
    curves = {
        "as trained": reliability(y, np.concatenate([r.test_proba for r in runs]), n_bins),
        "temperature-scaled": reliability(y, np.concatenate(scaled), n_bins),
    }
    return rows, curves, calibration_summary(rows)


def calibration_summary(rows: Sequence[dict]) -> dict:
    """Means over runs of per-run rows with temperature, ECE and NLL before and after scaling, and
    counts of the runs that moved each way (the sentence is ``verdicts.calibration``)."""
    keys = ("temperature", "ece_before", "ece_after", "nll_before", "nll_after")
    mean = {f"mean_{k}": float(np.mean([r[k] for r in rows])) for k in keys}
    return {
        "n_runs": len(rows),
        **mean,
        "about_calibrated": bool(abs(math.log(mean["mean_temperature"])) < 0.05),  # T within about 5% of 1
        "runs_temperature_above_one": sum(r["temperature"] > 1 for r in rows),
        "runs_ece_lower": sum(r["ece_after"] < r["ece_before"] for r in rows),
    }


def seed_list(n_seeds: int, first_seed: int = 0) -> list[int]:
    """The seeds ``first_seed .. first_seed + n_seeds - 1``, checked before any training."""
    for name, value in (("n_seeds", n_seeds), ("first_seed", first_seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
    if n_seeds < 2:
        raise ValueError(f"n_seeds must be an integer >= 2 (a spread needs two runs); got {n_seeds}")
    if not 0 <= first_seed <= 2**32 - n_seeds:
        raise ValueError(f"first_seed must be in [0, 2**32 - n_seeds]; got {first_seed}")
    return list(range(first_seed, first_seed + n_seeds))


def paired_difference(
    reference: Sequence[float], other: Sequence[float], names=("float32", "other"), level: float = 0.95
) -> dict:
    """Whether ``other`` changes test accuracy against ``reference``, run for run over the same seeds.

    The same seed gives both runs the same initial weights, validation split and batch order, so
    the runs are paired: a paired Student t interval of the mean difference (other - reference),
    beside the seed-to-seed standard deviation of ``reference``.
    """
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if a.shape != b.shape or len(a) < 2:
        raise ValueError(f"need two equal-length lists of at least 2 accuracies; got {len(a)} and {len(b)}")
    d = b - a
    out = {
        "names": list(names),
        "n_runs": len(a),
        "level": level,
        "mean_difference": float(d.mean()),
        "seed_std": float(a.std(ddof=1)),
    }
    if np.all(d == d[0]):  # no spread: a t interval cannot be formed
        return {**out, "ci_low": None, "ci_high": None, "p_value": None}
    res = stats.ttest_rel(b, a)
    ci = res.confidence_interval(confidence_level=level)
    low, high = float(ci.low), float(ci.high)
    return {
        **out,
        "ci_low": low,
        "ci_high": high,
        "p_value": float(res.pvalue),
    }
