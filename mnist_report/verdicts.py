"""The report's prose: every verdict sentence, built from the structures the statistics return.

``evaluate``, ``study`` and ``compare`` compute numbers and booleans only; this module turns them
into the sentences the notebooks show and the metrics keep. The goals the report judges the better
network against live here too. Rewording a sentence changes no number, and no cached run (this
module is outside the run cache's key).
"""

from __future__ import annotations

MEAN_GOAL = 0.9970  # the final network's mean test accuracy over seeds, at least
MEAN_FLOOR = 0.9965  # ... and never below this
ENSEMBLE_GOAL = 0.9975  # the ensemble of its runs, at least
NOTEBOOK_SECONDS_GOAL = 3600  # notebook 03 from an empty cache, on the report's 2-core machine


def _pair_names(pairs) -> str:
    return " and ".join(f"{a}<->{b}" for a, b in pairs)


def parameter_count(n_params: int, stated: int) -> str:
    """Whether the built network has the parameter count the experiment states."""
    verdict = "matches" if n_params == stated else "does NOT match"
    return f"trainable parameters: {n_params:,}, which {verdict} the stated {stated:,}"


def accuracy_claim(claims: dict) -> str:
    """One run's accuracy against the claimed one (``evaluate.check_claims``)."""
    c = claims
    diff = c["accuracy_difference"]
    return (
        f"Test accuracy {c['accuracy']:.2%} on {c['n']:,} images ({c['n_errors']} errors) "
        f"{'reaches' if c['accuracy_reached'] else 'does not reach'} the claimed {c['claimed_accuracy']:.2%} "
        f"(difference {diff * 100:+.2f} points, {diff * c['n']:+.0f} images). "
        f"The binomial standard error of one run on {c['n']:,} images is {c['binomial_se'] * 100:.2f} points, so "
        f"the difference is {'within' if c['within_two_se'] else 'outside'} two standard errors."
    )


def pairs_claim(claims: dict) -> str:
    """One run's most confused pairs against the claimed ones (``evaluate.check_claims``)."""
    c = claims
    rows = zip(c["claimed_pairs"], c["claimed_pair_counts"], c["claimed_pair_ranks"], strict=True)
    claimed = ", ".join(f"{a}<->{b} ({count} errors, rank {rank})" for (a, b), count, rank in rows)
    top = ", ".join(f"{r['pair']} ({r['count']})" for r in c["top_pairs"])
    return (
        f"The claim that the most common confusions are {_pair_names(c['claimed_pairs'])} "
        f"{'holds' if c['pairs_claim_holds'] else 'does not hold'} for this run: claimed pairs {claimed}; "
        f"the pairs ranked 1 to {len(c['claimed_pairs'])} (both directions combined; equal counts share a rank) "
        f"are {top}."
    )


def seed_accuracy(summary: dict, position: dict) -> str:
    """Many seeds' accuracy against the claim (``study.accuracy_summary``, ``study.claim_position``)."""
    s, p = summary, position
    claimed = p["claimed_accuracy"]
    meaning = {
        "inside": "the measurements are consistent with the claim as a mean",
        "above": "on this test set, this configuration's mean accuracy is lower than claimed",
        "below": "on this test set, this configuration's mean accuracy is higher than claimed",
    }[p["position"]]
    text = (
        f"Over {s['n_runs']} seeds the test accuracy is {s['mean']:.2%} +- {s['std']:.2%} "
        f"(mean +- standard deviation; range {s['min']:.2%} to {s['max']:.2%}). The "
        f"{s['level']:.0%} confidence interval of the mean is {s['ci_low']:.2%} to {s['ci_high']:.2%}; the claimed "
        f"{claimed:.2%} is **{p['position']}** it: {meaning}."
    )
    if p["runs_reaching_claim"] is not None:
        text += f" {p['runs_reaching_claim']} of {s['n_runs']} runs reach {claimed:.2%}."
    return text + (
        f" One further run lands, with {s['level']:.0%} probability, between "
        f"{s['prediction_low']:.2%} and {s['prediction_high']:.2%}, so a single run reporting "
        f"{claimed:.2%} is {'plausible' if p['one_run_plausible'] else 'not plausible'} for this configuration. "
        f"These intervals describe training noise on this one test set; the binomial standard error of a "
        f"single run's accuracy, from the sample of test images, is {s['binomial_se_one_run']:.2%}, "
        f"against a seed-to-seed standard deviation of {s['std']:.2%}."
    )


def pairs_across_seeds(pairs: dict) -> str:
    """How often the claimed pairs lead, run by run and summed (``study.pairs_across_seeds``)."""
    runs, summed = pairs["runs"], pairs["summed"]
    ranks = "; ".join(f"{name}: " + ", ".join(str(r["ranks"][j]) for r in runs)
                      for j, name in enumerate(summed["pairs"]))  # fmt: skip
    return (
        f"{' and '.join(summed['pairs'])} are the {len(summed['pairs'])} most common confusions (each strictly "
        f"above every other pair) in {pairs['runs_holding']} of {pairs['n_runs']} runs. Their ranks run by run: "
        f"{ranks}. In the confusion matrix summed over all runs the claim "
        f"{'holds' if summed['holds'] else 'does not hold'} (ranks {' and '.join(str(r) for r in summed['ranks'])})."
    )


