"""The multi-seed statistics and calibration, on numbers small enough to check by hand."""

import math

import numpy as np
import pytest

from mnist_report.analysis import study

T_975_DF3 = 3.182446305284263  # Student t, 97.5th percentile, 3 degrees of freedom (from tables)


def test_accuracy_summary_matches_a_hand_computed_t_interval():
    acc = [0.990, 0.992, 0.991, 0.993]
    s = study.accuracy_summary(acc, n_test=10000)
    mean = sum(acc) / 4
    std = math.sqrt(sum((a - mean) ** 2 for a in acc) / 3)
    half = T_975_DF3 * std / 2
    assert s["n_runs"] == 4 and s["mean"] == pytest.approx(mean) and s["std"] == pytest.approx(std)
    assert (s["min"], s["max"]) == (0.990, 0.993)
    assert s["ci_low"] == pytest.approx(mean - half) and s["ci_high"] == pytest.approx(mean + half)
    assert s["prediction_high"] - s["mean"] == pytest.approx(T_975_DF3 * std * math.sqrt(1.25))
    assert s["binomial_se_one_run"] == pytest.approx(math.sqrt(mean * (1 - mean) / 10000))


def test_an_interval_needs_two_runs():
    with pytest.raises(ValueError, match="at least 2 runs"):
        study.accuracy_summary([0.99], n_test=10000)


# one further run: mean +- t(0.975, 2) * 0.0005 * sqrt(1 + 1/3) = mean +- 0.00248, by hand
@pytest.mark.parametrize(
    ("accuracies", "position", "plausible"),
    [
        ([0.9920, 0.9925, 0.9930], "inside", True),  # 0.99002 .. 0.99498
        ([0.9900, 0.9905, 0.9910], "above", True),  # 0.98802 .. 0.99298: above the mean's interval, not one run's
        ([0.9950, 0.9955, 0.9960], "below", False),
    ],  # 0.99302 .. 0.99798
)
def test_the_claim_is_placed_against_the_interval(accuracies, position, plausible):
    s = study.accuracy_summary(accuracies, n_test=10000)
    v = study.claim_position(s, 0.9925, accuracies)
    assert v["position"] == position
    assert (s["prediction_low"], s["prediction_high"]) == pytest.approx(
        (s["mean"] - 0.002484, s["mean"] + 0.002484), abs=2e-6
    )
    assert v["one_run_plausible"] is plausible
    assert v["runs_reaching_claim"] == sum(a >= 0.9925 for a in accuracies)


def confusion(pairs: dict) -> np.ndarray:
    cm = np.diag(np.full(10, 100))
    for (a, b), n in pairs.items():
        cm[a, b] = n
    return cm


def test_pairs_across_seeds_counts_the_runs_where_the_claim_holds():
    holds = confusion({(4, 9): 5, (9, 4): 3, (3, 8): 6, (2, 7): 4})
    tie = confusion({(4, 9): 5, (3, 8): 4, (2, 7): 4})  # 3<->8 ties 2<->7: not enough
    r = study.pairs_across_seeds([holds, tie])
    assert [run["holds"] for run in r["runs"]] == [True, False]
    assert r["runs_holding"] == 1 and r["n_runs"] == 2
    assert r["runs"][1]["ranks"] == [1, 2]  # a tie shares the rank
    assert r["summed"]["holds"] is True  # 4<->9: 13, 3<->8: 10, 2<->7: 8


def test_per_digit_error_rates():
    cm = confusion({(4, 9): 25})
    rates = study.per_digit_error_rates([cm, np.diag(np.full(10, 100))])
    assert rates.shape == (2, 10)
    assert rates[0, 4] == pytest.approx(0.2) and rates[0, 3] == 0 and rates[1].sum() == 0


def test_hard_core_lists_the_images_most_runs_get_wrong():
    y = np.array([0, 1, 2, 3])
    preds = np.array([[0, 7, 5, 3], [0, 7, 2, 8], [0, 4, 5, 3]])
    assert study.wrong_counts(y, preds).tolist() == [0, 3, 2, 1]
    rows = study.hard_core(y, preds, min_runs=2)
    assert [(r["index"], r["wrong_runs"], r["usual_prediction"]) for r in rows] == [(1, 3, 7), (2, 2, 5)]
    assert study.hard_core(y, preds, min_runs=3)[0]["true"] == 1


def one_hot_confidence(labels, predicted, confidence):
    """Probabilities that put ``confidence`` on ``predicted`` and spread the rest evenly."""
    p = np.full((len(labels), 10), (1 - confidence) / 9)
    p[np.arange(len(labels)), predicted] = confidence
    return p


