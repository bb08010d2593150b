"""The report's sentences, built from the statistics of small cases checked by hand."""

import numpy as np
import pytest

from mnist_report.analysis import compare, label_errors, recipe, study, verdicts
from mnist_report.analysis import evaluate as E


def _proba(y_pred):
    p = np.full((len(y_pred), 10), 0.01)
    p[np.arange(len(y_pred)), y_pred] = 0.91
    return p


def test_one_run_claims():
    y_true = np.array([4] * 6 + [9] * 2 + [3] * 3 + [8] * 1 + [7] * 1 + [0] * 27)
    y_pred = np.array([9] * 4 + [4] * 2 + [4] * 2 + [8] * 3 + [3] * 1 + [1] * 1 + [0] * 27)
    claims = E.check_claims(E.evaluate(y_true, _proba(y_pred)))
    accuracy = verdicts.accuracy_claim(claims)
    # 29 of 40 right: 26.75 points (10.7 images) short; s.e. sqrt(0.725 * 0.275 / 40) = 7.06 points
    assert accuracy.startswith(
        "Test accuracy 72.50% (11 errors in 40) falls short of the claimed 99.25% by 26.75 "
        "points (11 images), beyond the test set's sampling noise (binomial s.e. 7.06 points)."
    )
    assert accuracy.endswith("One run is one sample: notebook 02 measures the spread of single runs.")
    assert verdicts.pairs_claim(claims) == (
        "4<->9 and 3<->8 are the most common confusions in this run (ranks 1 "
        "and 2); the top pairs are 4<->9 (6), 3<->8 (4)."
    )

    y_true = np.array([2] * 5 + [7] * 995 + [4, 3])
    y_pred = np.array([7] * 5 + [7] * 995 + [9, 8])
    # 2<->7 leads with 5; 3<->8 and 4<->9 tie at 1, sharing rank 2
    assert verdicts.pairs_claim(E.check_claims(E.evaluate(y_true, _proba(y_pred)))) == (
        "4<->9 and 3<->8 are not the most common confusions in this run (ranks 2 and 2); the top pairs are "
        "2<->7 (5), 3<->8 (1), 4<->9 (1)."
    )


@pytest.mark.parametrize(
    ("accuracy", "text"),
    [
        # 1 image short of 99.25% on 10,000; s.e. sqrt(0.9924 * 0.0076 / 1e4) = 0.087 points: inside two of them
        (
            0.9924,
            "falls short of the claimed 99.25% by 0.01 points (1 image), within the test set's sampling noise "
            "(binomial s.e. 0.09 points)",
        ),
        # 25 images short; s.e. sqrt(0.99 * 0.01 / 1e4) = 0.099 points: 0.25 is beyond two of them
        (
            0.9900,
            "falls short of the claimed 99.25% by 0.25 points (25 images), beyond the test set's sampling noise "
            "(binomial s.e. 0.10 points)",
        ),
        (0.9930, "reaches the claimed 99.25% (+0.05 points, 5 images)"),
        (0.9925, "reaches the claimed 99.25% (+0.00 points, 0 images)"),
    ],
)
def test_shortfall_measures_against_test_sampling_noise(accuracy, text):
    assert verdicts.shortfall(accuracy, 0.9925, 10_000, E.binomial_se(accuracy, 10_000)) == text


@pytest.mark.parametrize(
    ("accuracies", "where", "reaching", "plausible"),
    [
        ([0.9920, 0.9925, 0.9930], "inside it: no evidence that the mean differs from the claim", 2, "plausible"),
        ([0.9900, 0.9905, 0.9910], "above it: the configuration's mean is lower than the claim", 0, "plausible"),
        ([0.9950, 0.9955, 0.9960], "below it: the configuration's mean is higher than the claim", 3, "not plausible"),
    ],
)
def test_seed_accuracy_places_the_claim(accuracies, where, reaching, plausible):
    s = study.accuracy_summary(accuracies, n_test=10000)
    text = verdicts.seed_accuracy(s, study.claim_position(s, 0.9925, accuracies))
    assert text.startswith(
        f"**A single run:** {reaching} of 3 runs reach 99.25%, and a further run is expected "
        f"between {s['prediction_low']:.2%} and {s['prediction_high']:.2%} (95% prediction "
        f"interval), so one run reporting 99.25% is {plausible}."
    )
    assert f"**The mean:** {s['mean']:.2%} (95% confidence interval {s['ci_low']:.2%} to {s['ci_high']:.2%})" in text
    assert text.endswith(f"the claim is {where}.")