NOT_COMPARED = "not compared on this machine (compare_precision is None, or this CPU has no native bfloat16)."


def hard_core(wrong_by_all: int, n_runs: int, n_core: int, min_runs: int, wrong_by_any: int) -> str:
    """The test images that the runs get wrong together (``study.hard_core``, ``study.wrong_counts``)."""
    return (f"{wrong_by_all} test images are misclassified by all {n_runs} runs and {n_core} by at least "
            f"{min_runs}; {wrong_by_any} by at least one.")  # fmt: skip


def calibration(summary: dict) -> str:
    """Calibration before and after temperature scaling (``study.calibration_summary``)."""
    s = summary
    t = s["mean_temperature"]
    if s["about_calibrated"]:
        tendency = "about calibrated"
    elif t > 1:
        tendency = "over-confident (T > 1 softens its probabilities)"
    else:
        tendency = "under-confident (T < 1 sharpens its probabilities)"
    n = s["n_runs"]
    return (
        f"Averaged over {n} runs the network is {tendency}: mean fitted temperature {t:.2f}, above 1 "
        f"in {s['runs_temperature_above_one']} of {n} runs. Expected calibration error on the test set "
        f"{s['mean_ece_before']:.2%} as trained, {s['mean_ece_after']:.2%} after temperature scaling (lower in "
        f"{s['runs_ece_lower']} of {n} runs); test negative log-likelihood {s['mean_nll_before']:.4f} -> "
        f"{s['mean_nll_after']:.4f}."
    )


def paired_difference(d: dict) -> str:
    """A change judged run for run over the same seeds (``study.paired_difference``)."""
    reference, other = d["names"]
    head = (f"Over the same {d['n_runs']} seeds, {other} minus {reference} test accuracy is "
            f"{d['mean_difference'] * 100:+.3f} points")  # fmt: skip
    if d["ci_low"] is None:
        return (f"{head} in every run; with no spread in the differences no interval can be formed, so this cannot "
                f"be judged.")  # fmt: skip
    low, high, margin = d["ci_low"], d["ci_high"], d["seed_std"]
    if high < 0:
        direction = f"{other} **lowers** test accuracy (the whole interval is below zero)"
    elif low > 0:
        direction = f"{other} **raises** test accuracy (the whole interval is above zero)"
    else:
        direction = "no change is detected (the interval contains zero)"
    bound = f"+-{margin * 100:.3f} points, the seed-to-seed standard deviation of {reference}"
    if d["within_noise"]:
        noise = f"the whole interval lies within {bound}: any change is **within seed noise**"
    else:
        noise = f"the interval reaches beyond {bound}: a change **as large as seed noise cannot be ruled out**"
    return (f"{head} on average ({d['level']:.0%} paired t interval {low * 100:+.3f} to {high * 100:+.3f}; "
            f"p = {d['p_value']:.2g}); {direction}, and {noise}.")  # fmt: skip


def mcnemar(m: dict) -> str:
    """McNemar's test of two classifiers on the same images (``compare.mcnemar_test``)."""
    (both_right, _), (_, both_wrong) = m["table"]
    a, b = m["names"]
    n = sum(map(sum, m["table"]))
    better = a if m["a_only"] > m["b_only"] else b
    outcome = (f"{better} is better at the 5% level." if m["p_value"] < 0.05 and m["a_only"] != m["b_only"]
               else "no difference at the 5% level.")  # fmt: skip
    return (
        f"On the same {n:,} test images, {m['a_only']} are right for {a} only and {m['b_only']} for {b} only "
        f"({both_right:,} right for both, {both_wrong} wrong for both). McNemar's exact test: "
        f"p = {m['p_value']:.2g}; {outcome}"
    )


def final_goals(summary: dict, ensemble_accuracy: float, n_runs: int, mean_goal: float = MEAN_GOAL,
                mean_floor: float = MEAN_FLOOR, ensemble_goal: float = ENSEMBLE_GOAL) -> str:  # fmt: skip
    """Whether the final network and its ensemble meet their goals, with the numbers."""
    s = summary
    mean = s["mean"]
    single = "met" if mean >= mean_goal else (f"not met (the floor of {mean_floor:.2%} is met)" if mean >= mean_floor
                                               else f"not met, nor is the floor of {mean_floor:.2%}")  # fmt: skip
    return (
        f"**Final network.** Over {n_runs} seeds: {mean:.2%} +- {s['std']:.2%} (mean +- std; "
        f"{s['level']:.0%} interval of the mean {s['ci_low']:.2%} to {s['ci_high']:.2%}). "
        f"The goal of a mean of at least {mean_goal:.2%} is **{single}**. "
        f"The ensemble (mean of the {n_runs} runs' probabilities) scores {ensemble_accuracy:.2%}; the goal of "
        f"{ensemble_goal:.2%} is **{'met' if ensemble_accuracy >= ensemble_goal else 'not met'}**."
    )