def test_ece_is_zero_when_confidence_equals_accuracy_and_the_gap_otherwise():
    y = np.zeros(10, dtype=int)
    predicted = np.array([0] * 8 + [1] * 2)  # 80% right
    assert study.expected_calibration_error(y, one_hot_confidence(y, predicted, 0.8)) == pytest.approx(0, abs=1e-12)
    # all at 99% confidence, 80% right: a gap of 0.19
    assert study.expected_calibration_error(y, one_hot_confidence(y, predicted, 0.99)) == pytest.approx(0.19)
    r = study.reliability(y, one_hot_confidence(y, predicted, 0.99))
    assert r["count"].sum() == 10 and r["accuracy"].tolist() == [0.8]


def test_ece_weights_bins_by_their_images():
    y = np.zeros(4, dtype=int)
    proba = np.vstack([one_hot_confidence(y[:2], [0, 0], 0.5), one_hot_confidence(y[2:], [0, 1], 0.95)])
    # bin around 0.5: confidence 0.5, accuracy 1 -> gap 0.5; bin around 0.95: accuracy 0.5 -> gap 0.45
    assert study.expected_calibration_error(y, proba, n_bins=10) == pytest.approx((2 * 0.5 + 2 * 0.45) / 4)


def test_temperature_scaling_recovers_a_known_temperature_and_keeps_the_predictions():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(20000, 10))
    true_t = 2.0
    calibrated = np.exp(logits / true_t)
    calibrated /= calibrated.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(10, p=p) for p in calibrated])
    overconfident = np.exp(logits - logits.max(axis=1, keepdims=True))
    overconfident /= overconfident.sum(axis=1, keepdims=True)
    t = study.fit_temperature(y, overconfident)
    assert t == pytest.approx(true_t, rel=0.05)
    scaled = study.apply_temperature(overconfident, t)
    np.testing.assert_allclose(scaled, calibrated, atol=0.02)
    assert (scaled.argmax(1) == overconfident.argmax(1)).all()
    np.testing.assert_allclose(study.apply_temperature(overconfident, 1.0), overconfident, atol=1e-9)
    assert study.expected_calibration_error(y, scaled) < study.expected_calibration_error(y, overconfident)


def test_a_temperature_needs_validation_images():
    with pytest.raises(ValueError, match="validation_fraction > 0"):
        study.fit_temperature(np.zeros(0, dtype=int), np.zeros((0, 10)))


CALIBRATION_ROWS = [
    {"temperature": 1.5, "ece_before": 0.02, "ece_after": 0.01, "nll_before": 0.05, "nll_after": 0.04},
    {"temperature": 1.3, "ece_before": 0.01, "ece_after": 0.012, "nll_before": 0.04, "nll_after": 0.035},
]


def test_calibration_summary_means_and_counts():
    s = study.calibration_summary(CALIBRATION_ROWS)
    assert s["n_runs"] == 2 and s["mean_temperature"] == pytest.approx(1.4)
    assert (s["mean_ece_before"], s["mean_ece_after"]) == pytest.approx((0.015, 0.011))
    assert (s["mean_nll_before"], s["mean_nll_after"]) == pytest.approx((0.045, 0.0375))
    assert (s["runs_temperature_above_one"], s["runs_ece_lower"], s["about_calibrated"]) == (2, 1, False)
    near = [{**r, "temperature": t} for r, t in zip(CALIBRATION_ROWS, (1.01, 0.99), strict=True)]
    assert study.calibration_summary(near)["about_calibrated"] is True
    assert study.calibration_summary([{**r, "temperature": 0.8} for r in CALIBRATION_ROWS])["about_calibrated"] is False


