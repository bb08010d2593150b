"""The test images whose labels human reviewers rejected, and accuracy on the images whose labels stand.

``data/mnist-test-label-errors.json`` lists the 15 MNIST test images whose given label a majority of
5 reviewers did not confirm (Northcutt, Athalye and Mueller 2021; the file names its source and
the votes). The file is checked by its SHA-256 here, as the IDX files are by ``data/mnist/SHA256SUMS``,
and each entry's given label is checked against the verified test labels, so a list that belongs to
another ordering of the test set is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_report.data import DataError
from mnist_report.paths import PROJECT_ROOT, shown

PATH = PROJECT_ROOT / "data" / "mnist-test-label-errors.json"
SHA256 = "135cbcbc2baf164b3c904ddc54e29d43abb8d8218c2d367e46b183dbdd44ac3f"


@dataclass(frozen=True)
class LabelErrors:
    """The listed test images: 0-based indices, the given (rejected) labels, the label the study proposed
    instead (found by its method and put to the reviewers; the votes say how many chose it)."""

    indices: np.ndarray
    given: np.ndarray
    proposed: np.ndarray
    votes: list[list[int]]
    source: str

    def within(self, n_test: int) -> np.ndarray:
        """The listed indices among the first ``n_test`` test images (all 15 on the full test set)."""
        return self.indices[self.indices < n_test]

    def standing(self, n_test: int) -> np.ndarray:
        """A boolean mask over the first ``n_test`` test images: True where the label stands."""
        mask = np.ones(n_test, dtype=bool)
        mask[self.within(n_test)] = False
        return mask


def load(y_test: np.ndarray, path: str | Path = PATH, sha256: str | None = SHA256) -> LabelErrors:
    """The list at ``path``, verified by its SHA-256 and against the test labels ``y_test`` (all 10,000
    or the first N: entries beyond N are not checked, and ``within``/``standing`` leave them out)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{shown(path)} is missing: it ships with the project (git checkout -- {shown(path)})")
    content = path.read_bytes()
    if sha256 is not None and hashlib.sha256(content).hexdigest() != sha256:
        raise DataError(
            f"{shown(path)} does not match its SHA-256 ({sha256[:12]}...): it was changed; "
            f"restore it with git checkout -- {shown(path)}"
        )
    doc = json.loads(content)
    rows = doc["errors"]
    out = LabelErrors(
        indices=np.array([r["index"] for r in rows], dtype=int),
        given=np.array([r["given"] for r in rows], dtype=int),
        proposed=np.array([r["proposed"] for r in rows], dtype=int),
        votes=[list(r["votes"]) for r in rows],
        source=doc["source"],
    )
    y_test = np.asarray(y_test)
    seen = out.indices < len(y_test)
    if np.any(out.indices < 0) or len(set(out.indices.tolist())) != len(out.indices):
        raise DataError(f"{shown(path)}: indices must be distinct and non-negative")
    wrong = out.indices[seen][y_test[out.indices[seen]] != out.given[seen]]
    if len(wrong):
        raise DataError(
            f"{shown(path)}: the given label of test image(s) {wrong.tolist()} is not the one in the "
            "verified test labels: the list does not belong to this test set"
        )
    return out


def accuracy_where_labels_stand(y_true: np.ndarray, y_pred: np.ndarray, errors: LabelErrors) -> dict:
    """Accuracy on the test images whose labels stand, beside the usual figure, and how many of the
    errors are on listed images (there the "error" may be the label's, not the network's)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    keep = errors.standing(len(y_true))
    wrong = y_pred != y_true
    seen = errors.indices < len(y_true)
    listed = errors.indices[seen]
    return {
        "n": int(keep.sum()),
        "accuracy": float(1 - wrong[keep].mean()),
        "n_errors": int(wrong[keep].sum()),
        "errors_on_listed_images": int(wrong[listed].sum()),
        "listed_images": len(listed),
        "listed_predicted_as_proposed": int(np.sum(y_pred[listed] == errors.proposed[seen])),
    }


def across_seeds(y_true: np.ndarray, preds: np.ndarray, errors: LabelErrors, hard_core: list[int]) -> dict:
    """Many runs (``preds``: one row of predictions per run) against the listed images: how many of them
    are in the ``hard_core`` (the indices most runs get wrong) and wrong in every run, and each run's
    accuracy where labels stand with its summary over runs (the sentence: ``verdicts.label_noise_across_seeds``)."""
    from mnist_report.analysis.study import accuracy_summary

    y_true, preds = np.asarray(y_true), np.asarray(preds)
    listed = errors.within(len(y_true))
    standing = [accuracy_where_labels_stand(y_true, p, errors) for p in preds]
    return {
        "source": errors.source,
        "listed": len(listed),
        "n_standing": standing[0]["n"],
        "in_hard_core": int(np.isin(listed, hard_core).sum()),
        "wrong_by_all": int(np.all(preds[:, listed] != y_true[listed], axis=0).sum()),
        "errors_on_listed_images": [s["errors_on_listed_images"] for s in standing],
        "accuracies": [s["accuracy"] for s in standing],
        "accuracy_where_labels_stand": accuracy_summary([s["accuracy"] for s in standing], standing[0]["n"]),
    }


def by_network(
    y_true: np.ndarray, predictions: dict[str, np.ndarray], errors: LabelErrors, runs: list[np.ndarray]
) -> dict:
    """Each named network's predictions against the listed images, beside its accuracy on all images,
    and the mean over ``runs`` (one network's seeds) where labels stand (the sentence:
    ``verdicts.label_noise_remaining``)."""
    y_true = np.asarray(y_true)
    networks = {}
    for name, y_pred in predictions.items():
        wrong = np.asarray(y_pred) != y_true
        networks[name] = {
            **accuracy_where_labels_stand(y_true, y_pred, errors),
            "accuracy_all": float(1 - wrong.mean()),
            "n_errors_all": int(wrong.sum()),
        }
    order_all = sorted(networks, key=lambda n: -networks[n]["accuracy_all"])
    order_standing = sorted(networks, key=lambda n: -networks[n]["accuracy"])
    out = {
        "source": errors.source,
        "listed": len(errors.within(len(y_true))),
        "networks": networks,
        # Northcutt et al.'s question: does the order of the networks change once the listed images are left out?
        "order_all": order_all,
        "order_where_labels_stand": order_standing,
        # a change is a pair in strictly the other order (a tie on either side is none), each with McNemar's
        # test on the images whose labels stand: does the new order say more than noise?
        "swaps": [
            {"ahead_on_all": a, "ahead_where_labels_stand": b, **_standing_test(y_true, predictions, a, b, errors)}
            for a in networks
            for b in networks
            if networks[a]["accuracy_all"] > networks[b]["accuracy_all"]
            and networks[a]["accuracy"] < networks[b]["accuracy"]
        ],
        "better_runs": len(runs),
        "better_mean_where_labels_stand": float(
            np.mean([accuracy_where_labels_stand(y_true, p, errors)["accuracy"] for p in runs])
        ),
    }
    return {**out, "ranking_changes": bool(out["swaps"])}


def _standing_test(y_true, predictions: dict, a: str, b: str, errors: LabelErrors) -> dict:
    """McNemar's exact p-value of networks ``a`` and ``b`` on the images whose labels stand."""
    from mnist_report.analysis.compare import mcnemar_test

    keep = errors.standing(len(y_true))
    m = mcnemar_test(np.asarray(y_true)[keep], np.asarray(predictions[a])[keep], np.asarray(predictions[b])[keep])
    return {"p_value": m["p_value"], "images_apart": abs(m["a_only"] - m["b_only"])}