def test_seed_accuracy_by_hand():
    # mean 99.25%, std 0.05 points; t(0.975, 2) = 4.303: the mean's interval +- 0.124, one run's +- 0.248 points
    s = study.accuracy_summary([0.9920, 0.9925, 0.9930], n_test=10000)
    text = verdicts.seed_accuracy(s, study.claim_position(s, 0.9925, [0.9920, 0.9925, 0.9930]))
    assert "between 99.00% and 99.50%" in text and "interval 99.13% to 99.37%" in text


def test_pairs_across_seeds_names_the_runs_and_ranks():
    def cm(pairs):
        m = np.diag(np.full(10, 100))
        for (a, b), n in pairs.items():
            m[a, b] = n
        return m

    # run 1: 3<->8 6, 4<->9 5, 2<->7 4 (holds); run 2: 3<->8 ties 2<->7 at 4 (does not). Summed: 10, 10, 8
    r = study.pairs_across_seeds([cm({(4, 9): 5, (3, 8): 6, (2, 7): 4}), cm({(4, 9): 5, (3, 8): 4, (2, 7): 4})])
    assert verdicts.pairs_across_seeds(r) == (
        "4<->9 and 3<->8 are the two most common confusions in 1 of 2 runs; summed over the runs they rank 1 and 1."
    )


def test_calibration_sentence():
    rows = [
        {"temperature": 1.5, "ece_before": 0.02, "ece_after": 0.01, "nll_before": 0.05, "nll_after": 0.04},
        {"temperature": 1.3, "ece_before": 0.01, "ece_after": 0.012, "nll_before": 0.04, "nll_after": 0.035},
    ]
    assert verdicts.calibration(study.calibration_summary(rows)) == (
        "The network is over-confident (mean temperature 1.40); temperature scaling takes the expected calibration "
        "error from 1.50% to 1.10% on average, lower in 1 of 2 runs."
    )
    under = [{**r, "temperature": 0.7} for r in rows]
    assert "is under-confident (mean temperature 0.70)" in verdicts.calibration(study.calibration_summary(under))
    near = [{**r, "temperature": t} for r, t in zip(rows, (1.01, 0.99), strict=True)]
    assert "is about calibrated" in verdicts.calibration(study.calibration_summary(near))


def test_paired_difference_sentences():
    base = [0.990, 0.991, 0.992, 0.993]
    # differences 5, 4, 6, 5 (x 1e-4): mean 0.05 points, t(0.975, 3) * 0.0816e-4 * 1e4 / 2 = +- 0.013 points
    r = study.paired_difference(base, [0.9905, 0.9914, 0.9926, 0.9935], ("float32", "bf16"))
    assert verdicts.paired_difference(r) == (
        "Bf16 against float32: +0.05 points on average over 4 seeds (95% interval "
        "+0.04 points to +0.06 points, p = 0.0012): bf16 raises test accuracy."
    )
    lower = study.paired_difference(
        base, [a - 5e-4 - 1e-4 * s for a, s in zip(base, (1, -1, 1, -1), strict=True)], ("float32", "bf16")
    )
    assert verdicts.paired_difference(lower).endswith("): bf16 lowers test accuracy.")
    same = study.paired_difference(base, [a + 1e-4 * s for a, s in zip(base, (1, -1, 1, -1), strict=True)])
    assert same["ci_low"] < 0 < same["ci_high"]
    text = verdicts.paired_difference(same)
    assert text.endswith("(95% interval -0.02 points to +0.02 points, p = 1): no evidence of a difference.")
    assert "no difference" not in text.replace("no evidence of a difference", "")  # never "no difference"
    wide = study.paired_difference(base, [a + 2e-3 * s for a, s in zip(base, (1, -1, 1, -1), strict=True)])
    assert verdicts.paired_difference(wide).endswith(": no evidence of a difference.")
    constant = verdicts.paired_difference(study.paired_difference(base, [a + 1e-3 for a in base], ("a", "b")))
    assert constant == (
        "B against a: +0.10 points on average over 4 seeds, the same in every run (no interval can be formed)."
    )


