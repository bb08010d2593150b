"""The report's sentences, built from the statistics of small cases checked by hand."""

import numpy as np
import pytest

from mnist_report.analysis import compare, study, verdicts
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
    assert accuracy.startswith("Test accuracy 72.50% on 40 images (11 errors) does not reach the claimed 99.25%")
    assert "outside two standard errors" in accuracy
    pairs = verdicts.pairs_claim(claims)
    assert "holds for this run" in pairs and "4<->9 (6 errors, rank 1), 3<->8 (4 errors, rank 2)" in pairs

    y_true = np.array([2] * 5 + [7] * 995 + [4, 3])
    y_pred = np.array([7] * 5 + [7] * 995 + [9, 8])
    pairs = verdicts.pairs_claim(E.check_claims(E.evaluate(y_true, _proba(y_pred))))
    assert "does not hold" in pairs and "are 2<->7 (5)" in pairs


@pytest.mark.parametrize(
    ("accuracies", "position", "meaning", "reaching", "plausible"),
    [([0.9920, 0.9925, 0.9930], "inside", "consistent with the claim", 2, "plausible"),
     ([0.9900, 0.9905, 0.9910], "above", "mean accuracy is lower than claimed", 0, "plausible"),
     ([0.9950, 0.9955, 0.9960], "below", "mean accuracy is higher than claimed", 3, "not plausible")],
)  # fmt: skip
def test_seed_accuracy_places_the_claim(accuracies, position, meaning, reaching, plausible):
    s = study.accuracy_summary(accuracies, n_test=10000)
    text = verdicts.seed_accuracy(s, study.claim_position(s, 0.9925, accuracies))
    assert f"the claimed 99.25% is **{position}** it: " in text and meaning in text
    assert f"{reaching} of 3 runs reach 99.25%" in text
    assert f"a single run reporting 99.25% is {plausible}" in text


def test_pairs_across_seeds_names_the_runs_and_ranks():
    def cm(pairs):
        m = np.diag(np.full(10, 100))
        for (a, b), n in pairs.items():
            m[a, b] = n
        return m

    r = study.pairs_across_seeds([cm({(4, 9): 5, (3, 8): 6, (2, 7): 4}), cm({(4, 9): 5, (3, 8): 4, (2, 7): 4})])
    text = verdicts.pairs_across_seeds(r)
    assert "in 1 of 2 runs" in text and "4<->9: 2, 1; 3<->8: 1, 2" in text and "the claim holds (ranks 1 and 1)" in text


def test_calibration_sentence():
    rows = [{"temperature": 1.5, "ECE before": 0.02, "ECE after": 0.01, "NLL before": 0.05, "NLL after": 0.04},
            {"temperature": 1.3, "ECE before": 0.01, "ECE after": 0.012, "NLL before": 0.04, "NLL after": 0.035}]
    text = verdicts.calibration(study.calibration_summary(rows))
    assert "over-confident" in text and "1.40" in text and "1.50%" in text and "1.10%" in text
    assert "lower in 1 of 2 runs" in text and "above 1 in 2 of 2 runs" in text
    under = [{**r, "temperature": 0.7} for r in rows]
    assert "under-confident" in verdicts.calibration(study.calibration_summary(under))
    near = [{**r, "temperature": t} for r, t in zip(rows, (1.01, 0.99), strict=True)]
    assert "about calibrated" in verdicts.calibration(study.calibration_summary(near))


def test_paired_difference_sentences():
    base = [0.990, 0.991, 0.992, 0.993]
    r = study.paired_difference(base, [0.9905, 0.9914, 0.9926, 0.9935], ("float32", "bf16"))
    text = verdicts.paired_difference(r)
    assert text.startswith("Over the same 4 seeds, bf16 minus float32 test accuracy is +0.050 points")
    assert "bf16 **raises**" in text and "**within seed noise**" in text
    same = study.paired_difference(base, [a + 1e-4 * s for a, s in zip(base, (1, -1, 1, -1), strict=True)])
    assert "interval contains zero" in verdicts.paired_difference(same)
    wide = study.paired_difference(base, [a + 2e-3 * s for a, s in zip(base, (1, -1, 1, -1), strict=True)])
    assert "cannot be ruled out" in verdicts.paired_difference(wide)
    assert "cannot be judged" in verdicts.paired_difference(study.paired_difference(base, [a + 1e-3 for a in base]))


