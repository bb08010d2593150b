"""McNemar's test and the ensemble, on counts checked by hand."""

import numpy as np
import pytest
from scipy import stats

from mnist_report.analysis import compare


def test_mcnemar_counts_the_discordant_images_and_uses_the_exact_test():
    y = np.zeros(100, dtype=int)
    a = y.copy()
    b = y.copy()
    a[:3] = 1  # A wrong on 3 images that B gets right
    b[3:13] = 1  # B wrong on 10 that A gets right
    a[13:15] = b[13:15] = 1  # both wrong on 2
    r = compare.mcnemar_test(y, a, b, ("A", "B"))
    assert r["table"] == [[85, 10], [3, 2]]
    assert (r["a_only"], r["b_only"], r["exact"]) == (10, 3, True)
    # exact McNemar = two-sided binomial test of 3 successes in 13 trials at p = 1/2
    assert r["p_value"] == pytest.approx(stats.binomtest(3, 13, 0.5).pvalue)


def test_mcnemar_is_exact_with_many_discordant_images_too():
    y = np.zeros(1000, dtype=int)
    a, b = y.copy(), y.copy()
    b[:60] = 1
    a[60:80] = 1
    r = compare.mcnemar_test(y, a, b, ("A", "B"))
    assert r["exact"] and (r["a_only"], r["b_only"]) == (60, 20)
    assert r["p_value"] == pytest.approx(stats.binomtest(20, 80, 0.5).pvalue)


def test_mcnemar_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        compare.mcnemar_test(np.zeros(3), np.zeros(3), np.zeros(4))


def test_ensemble_averages_probabilities():
    p1 = np.array([[0.9, 0.1], [0.4, 0.6]])
    p2 = np.array([[0.5, 0.5], [0.8, 0.2]])
    np.testing.assert_allclose(compare.ensemble([p1, p2]), [[0.7, 0.3], [0.6, 0.4]])
    with pytest.raises(ValueError):
        compare.ensemble([])


def test_ensemble_curve_scores_the_first_k_members_in_the_order_given():
    y = np.array([0, 1, 1])
    p1 = np.array([[0.6, 0.4], [0.6, 0.4], [0.4, 0.6]])  # predicts 0, 0, 1: two of three right
    p2 = np.array([[0.2, 0.8], [0.1, 0.9], [0.7, 0.3]])  # with p1: (0.4, 0.6), (0.35, 0.65), (0.55, 0.45): 1, 1, 0
    p3 = np.array([[0.9, 0.1], [0.3, 0.7], [0.1, 0.9]])  # all three: (0.57, 0.43), (0.33, 0.67), (0.4, 0.6): 0, 1, 1
    assert compare.ensemble_curve(y, [p1, p2, p3]) == pytest.approx([2 / 3, 1 / 3, 1.0])
    # another order, other ensembles on the way: p3 alone and p3 with p2 are right everywhere
    assert compare.ensemble_curve(y, [p3, p2, p1]) == pytest.approx([1.0, 1.0, 1.0])
    assert compare.ensemble_curve(y, [p1]) == pytest.approx([2 / 3])
    assert all(isinstance(a, float) for a in compare.ensemble_curve(y, [p1, p2]))  # JSON-ready