def test_mcnemar_sentence():
    y = np.zeros(100, dtype=int)
    a, b = y.copy(), y.copy()
    a[:3] = 1
    b[3:13] = 1
    a[13:15] = b[13:15] = 1
    # 10 against 3 discordant images: exact p = P(binomial(13, 1/2) <= 3) * 2 = 0.092
    assert verdicts.mcnemar(compare.mcnemar_test(y, a, b, ("A", "B"))) == (
        "10 images right for A only, 3 for B only (exact p = 0.092): no evidence of a difference at the 5% level."
    )
    y = np.zeros(1000, dtype=int)
    a, b = y.copy(), y.copy()
    b[:60] = 1
    a[60:80] = 1
    assert verdicts.mcnemar(compare.mcnemar_test(y, a, b, ("A", "B"))).endswith(": A is better at the 5% level.")
    assert verdicts.mcnemar(compare.mcnemar_test(y, b, a, ("A", "B"))).endswith(": B is better at the 5% level.")
    tie = verdicts.mcnemar(compare.mcnemar_test(y[:4], np.array([1, 0, 0, 0]), np.array([0, 1, 0, 0]), ("A", "B")))
    assert tie == "1 images right for A only, 1 for B only (exact p = 1): no evidence of a difference at the 5% level."


def test_final_networks():
    s = study.accuracy_summary([0.9966, 0.9968, 0.9970], n_test=10000)
    # std 0.02 points; t(0.975, 2) = 4.303: the mean 99.68% +- 0.0497 points
    assert verdicts.final_networks(s, 0.9974, 3) == (
        "Final network: 99.68% +- 0.02% over 3 seeds (95% interval of the mean 99.63% to 99.73%); the ensemble of "
        "the 3 runs: 99.74% (one ensemble, one number)."
    )


def _row(variant, mean, spread):
    return {"variant": variant, "mean": mean, "spread": spread}


def test_ablation_weighs_each_part_against_the_noise_of_a_difference_of_means():
    rows = [
        {**_row("full recipe", 0.9950, 0.0010), "seeds": [0, 1]},
        {**_row("without augmentation", 0.9900, 0.0004), "seeds": [0, 1]},
        {**_row("without weight average", 0.9948, 0.0006), "seeds": [0, 1]},
    ]
    for r in rows:
        r["difference"] = r["mean"] - rows[0]["mean"]
    assert verdicts.ablation(rows, 0.0012) == (
        "Against the full recipe's mean validation accuracy (99.50%): without augmentation -0.50 points; without "
        "weight average -0.02 points. With 2 seeds a variant, a difference of two means below 0.12 points cannot be "
        "told from seed noise (95%). Beyond that noise: without augmentation (lower). Within it, no evidence that the "
        "part matters: without weight average."
    )
    assert verdicts.ablation(rows, 0.0060).endswith(
        "None stands out from that noise: no evidence that any one part matters on its own."
    )


def test_the_noise_of_a_difference_of_means_is_worked_by_hand():
    # two variants, two seeds each: variances 0.5e-6 and 2e-6 (spreads of 0.1 and 0.2 points), pooled 1.25e-6
    # over 2 degrees of freedom; t(0.975, 2) = 4.303; 4.303 x sqrt(1.25e-6 x 2 / 2) = 0.4811 points
    rows = [{"val_accuracy": [0.995, 0.996]}, {"val_accuracy": [0.990, 0.992]}]
    assert recipe.difference_noise(rows) == pytest.approx(4.302653 * np.sqrt(1.25e-6), rel=1e-5)