def recipe_choice(choice: dict, rows: list[dict], n_val: int) -> str:
    """The recipe chosen on validation, the rule that chose it, and how large the differences were against the noise."""
    spread = max(r["spread"] for r in rows)
    n_seeds = len(rows[0]["seeds"])
    chosen = (f"**{choice['candidate']}**, the base recipe itself" if choice["candidate"] == choice["base"]
              else f"**{choice['candidate']}**")  # fmt: skip
    gain = (choice["mean"] - choice["base_mean"]) * 100
    tta = (f"Test-time augmentation ({'raises' if choice['tta'] else 'does not raise'} its mean from "
           f"{choice['mean']:.2%} to {choice['tta_mean']:.2%}) is **{'kept' if choice['tta'] else 'left out'}**.")
    return (
        f"The rule, fixed before any run: the candidate with the highest mean validation accuracy over its "
        f"{n_seeds} seeds, and test-time augmentation only if it raises that mean. Chosen: {chosen}, at "
        f"{choice['mean']:.2%} on the {n_val:,} validation images ({gain:+.2f} points against "
        f"{choice['base']!s}). {tta} One validation image is {100 / n_val:.3f} points, and the seeds of one "
        f"candidate differ by up to {spread * 100:.2f} points, so differences of that size between candidates "
        "can be chance: the ranking is evidence, not proof."
    )


def snapshot_alternative(seed_ensemble: float, n_runs: int, snapshot_ensemble: float, n_snapshots: int,
                         last_snapshot: float) -> str:  # fmt: skip
    """The snapshot ensemble of one run against the ensemble of seeds, at their costs."""
    diff = (snapshot_ensemble - seed_ensemble) * 100
    return (
        f"**The cheap alternative.** One run whose cosine learning-rate schedule runs {n_snapshots} times, the "
        f"network at the end of each averaged: {snapshot_ensemble:.2%} (its last snapshot alone: "
        f"{last_snapshot:.2%}), for the training time of one run. The ensemble of {n_runs} seeds, {n_runs} runs' "
        f"training, both as trained (without test-time augmentation): {seed_ensemble:.2%} ({diff:+.2f} points for "
        "the snapshots)."
    )


def notebook_time(seconds: float, n_runs: int, n_cached: int, full_size: bool = True,
                  goal: float = NOTEBOOK_SECONDS_GOAL) -> str:  # fmt: skip
    """The notebook's own execution time, and whether it can be held to the goal: only at full size
    (all the images) and from an empty cache."""
    took = (f"This execution took {seconds / 60:.1f} minutes for its {n_runs} runs, {n_cached} of them read from "
            "the cache.")  # fmt: skip
    if not full_size or n_cached:
        why = "on a subset of the images" if not full_size else "with runs read from the cache"
        return (f"{took} The goal of {goal / 60:.0f} minutes is for the full-size notebook from an empty cache; "
                f"this execution ran {why}, so it is not judged here.")  # fmt: skip
    verdict = "met" if seconds <= goal else "not met"
    return f"{took} The goal of {goal / 60:.0f} minutes from an empty cache is **{verdict}**."


def label_noise_across_seeds(noise: dict, summary: dict, n_core: int, min_runs: int) -> str:
    """The listed label errors among the runs' shared errors, and accuracy where labels stand (notebook 02)."""
    clean = noise["accuracy_where_labels_stand"]
    n_runs = summary["n_runs"]
    if not noise["listed"]:
        return (f"None of the test images whose labels reviewers rejected is among the {noise['n_standing']:,} "
                "evaluated here.")  # fmt: skip
    return (
        f"Of the {noise['listed']} test images whose labels reviewers rejected, {noise['in_hard_core']} are among "
        f"the {n_core} images that at least {min_runs} of {n_runs} runs get wrong, and {noise['wrong_by_all']} "
        f"are wrong in every run. On the {noise['n_standing']:,} images whose labels stand, the mean accuracy over "
        f"seeds is {clean['mean']:.2%} +- {clean['std']:.2%}, against {summary['mean']:.2%} on all of them (a "
        f"difference of {(clean['mean'] - summary['mean']) * 100:+.2f} points)."
    )


def label_noise_remaining(noise: dict) -> str:
    """How many of the remaining errors are on listed images, and accuracy where labels stand (notebook 03)."""
    rows = noise["networks"]
    if not noise["listed"]:
        return "None of the test images whose labels reviewers rejected is among the images evaluated here."
    parts = [f"{name}: {r['errors_on_listed_images']} of its {r['n_errors_all']} errors are on them, and it "
             f"scores {r['accuracy']:.2%} on the {r['n']:,} images whose labels stand ({r['accuracy_all']:.2%} on all)"
             for name, r in rows.items()]  # fmt: skip
    return (
        f"{noise['listed']} test images have labels that reviewers rejected; there the network may be right and the "
        f"label wrong. " + "; ".join(parts) + f". Over its {noise['better_runs']} seeds the final network averages "
        f"{noise['better_mean_where_labels_stand']:.2%} on the images whose labels stand."
    )