def test_calibration_summary_of_real_rows():
    """The rows a notebook builds from a run: its fitted temperature, ECE and NLL before and after scaling."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(5000, 10))
    calibrated = np.exp(logits / 2)  # the labels drawn at temperature 2: the probabilities at 1 are over-confident
    calibrated /= calibrated.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(10, p=p) for p in calibrated])
    proba = np.exp(logits - logits.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    t = study.fit_temperature(y, proba)
    scaled = study.apply_temperature(proba, t)
    row = {
        "temperature": t,
        "ece_before": study.expected_calibration_error(y, proba),
        "ece_after": study.expected_calibration_error(y, scaled),
        "nll_before": study.cross_entropy(y, proba),
        "nll_after": study.cross_entropy(y, scaled),
    }
    s = study.calibration_summary([row, row])
    assert s["mean_temperature"] > 1 and s["runs_temperature_above_one"] == 2 and s["runs_ece_lower"] == 2
    assert s["mean_nll_after"] < s["mean_nll_before"] and s["mean_ece_after"] < s["mean_ece_before"]


def test_a_temperature_at_the_edge_of_its_range_is_flagged():
    y = np.zeros(50, dtype=int)
    proba = one_hot_confidence(y, np.ones(50, dtype=int), 0.99)  # always wrong, and sure: T wants -> infinity
    with pytest.warns(UserWarning, match="edge of the search range"):
        assert study.fit_temperature(y, proba) == pytest.approx(20, rel=0.01)


@pytest.mark.parametrize(
    ("n_seeds", "first_seed", "message"),
    [
        (1, 0, "n_seeds must be an integer >= 2"),
        (2.5, 0, "n_seeds must be an integer"),
        (True, 0, "n_seeds must be an integer"),
        (3, -1, "first_seed must be in"),
        (2, 2**32 - 1, "first_seed"),
    ],
)
def test_seed_list_refuses_bad_values(n_seeds, first_seed, message):
    with pytest.raises(ValueError, match=message):
        study.seed_list(n_seeds, first_seed)


def test_seed_list():
    assert study.seed_list(3, 5) == [5, 6, 7]


def test_paired_difference_against_a_hand_computed_paired_t_interval():
    base = [0.990, 0.991, 0.992, 0.993]
    other = [0.9905, 0.9914, 0.9926, 0.9935]  # differences 5, 4, 6, 5 (x 1e-4)
    r = study.paired_difference(base, other, ("float32", "bf16"))
    d = np.array([5, 4, 6, 5]) * 1e-4
    half = T_975_DF3 * d.std(ddof=1) / 2
    assert r["mean_difference"] == pytest.approx(d.mean())
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert r["names"] == ["float32", "bf16"] and r["n_runs"] == 4
    assert r["seed_std"] == pytest.approx(np.std(base, ddof=1))
    same = study.paired_difference(base, [a + 1e-4 * s for a, s in zip(base, (1, -1, 1, -1), strict=True)])
    assert same["ci_low"] < 0 < same["ci_high"]
    constant = study.paired_difference(base, [a + 1e-3 for a in base])
    assert constant["ci_low"] is None and constant["p_value"] is None
    with pytest.raises(ValueError, match="equal-length"):
        study.paired_difference(base, base[:3])


def test_reliability_bin_counts_agree_with_calibration_curve_even_on_bin_edges():
    rng = np.random.default_rng(1)
    conf = np.concatenate([np.arange(8, 16) / 15, [1.0, 1.0], rng.uniform(0.5, 1, 200)])  # edges k/15 too
    y = np.zeros(len(conf), dtype=int)
    predicted = (rng.uniform(size=len(conf)) > conf).astype(int)  # right with probability conf
    proba = np.zeros((len(conf), 10))
    proba[np.arange(len(conf)), predicted] = conf
    proba[np.arange(len(conf)), (predicted + 1) % 10] = 1 - conf  # the predicted class keeps the max
    r = study.reliability(y, proba, n_bins=15)
    # the counts are the bins calibration_curve averaged over: weighted back, they give the totals
    assert r["count"].sum() == len(conf)
    assert np.sum(r["count"] * r["accuracy"]) == pytest.approx(np.sum(predicted == 0))
    assert np.sum(r["count"] * r["confidence"]) == pytest.approx(conf.sum())


def test_digit_rates_of_a_digit_with_no_test_image_are_null():
    cm = np.diag(np.full(10, 100))
    cm[3, 3] = 0  # no 3 in this small test set
    rates = study.per_digit_error_rates([cm, cm])
    s = study.digit_rate_summary(rates)
    assert s["mean"][3] is None and s["std"][3] is None and s["mean"][0] == 0.0


def test_calibrate_fits_each_run_on_its_held_out_images_and_pools_the_curves():
    from types import SimpleNamespace

    rng = np.random.default_rng(0)

    def run(seed):
        y_val, y_test = rng.integers(0, 10, 200), rng.integers(0, 10, 300)
        logits = lambda y: rng.normal(0, 1, (len(y), 10)) + 3 * np.eye(10)[y]  # noqa: E731
        soft = lambda z: np.exp(z) / np.exp(z).sum(1, keepdims=True)  # noqa: E731
        return SimpleNamespace(seed=seed, y_val=y_val, val_proba=soft(logits(y_val)), y_test=y_test,
                               test_proba=soft(logits(y_test)))  # fmt: skip

    runs = [run(0), run(1)]
    rows, curves, summary = study.calibrate(runs, n_bins=10)
    for r, row in zip(runs, rows, strict=True):
        t = study.fit_temperature(r.y_val, r.val_proba)  # on the held-out images, never the test images
        assert row["seed"] == r.seed and row["temperature"] == t
        scaled = study.apply_temperature(r.test_proba, t)
        assert row["ece_after"] == study.expected_calibration_error(r.y_test, scaled, 10)
        assert row["ece_before"] == study.expected_calibration_error(r.y_test, r.test_proba, 10)
    pooled = study.reliability(
        np.concatenate([r.y_test for r in runs]), np.concatenate([r.test_proba for r in runs]), 10
    )
    assert set(curves) == {"as trained", "temperature-scaled"} and set(curves["as trained"]) == set(pooled)
    for key, value in pooled.items():
        np.testing.assert_array_equal(curves["as trained"][key], value)
    assert summary == study.calibration_summary(rows) and summary["n_runs"] == 2