def test_ablation_reads_the_variant_table():
    """The table ``recipe.variant_table`` makes is what ``verdicts.ablation`` reads."""
    from pathlib import Path

    from mnist_report.config import TrainConfig
    from mnist_report.runs.store import Run

    y = np.arange(10)

    def run(seed, wrong):
        pred = y.copy()
        pred[:wrong] = (pred[:wrong] + 1) % 10
        return Run(
            config=TrainConfig(architecture="better", seed=seed),
            key=str(seed),
            path=Path("."),
            history={},
            epoch_seconds=[1.0],
            trained_on={},
            arrays={"y_val": y, "val_proba": _proba(pred)},
        )

    rows = recipe.variant_table({"full recipe": [run(0, 0), run(1, 1)], "without augmentation": [run(0, 5), run(1, 5)]})
    text = verdicts.ablation(rows, recipe.difference_noise(rows))  # means 95% and 50%
    assert text.startswith(
        "Against the full recipe's mean validation accuracy (95.00%): without augmentation -45.00 points."
    )
    assert text.endswith("Beyond that noise: without augmentation (lower).")


def test_tta_is_kept_only_if_it_raises_the_mean_and_its_size_is_said():
    assert verdicts.tta_choice(0.9950, 0.9960, 6000) == (
        "Test-time augmentation raises the full recipe's mean validation accuracy (99.50% -> 99.60%, 6 images "
        "of 6,000 on average), so by the rule fixed in advance it is kept for the final networks. The rule asks for a "
        "gain, not for evidence of one."
    )
    assert verdicts.tta_choice(0.9950, 0.9950, 6000).endswith("it is left out for the final networks.")
    assert "does not raise" in verdicts.tta_choice(0.9950, 0.9940, 6000)
    # half an image on average, over two seeds: a gain, said as one, not rounded to "0 images"
    assert "(99.50% -> 99.51%, 0.5 images of 6,000 on average)" in verdicts.tta_choice(0.9950, 0.99508333, 6000)


def test_the_tuned_run_is_judged_by_the_spread_of_single_baseline_runs():
    summary = {"prediction_low": 0.9905, "prediction_high": 0.9935, "level": 0.95, "n_runs": 5, "mean": 0.992}
    assert verdicts.tuned_run(0.9930, 70, summary) == (
        "Tuned baseline network: 99.30% (70 errors), one run. Single runs of the baseline network fall between "
        "99.05% and 99.35% (95% prediction interval from 5 seeds, mean 99.20%); the tuned run lies inside it, "
        "so one run gives no evidence that tuning helps."
    )
    assert verdicts.tuned_run(0.9940, 60, summary).endswith("the tuned run lies above it.")
    assert verdicts.tuned_run(0.9900, 100, summary).endswith("the tuned run lies below it.")
    # a bound that rounds to the run's own figure is printed with the digits that tell them apart
    close = verdicts.tuned_run(0.9935, 65, {**summary, "prediction_high": 0.99346})
    assert "and 99.346% (95% prediction interval" in close and close.endswith("lies above it.")


def test_snapshot_alternative():
    assert verdicts.snapshot_alternative(0.9972, 5, 0.9968, 4, 0.9961) == (
        "One run whose schedule restarts 3 times, its 4 snapshots averaged: 99.68% (one run; its last snapshot alone "
        "99.61%), against 99.72% for the ensemble of 5 seeds at 5 times the training (both without test-time "
        "augmentation)."
    )


def test_parameter_count_and_hard_core():
    assert verdicts.parameter_count(225_034, 225_034) == (
        "trainable parameters: 225,034, which matches the stated 225,034"
    )
    assert "does NOT match" in verdicts.parameter_count(1, 225_034)
    assert verdicts.hard_core(3, 10, 7, 9, 40) == (
        "3 test images are misclassified by all 10 runs and 7 by at least 9; 40 by at least one."
    )