def test_mcnemar_sentence():
    y = np.zeros(100, dtype=int)
    a, b = y.copy(), y.copy()
    a[:3] = 1
    b[3:13] = 1
    a[13:15] = b[13:15] = 1
    text = verdicts.mcnemar(compare.mcnemar_test(y, a, b, ("A", "B")))
    assert text.startswith("On the same 100 test images, 10 are right for A only and 3 for B only (85 right for "
                           "both, 2 wrong for both)")  # fmt: skip
    assert text.endswith("no difference at the 5% level.")
    y = np.zeros(1000, dtype=int)
    a, b = y.copy(), y.copy()
    b[:60] = 1
    a[60:80] = 1
    assert verdicts.mcnemar(compare.mcnemar_test(y, a, b, ("A", "B"))).endswith("A is better at the 5% level.")


def test_goals_say_whether_each_is_met():
    s = study.accuracy_summary([0.9966, 0.9968, 0.9970], n_test=10000)
    text = verdicts.final_goals(s, 0.9974, 3)
    assert "99.68%" in text and "99.70% is **not met (the floor of 99.65% is met)**" in text
    assert "99.75% is **not met**" in text
    high = verdicts.final_goals(study.accuracy_summary([0.9971, 0.9973], 10000), 0.9976, 2)
    assert "99.70% is **met**" in high and "99.75% is **met**" in high
    low = verdicts.final_goals(study.accuracy_summary([0.9960, 0.9962], 10000), 0.9970, 2)
    assert "nor is the floor of 99.65%" in low


def test_the_recipe_choice_names_the_rule_the_winner_and_the_noise():
    rows = [{"candidate": "base", "seeds": [0, 1], "mean": 0.9950, "spread": 0.0010, "tta_mean": 0.9948},
            {"candidate": "EMA", "seeds": [0, 1], "mean": 0.9955, "spread": 0.0005, "tta_mean": 0.9960}]
    choice = {"candidate": "EMA", "mean": 0.9955, "tta": True, "tta_mean": 0.9960, "base": "base", "base_mean": 0.9950}
    text = verdicts.recipe_choice(choice, rows, 6000)
    assert "Chosen: **EMA**, at 99.55% on the 6,000 validation images (+0.05 points against base)" in text
    assert "raises its mean from 99.55% to 99.60%) is **kept**" in text
    assert "One validation image is 0.017 points" in text and "differ by up to 0.10 points" in text


def test_the_time_goal_is_judged_only_from_an_empty_cache():
    assert verdicts.notebook_time(3000, 10, 0).endswith("is **met**.")
    assert verdicts.notebook_time(4000, 10, 0).endswith("is **not met**.")
    assert "with runs read from the cache, so it is not judged here" in verdicts.notebook_time(100, 10, 3)
    assert "on a subset of the images" in verdicts.notebook_time(100, 10, 0, full_size=False)


def test_parameter_count_and_hard_core():
    assert verdicts.parameter_count(225_034, 225_034).endswith("which matches the stated 225,034")
    assert "does NOT match" in verdicts.parameter_count(1, 225_034)
    assert verdicts.hard_core(3, 10, 7, 9, 40) == ("3 test images are misclassified by all 10 runs and 7 by at "
                                                    "least 9; 40 by at least one.")  # fmt: skip


def test_label_noise_sentences():
    summary = study.accuracy_summary([0.9910, 0.9920], n_test=10000)
    clean = study.accuracy_summary([0.9918, 0.9926], n_test=9985)
    noise = {"listed": 15, "in_hard_core": 10, "wrong_by_all": 8, "n_standing": 9985,
             "accuracy_where_labels_stand": clean}
    text = verdicts.label_noise_across_seeds(noise, summary, n_core=25, min_runs=1)
    assert text.startswith("Of the 15 test images whose labels reviewers rejected, 10 are among the 25 images that at "
                           "least 1 of 2 runs get wrong, and 8 are wrong in every run.")  # fmt: skip
    assert "the mean accuracy over seeds is 99.22% +- 0.06%, against 99.15% on all of them" in text
    assert text.endswith("(a difference of +0.07 points).")
    assert "None of the" in verdicts.label_noise_across_seeds({**noise, "listed": 0}, summary, 25, 1)
    row = {"n": 9985, "accuracy": 0.9971, "n_errors": 29, "errors_on_listed_images": 12, "accuracy_all": 0.9959,
           "n_errors_all": 41}
    remaining = verdicts.label_noise_remaining({"listed": 15, "networks": {"ensemble": row}, "better_runs": 5,
                                                "better_mean_where_labels_stand": 0.9968})  # fmt: skip
    assert "ensemble: 12 of its 41 errors are on them, and it scores 99.71% on the 9,985 images" in remaining
    assert remaining.endswith("Over its 5 seeds the final network averages 99.68% on the images whose labels stand.")
