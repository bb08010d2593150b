"""The report's prose: every verdict sentence, built from the structures the statistics return.

``evaluate``, ``study`` and ``compare`` compute numbers and booleans only; this module turns them into
short sentences. A sentence states the finding; the tables beside it carry the numbers. A difference
the data cannot tell from noise is said to be "no evidence of a difference", never "no difference".
"""

from __future__ import annotations

from itertools import pairwise


def _pair_names(pairs) -> str:
    return " and ".join(f"{a}<->{b}" for a, b in pairs)


def _digits(x: float, ref: float | None) -> int:
    digits = 2
    while ref is not None and x != ref and f"{x:.{digits}%}" == f"{ref:.{digits}%}" and digits < 4:
        digits += 1
    return digits


def pct(x: float, ref: float | None = None) -> str:
    """``x`` in percent, two decimals, or more where two would print it as ``ref`` although it differs (a
    bound of 99.245% beside a claim of 99.25% reads 99.245%, not 99.25%)."""
    return f"{x:.{_digits(x, ref)}%}"


def span(low: float, high: float, ref: float, joiner: str = " to ") -> str:
    """An interval's two bounds as ``pct`` prints them beside ``ref``, both with the same decimals."""
    d = max(_digits(low, ref), _digits(high, ref))
    return f"{low:.{d}%}{joiner}{high:.{d}%}"


def images(n: float) -> str:
    """A count of images, or a mean count to one decimal ("1 image", "2.5 images")."""
    n = round(n, 1)
    return f"{n:g} image" + ("" if n == 1 else "s")


def _first_up(name) -> str:
    name = str(name)
    return name[:1].upper() + name[1:]


def _points(x: float) -> str:
    return f"{x * 100:+.2f} points"


def parameter_count(n_params: int, stated: int) -> str:
    """Whether the built network has the parameter count the experiment states."""
    verdict = "matches" if n_params == stated else "does NOT match"
    return f"trainable parameters: {n_params:,}, which {verdict} the stated {stated:,}"


def shortfall(accuracy: float, claimed: float, n: int, se: float) -> str:
    """One run's accuracy against the claim, with the test set's sampling noise (binomial) as the yardstick."""
    diff = accuracy - claimed
    n_images = abs(round(diff * n))
    if diff >= 0:
        return f"reaches the claimed {claimed:.2%} ({_points(diff)}, {images(n_images)})"
    noise = "within" if -diff <= 2 * se else "beyond"
    return (
        f"falls short of the claimed {claimed:.2%} by {-diff * 100:.2f} points ({images(n_images)}), "
        f"{noise} the test set's sampling noise (binomial s.e. {se * 100:.2f} points)"
    )


def accuracy_claim(claims: dict) -> str:
    """One run's accuracy against the claimed one (``evaluate.check_claims``)."""
    c = claims
    return (
        f"Test accuracy {c['accuracy']:.2%} ({c['n_errors']} errors in {c['n']:,}) "
        f"{shortfall(c['accuracy'], c['claimed_accuracy'], c['n'], c['binomial_se'])}. One run is one sample: "
        "notebook 02 measures the spread of single runs."
    )


def pairs_claim(claims: dict) -> str:
    """One run's most confused pairs against the claimed ones (``evaluate.check_claims``)."""
    c = claims
    ranks = " and ".join(str(r) for r in c["claimed_pair_ranks"])
    top = ", ".join(f"{r['pair']} ({r['count']})" for r in c["top_pairs"])
    return (
        f"{_pair_names(c['claimed_pairs'])} {'are' if c['pairs_claim_holds'] else 'are not'} the most common "
        f"confusions in this run (ranks {ranks}); the top pairs are {top}."
    )


def seed_accuracy(summary: dict, position: dict) -> str:
    """Many seeds' accuracy against the claim: single runs by their spread, the mean by its interval."""
    s, p = summary, position
    claimed = p["claimed_accuracy"]
    single = (
        f"**A single run:** {p['runs_reaching_claim']} of {s['n_runs']} runs reach {claimed:.2%}, and a "
        f"further run is expected between {span(s['prediction_low'], s['prediction_high'], claimed, ' and ')} "
        f"({s['level']:.0%} prediction interval), so one run reporting {claimed:.2%} is "
        f"{'plausible' if p['one_run_plausible'] else 'not plausible'}."
    )
    where = {
        "inside": "inside it: no evidence that the mean differs from the claim",
        "above": "above it: the configuration's mean is lower than the claim",
        "below": "below it: the configuration's mean is higher than the claim",
    }[p["position"]]
    mean = (
        f"**The mean:** {s['mean']:.2%} ({s['level']:.0%} confidence interval "
        f"{span(s['ci_low'], s['ci_high'], claimed)}); the claim is {where}."
    )
    return f"{single} {mean}"