def test_label_noise_across_seeds():
    summary = study.accuracy_summary([0.9910, 0.9920], n_test=10000)
    clean = study.accuracy_summary([0.9918, 0.9926], n_test=9985)
    noise = {
        "listed": 15,
        "in_hard_core": 10,
        "wrong_by_all": 8,
        "n_standing": 9985,
        "accuracy_where_labels_stand": clean,
    }
    assert verdicts.label_noise_across_seeds(noise, summary, n_core=25, min_runs=1) == (
        "10 of the 15 images with rejected labels are among the 25 that at least 1 runs get wrong. Where labels "
        "stand, the mean accuracy is 99.22% (+0.07 points against all images)."
    )
    assert verdicts.label_noise_across_seeds({**noise, "listed": 0}, summary, 25, 1).startswith("None of the")


def _listed(indices, given):
    given = np.array(given)
    return label_errors.LabelErrors(
        indices=np.array(indices),
        given=given,
        proposed=(given + 1) % 10,
        votes=[[0, 5]] * len(indices),
        source="a test",
    )


def test_label_noise_remaining_says_whether_the_order_changes():
    y = np.arange(100) % 10
    errors = _listed([0, 1, 2], y[[0, 1, 2]])
    a, b = y.copy(), y.copy()
    a[[0, 1, 2]] = 9  # a: 3 errors, all on listed images
    b[[51, 52]] = 0  # b: 2 errors, where labels stand
    changed = label_errors.by_network(y, {"a": a, "b": b}, errors, runs=[a, b])
    assert verdicts.label_noise_remaining(changed) == (
        "On the 97 images whose labels stand, the order of the networks changes: a > b. The final network "
        f"over its 2 seeds scores {np.mean([1.0, 1 - 2 / 97]):.2%} there. A now leads b by 2 images (McNemar p = "
        "0.5): no evidence of a difference."
    )
    kept = label_errors.by_network(y, {"b": b, "a": y}, errors, runs=[b])
    assert "the order of the networks stays the same: a > b." in verdicts.label_noise_remaining(kept)
    tied = label_errors.by_network(y, {"a": y, "b": y.copy()}, errors, runs=[y])  # a tie is no change
    assert not tied["ranking_changes"] and "stays the same: a = b." in verdicts.label_noise_remaining(tied)
    assert verdicts.label_noise_remaining({**kept, "listed": 0}).startswith("None of the images with rejected labels")


def test_a_bound_next_to_the_claim_gets_the_digits_that_tell_them_apart():
    assert verdicts.pct(0.99245, 0.9925) == "99.245%" and verdicts.pct(0.99249, 0.9925) == "99.249%"
    assert verdicts.pct(0.9915, 0.9925) == "99.15%" and verdicts.pct(0.9925, 0.9925) == "99.25%"
    assert verdicts.pct(0.99245) == "99.25%"  # with nothing to tell it from
    assert verdicts.span(0.9915, 0.99245, 0.9925) == "99.150% to 99.245%"  # both bounds with the same decimals
    assert (
        verdicts.images(1) == "1 image"
        and verdicts.images(2.04) == "2 images"
        and verdicts.images(0.25) == "0.2 images"
    )
    summary = {"n_runs": 10, "mean": 0.9920, "level": 0.95, "ci_low": 0.99155, "ci_high": 0.99245}
    summary |= {"prediction_low": 0.9905, "prediction_high": 0.9935}
    position = {"claimed_accuracy": 0.9925, "runs_reaching_claim": 3, "one_run_plausible": True, "position": "above"}
    assert "confidence interval 99.155% to 99.245%); the claim is above it" in verdicts.seed_accuracy(summary, position)


def test_ensemble_sizes_says_what_the_ensemble_adds_to_each_network():
    text = verdicts.ensemble_sizes({"better network": [0.9968, 0.9965], "baseline network": [0.9909, 0.9935]})
    assert text.startswith(
        "Ensembling the runs takes the better network from 99.68% (one run) to 99.65% (2 runs, -0.03 points); "
        "the baseline network from 99.09% (one run) to 99.35% (2 runs, +0.26 points)."
    )
