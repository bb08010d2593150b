import numpy as np
import pytest

from mnist_report.analysis import evaluate as E


def _proba(pred, n_classes=10, confidence=0.9):
    p = np.full((len(pred), n_classes), (1 - confidence) / (n_classes - 1))
    p[np.arange(len(pred)), pred] = confidence
    return p


def _case():
    """40 images: four 4->9, two 9->4, three 3->8, one 8->3, one 7->1, the rest right."""
    y_true = np.array([4] * 6 + [9] * 2 + [3] * 3 + [8] * 1 + [7] * 1 + [0] * 27)
    y_pred = np.array([9] * 4 + [4] * 2 + [4] * 2 + [8] * 3 + [3] * 1 + [1] * 1 + [0] * 27)
    return y_true, y_pred


def test_accuracy_confusion_and_per_class():
    y_true, y_pred = _case()
    ev = E.evaluate(y_true, _proba(y_pred))
    assert ev.n == 40 and ev.n_errors == 11
    assert ev.accuracy == pytest.approx(29 / 40)
    assert ev.confusion[4, 9] == 4 and ev.confusion[9, 4] == 2 and ev.confusion.sum() == 40
    four = ev.per_class[4]
    assert four["recall"] == pytest.approx(2 / 6) and four["support"] == 6 and four["errors"] == 4
    assert four["precision"] == pytest.approx(2 / 4)  # predicted 4: two right, two were 9s
    assert ev.loss == pytest.approx(-np.log(0.9 / 1) * 29 / 40 - np.log(0.1 / 9) * 11 / 40)


def test_pairs_are_ranked_directed_and_combined():
    y_true, y_pred = _case()
    ev = E.evaluate(y_true, _proba(y_pred))
    assert ev.directed_pairs[0] == {"true": 4, "predicted": 9, "count": 4, "rank": 1}
    assert [(r["true"], r["predicted"], r["count"]) for r in ev.directed_pairs[1:3]] == [(3, 8, 3), (9, 4, 2)]
    top = ev.undirected_pairs[:3]
    assert [(r["pair"], r["count"], r["rank"]) for r in top] == [("4<->9", 6, 1), ("3<->8", 4, 2), ("1<->7", 1, 3)]
    assert top[0]["4->9"] == 4 and top[0]["9->4"] == 2


def test_ties_share_a_rank():
    cm = np.zeros((3, 3), int)
    cm[0, 1] = cm[1, 2] = 2
    cm[2, 0] = 1
    ranks = [(r["true"], r["predicted"], r["rank"]) for r in E.ranked_pairs(cm, directed=True)][:3]
    assert ranks == [(0, 1, 1), (1, 2, 1), (2, 0, 3)]


def test_error_indices_most_confident_first():
    y_true = np.array([0, 1, 2, 3])
    proba = _proba(np.array([0, 2, 2, 0]))
    proba[3] = _proba(np.array([0]), confidence=0.99)[0]
    ev = E.evaluate(y_true, proba)
    assert ev.error_indices.tolist() == [3, 1]


def test_claims_hold_when_the_data_says_so():
    y_true, y_pred = _case()
    claims = E.check_claims(E.evaluate(y_true, _proba(y_pred)))
    assert claims["pairs_claim_holds"] and claims["claimed_pair_ranks"] == [1, 2]
    assert claims["claimed_pair_counts"] == [6, 4] and claims["n_errors"] == 11
    assert not claims["accuracy_reached"]


def test_claims_fail_when_another_pair_dominates():
    y_true = np.array([2] * 5 + [7] * 995 + [4, 3])
    y_pred = np.array([7] * 5 + [7] * 995 + [9, 8])
    claims = E.check_claims(E.evaluate(y_true, _proba(y_pred)))
    assert not claims["pairs_claim_holds"]
    assert claims["top_pairs"][0] == {"pair": "2<->7", "count": 5, "rank": 1}


def test_accuracy_claim_reached_and_standard_error():
    y_true = np.zeros(10000, int)
    y_pred = y_true.copy()
    y_pred[:50] = 1  # 99.50%
    claims = E.check_claims(E.evaluate(y_true, _proba(y_pred)))
    assert claims["accuracy_reached"] and claims["accuracy"] == pytest.approx(0.995)
    assert claims["binomial_se"] == pytest.approx(np.sqrt(0.995 * 0.005 / 10000))
    assert claims["within_two_se"] is False  # 0.25 points above, s.e. 0.07


@pytest.mark.parametrize("shape", [(3, 9), (4, 10), (3,)])
def test_bad_probability_shapes_are_rejected(shape):
    with pytest.raises(ValueError, match="proba must have shape"):
        E.evaluate(np.array([0, 1, 2]), np.ones(shape))