def pairs_across_seeds(pairs: dict) -> str:
    """How often the claimed pairs lead, run by run and summed (``study.pairs_across_seeds``)."""
    summed = pairs["summed"]
    return (
        f"{' and '.join(summed['pairs'])} are the two most common confusions in {pairs['runs_holding'] or 'none'} of "
        f"{pairs['n_runs']} runs; summed over the runs they rank {' and '.join(map(str, summed['ranks']))}."
    )


def hard_core(wrong_by_all: int, n_runs: int, n_core: int, min_runs: int, wrong_by_any: int) -> str:
    """The test images that the runs get wrong together (``study.hard_core``, ``study.wrong_counts``)."""
    return (
        f"{wrong_by_all} test images are misclassified by all {n_runs} runs and {n_core} by at least "
        f"{min_runs}; {wrong_by_any} by at least one."
    )


def calibration(summary: dict) -> str:
    """Calibration before and after temperature scaling (``study.calibration_summary``)."""
    s = summary
    t = s["mean_temperature"]
    tendency = "about calibrated" if s["about_calibrated"] else "over-confident" if t > 1 else "under-confident"
    return (
        f"The network is {tendency} (mean temperature {t:.2f}); temperature scaling takes the expected "
        f"calibration error from {s['mean_ece_before']:.2%} to {s['mean_ece_after']:.2%} on average, lower in "
        f"{s['runs_ece_lower']} of {s['n_runs']} runs."
    )


def paired_difference(d: dict) -> str:
    """A change judged run for run over the same seeds (``study.paired_difference``)."""
    reference, other = d["names"]
    head = (
        f"{_first_up(other)} against {reference}: {_points(d['mean_difference'])} on average over {d['n_runs']} seeds"
    )
    if d["ci_low"] is None:
        return f"{head}, the same in every run (no interval can be formed)."
    low, high = d["ci_low"], d["ci_high"]
    if low > 0 or high < 0:
        finding = f"{other} {'raises' if low > 0 else 'lowers'} test accuracy"
    else:
        finding = "no evidence of a difference"
    return f"{head} ({d['level']:.0%} interval {_points(low)} to {_points(high)}, p = {d['p_value']:.2g}): {finding}."


def mcnemar(m: dict) -> str:
    """McNemar's test of two classifiers on the same images (``compare.mcnemar_test``)."""
    a, b = m["names"]
    better = a if m["a_only"] > m["b_only"] else b
    outcome = (
        f"{better} is better" if m["p_value"] < 0.05 and m["a_only"] != m["b_only"] else "no evidence of a difference"
    )
    return (
        f"{m['a_only']} images right for {a} only, {m['b_only']} for {b} only (exact p = {m['p_value']:.2g}): "
        f"{outcome} at the 5% level."
    )


def final_networks(summary: dict, ensemble_accuracy: float, n_runs: int) -> str:
    """The final network over its seeds, and the ensemble of those runs."""
    s = summary
    return (
        f"Final network: {s['mean']:.2%} +- {s['std']:.2%} over {n_runs} seeds ({s['level']:.0%} interval of "
        f"the mean {s['ci_low']:.2%} to {s['ci_high']:.2%}); the ensemble of the {n_runs} runs: "
        f"{ensemble_accuracy:.2%} (one ensemble, one number)."
    )


def ablation(rows: list[dict], noise: float) -> str:
    """What each part of the recipe is worth on validation, against the smallest difference of two
    variants' means the seeds can tell from noise (``recipe.difference_noise``)."""
    parts = [f"{r['variant']} {_points(r['difference'])}" for r in rows[1:]]
    clear = [r for r in rows[1:] if abs(r["difference"]) > noise]
    within = [r["variant"] for r in rows[1:] if abs(r["difference"]) <= noise]
    if not clear:
        tail = "None stands out from that noise: no evidence that any one part matters on its own."
    else:
        tail = "Beyond that noise: " + "; ".join(
            f"{r['variant']} ({'lower' if r['difference'] < 0 else 'higher'})" for r in clear
        )
        tail += f". Within it, no evidence that the part matters: {'; '.join(within)}." if within else "."
    return (
        f"Against the full recipe's mean validation accuracy ({rows[0]['mean']:.2%}): " + "; ".join(parts) + ". "
        f"With {len(rows[0]['seeds'])} seeds a variant, a difference of two means below {noise * 100:.2f} points "
        f"cannot be told from seed noise (95%). " + tail
    )


