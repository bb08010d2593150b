"""Metrics from predictions: accuracy, loss, confusion matrix, per-class report, confused pairs,
and the numbers behind the verdicts on the claims the report tests (the sentences: ``verdicts``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from mnist_report.data import NUM_CLASSES

CLAIMED_ACCURACY = 0.9925
CLAIMED_PAIRS = ((4, 9), (3, 8))  # the claimed most common confusions, in either direction


def cross_entropy(y_true: np.ndarray, proba: np.ndarray, eps: float = 1e-7) -> float:
    """Mean categorical cross-entropy, clipped as Keras clips it."""
    p = np.clip(proba[np.arange(len(y_true)), y_true], eps, 1 - eps)
    return float(-np.mean(np.log(p)))


def ranked_pairs(cm: np.ndarray, directed: bool) -> list[dict]:
    """Off-diagonal confusions, most frequent first (ties broken by digit order).

    Directed: (true, predicted) counts.  Undirected: the two directions of a pair summed, a < b.
    """
    k = cm.shape[0]
    rows = []
    for a in range(k):
        for b in range(k):
            if a == b or (not directed and b < a):
                continue
            if directed:
                rows.append({"true": a, "predicted": b, "count": int(cm[a, b])})
            else:
                rows.append(
                    {
                        "pair": f"{a}<->{b}",
                        "digits": [a, b],
                        "count": int(cm[a, b] + cm[b, a]),
                        f"{a}->{b}": int(cm[a, b]),
                        f"{b}->{a}": int(cm[b, a]),
                    }
                )
    rows.sort(key=lambda r: -r["count"])  # stable: equal counts stay in digit order
    rank = 0
    for i, r in enumerate(rows):  # competition ranking: equal counts share a rank
        if i == 0 or r["count"] != rows[i - 1]["count"]:
            rank = i + 1
        r["rank"] = rank
    return rows


@dataclass
class Evaluation:
    """Everything the report says about one model on one labelled set."""

    accuracy: float
    loss: float
    n: int
    n_errors: int
    confusion: np.ndarray  # (10, 10), rows = true, columns = predicted
    per_class: list[dict]  # digit, precision, recall, f1, support
    directed_pairs: list[dict]
    undirected_pairs: list[dict]
    y_true: np.ndarray
    y_pred: np.ndarray
    confidence: np.ndarray  # probability of the predicted class

    @property
    def error_indices(self) -> np.ndarray:
        """Indices of misclassified images, most confident mistakes first."""
        wrong = np.flatnonzero(self.y_pred != self.y_true)
        return wrong[np.argsort(-self.confidence[wrong], kind="stable")]

    def to_dict(self, top_pairs: int = 10) -> dict:
        """A JSON-ready summary (no per-image arrays)."""
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "n": self.n,
            "n_errors": self.n_errors,
            "confusion_matrix": self.confusion.tolist(),
            "per_class": self.per_class,
            "top_directed_pairs": self.directed_pairs[:top_pairs],
            "top_undirected_pairs": self.undirected_pairs[:top_pairs],
        }


def evaluate(y_true: np.ndarray, proba: np.ndarray) -> Evaluation:
    """Score class probabilities ``proba`` (N, 10) against integer labels ``y_true`` (N,)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba)
    if proba.ndim != 2 or proba.shape != (len(y_true), NUM_CLASSES):
        raise ValueError(f"proba must have shape ({len(y_true)}, {NUM_CLASSES}); got {proba.shape}")
    if len(y_true) == 0:
        raise ValueError("cannot evaluate on zero images")
    y_pred = proba.argmax(axis=1)
    labels = list(range(NUM_CLASSES))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = [
        {
            "digit": d,
            "precision": float(precision[d]),
            "recall": float(recall[d]),
            "f1": float(f1[d]),
            "support": int(support[d]),
            "errors": int(support[d] - cm[d, d]),
        }
        for d in labels
    ]
    n_errors = int((y_pred != y_true).sum())
    return Evaluation(
        accuracy=float(1 - n_errors / len(y_true)),
        loss=cross_entropy(y_true, proba),
        n=len(y_true),
        n_errors=n_errors,
        confusion=cm,
        per_class=per_class,
        directed_pairs=ranked_pairs(cm, directed=True),
        undirected_pairs=ranked_pairs(cm, directed=False),
        y_true=y_true,
        y_pred=y_pred,
        confidence=proba.max(axis=1),
    )


def binomial_se(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n independent images."""
    return math.sqrt(accuracy * (1 - accuracy) / n)


def pairs_claim(undirected_pairs: list[dict], claimed_pairs=CLAIMED_PAIRS) -> dict:
    """Whether the claimed pairs are the most common confusions: every claimed pair strictly more
    frequent than every other pair (a tie is not enough), with each claimed pair's rank and count."""
    by_pair = {tuple(r["digits"]): r for r in undirected_pairs}
    rows = [by_pair[tuple(sorted(p))] for p in claimed_pairs]
    claimed = {tuple(r["digits"]) for r in rows}
    others_max = max(r["count"] for r in undirected_pairs if tuple(r["digits"]) not in claimed)
    return {
        "pairs": [r["pair"] for r in rows],
        "ranks": [r["rank"] for r in rows],
        "counts": [r["count"] for r in rows],
        "holds": bool(min(r["count"] for r in rows) > others_max),
    }


def check_claims(
    ev: Evaluation,
    claimed_accuracy: float = CLAIMED_ACCURACY,
    claimed_pairs: tuple[tuple[int, int], ...] = CLAIMED_PAIRS,
) -> dict:
    """The numbers behind the verdicts on the claimed accuracy and the claimed top confusions
    (the sentences are ``verdicts.accuracy_claim`` and ``verdicts.pairs_claim``)."""
    se = binomial_se(ev.accuracy, ev.n)
    diff = ev.accuracy - claimed_accuracy
    claim = pairs_claim(ev.undirected_pairs, claimed_pairs)
    return {
        "claimed_accuracy": claimed_accuracy,
        "accuracy": ev.accuracy,
        "n": ev.n,
        "n_errors": ev.n_errors,
        "accuracy_reached": bool(ev.accuracy >= claimed_accuracy),
        "accuracy_difference": diff,
        "binomial_se": se,
        "within_two_se": bool(abs(diff) <= 2 * se),
        "claimed_pairs": [list(p) for p in claimed_pairs],
        "claimed_pair_ranks": claim["ranks"],
        "claimed_pair_counts": claim["counts"],
        "pairs_claim_holds": claim["holds"],
        # the pairs ranked 1 to len(claimed_pairs); equal counts share a rank, so there may be more
        "top_pairs": [
            {"pair": r["pair"], "count": r["count"], "rank": r["rank"]}
            for r in ev.undirected_pairs
            if r["rank"] <= len(claimed_pairs)
        ],
    }
