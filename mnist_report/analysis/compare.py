"""Two classifiers on the same test images: McNemar's test, and an ensemble of several runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar


def mcnemar_test(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, names=("A", "B")) -> dict:
    """McNemar's test of whether A and B err at different rates on the same images.

    Only the discordant images count: ``a_only`` (A right, B wrong) and ``b_only`` (B right, A
    wrong). The exact (binomial) test, statsmodels' default, is used whatever their number. The
    sentence is ``verdicts.mcnemar``.
    """
    y_true, pred_a, pred_b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    if not (y_true.shape == pred_a.shape == pred_b.shape) or y_true.ndim != 1:
        raise ValueError(
            f"labels and predictions must be 1-D and the same length; got "
            f"{y_true.shape}, {pred_a.shape}, {pred_b.shape}"
        )
    a_right, b_right = pred_a == y_true, pred_b == y_true
    table = np.array(
        [
            [np.sum(a_right & b_right), np.sum(a_right & ~b_right)],
            [np.sum(~a_right & b_right), np.sum(~a_right & ~b_right)],
        ]
    )
    result = mcnemar(table, exact=True)
    return {
        "table": table.tolist(),
        "a_only": int(table[0, 1]),
        "b_only": int(table[1, 0]),
        "exact": True,
        "p_value": float(result.pvalue),
        "statistic": float(result.statistic),
        "names": list(names),
    }


def ensemble(probas: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of several models' class probabilities on the same images."""
    stacked = np.asarray(probas, dtype=np.float64)
    if stacked.ndim != 3 or len(stacked) == 0:
        raise ValueError(f"expected a list of (N, classes) probability arrays; got shape {stacked.shape}")
    return stacked.mean(axis=0)


def ensemble_curve(y_true: np.ndarray, probas: Sequence[np.ndarray]) -> list[float]:
    """Test accuracy of the ensemble of the first 1, 2, ..., N members (in the order given)."""
    return [float(np.mean(ensemble(probas[:k]).argmax(1) == y_true)) for k in range(1, len(probas) + 1)]