def tta_choice(mean: float, tta_mean: float, n_val: int) -> str:
    """Test-time augmentation, kept by the rule fixed in advance only where it raises the mean."""
    kept, gain = tta_mean > mean, abs(tta_mean - mean) * n_val  # a mean over seeds: a fraction of an image
    text = (
        f"Test-time augmentation {'raises' if kept else 'does not raise'} the full recipe's mean validation "
        f"accuracy ({pct(mean, tta_mean)} -> {pct(tta_mean, mean)}, {images(gain)} of {n_val:,} on average), "
        "so by the rule fixed in advance "
        f"it is {'kept' if kept else 'left out'} for the final networks."
    )
    return text + (" The rule asks for a gain, not for evidence of one." if kept else "")


def tuned_run(accuracy: float, n_errors: int, baseline: dict) -> str:
    """The one tuned run against the spread of single baseline runs (``study.accuracy_summary``)."""
    low, high = baseline["prediction_low"], baseline["prediction_high"]
    where = "above" if accuracy > high else "below" if accuracy < low else "inside"
    return (
        f"Tuned baseline network: {accuracy:.2%} ({n_errors} errors), one run. Single runs of the baseline "
        f"network fall between {span(low, high, accuracy, ' and ')} ({baseline['level']:.0%} prediction "
        f"interval from "
        f"{baseline['n_runs']} seeds, mean {baseline['mean']:.2%}); the tuned run lies {where} it"
        + (", so one run gives no evidence that tuning helps." if where == "inside" else ".")
    )


def snapshot_alternative(
    seed_ensemble: float, n_runs: int, snapshot_ensemble: float, n_snapshots: int, last_snapshot: float
) -> str:
    """The snapshot ensemble of one run against the ensemble of seeds, at their costs."""
    return (
        f"One run whose schedule restarts {n_snapshots - 1} times, its {n_snapshots} snapshots averaged: "
        f"{snapshot_ensemble:.2%} "
        f"(one run; its last snapshot alone {last_snapshot:.2%}), against {seed_ensemble:.2%} for the "
        f"ensemble of {n_runs} seeds at {n_runs} times the training (both without test-time augmentation)."
    )


def ensemble_sizes(curves: dict[str, list[float]]) -> str:
    """What ensembling buys each network (``compare.ensemble_curve``: the first k runs, in seed order)."""
    parts = [
        f"the {name} from {c[0]:.2%} (one run) to {c[-1]:.2%} ({len(c)} runs, {_points(c[-1] - c[0])})"
        for name, c in curves.items()
    ]
    return (
        "Ensembling the runs takes " + "; ".join(parts) + ". Each curve adds the runs in one order (by seed), "
        "and each point is one ensemble on the test set."
    )


def label_noise_across_seeds(noise: dict, summary: dict, n_core: int, min_runs: int) -> str:
    """The listed label errors among the runs' shared errors, and accuracy where labels stand (notebook 02)."""
    clean = noise["accuracy_where_labels_stand"]
    if not noise["listed"]:
        return "None of the images with rejected labels is among those evaluated here."
    return (
        f"{noise['in_hard_core']} of the {noise['listed']} images with rejected labels are among the {n_core} "
        f"that at least {min_runs} runs get wrong. Where labels stand, the mean accuracy is {clean['mean']:.2%} "
        f"({_points(clean['mean'] - summary['mean'])} against all images)."
    )


def label_noise_remaining(noise: dict) -> str:
    """Whether the networks' order changes once the images with rejected labels are left out (notebook 03)."""
    if not noise["listed"]:
        return "None of the images with rejected labels is among those evaluated here."
    n = next(iter(noise["networks"].values()))["n"]
    names, nets = noise["order_where_labels_stand"], noise["networks"]  # the accuracies: in the table beside it
    order = names[0] + "".join(
        (" = " if nets[a]["accuracy"] == nets[b]["accuracy"] else " > ") + b for a, b in pairwise(names)
    )
    change = "changes" if noise["ranking_changes"] else "stays the same"
    text = (
        f"On the {n:,} images whose labels stand, the order of the networks {change}: {order}. The final "
        f"network over its {noise['better_runs']} seeds scores {noise['better_mean_where_labels_stand']:.2%} there."
    )
    swaps = noise.get("swaps", [])
    if swaps:
        text += " " + " ".join(
            f"{_first_up(s['ahead_where_labels_stand'])} now leads {s['ahead_on_all']} by "
            f"{images(s['images_apart'])} (McNemar p = {s['p_value']:.2g}): "
            + ("evidence of a real difference." if s["p_value"] < 0.05 else "no evidence of a difference.")
            for s in swaps
        )
    return text
