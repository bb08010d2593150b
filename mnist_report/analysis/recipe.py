"""The better network's recipe (notebook 03): an ablation scored on the validation split, the one use of
the test set, and the order in which everything was decided.

The recipe is fixed in advance (the notebook's parameters). Each ablation variant is the recipe with
options changed (``TrainConfig`` fields: augmentation, batch normalisation, weight averaging, label
smoothing), trained with the same seeds on the training split and scored on the validation split, so
the test set never sees a variant's score before the final networks are fixed. ``Decisions`` records
what was decided, in order, and on what evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats

from mnist_report.analysis import compare
from mnist_report.config import TrainConfig

# The options a variant may not change: every variant is scored on the same images with the same schedule.
FIXED = ("seed", "validation_fraction", "n_train", "n_test", "patience", "cycles")


def variant_configs(
    recipe: TrainConfig, variants: dict[str, dict], seeds: Sequence[int]
) -> dict[str, list[TrainConfig]]:
    """Each variant's configurations, one per seed: ``recipe`` with the variant's options. The first
    variant is the recipe itself (no options). A bad option is a ``ValueError`` naming the variant."""
    if not isinstance(variants, dict) or not all(isinstance(o, dict) for o in variants.values()):
        raise ValueError(
            f"variants must be a dict of name: dict of options; got {variants!r} (on the command "
            f"line, give it as YAML: -y variants '{{recipe: {{}}, plain: {{augment: false}}}}')"
        )
    if not variants:
        raise ValueError("variants is empty: name at least the recipe itself (an empty dict of options)")
    if recipe.validation_fraction <= 0:
        raise ValueError("the variants are scored on a validation split: validation_fraction must be > 0")
    first, options = next(iter(variants.items()))
    if options:
        raise ValueError(f"the first variant is the recipe itself, with no options; {first!r} has {options}")
    seeds = list(seeds)
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"each variant needs at least 2 distinct seeds, to show the spread; got {seeds}")
    out = {}
    for name, options in variants.items():
        fixed = sorted(set(options) & set(FIXED))
        if fixed:
            raise ValueError(
                f"variant {name!r} sets {', '.join(fixed)}: the seeds, the images, the validation "
                "split and the schedule's shape are the same for every variant"
            )
        try:
            config = TrainConfig.from_params({**recipe.to_dict(), **options})
        except ValueError as e:
            raise ValueError(f"variant {name!r}: {e}") from None
        same = next((other for other, cs in out.items() if cs[0] == replace(config, seed=seeds[0])), None)
        if same is not None:
            raise ValueError(f"variants {same!r} and {name!r} are the same configuration: give each other options")
        out[name] = [replace(config, seed=s) for s in seeds]
    return out


def variant_table(runs: dict[str, list]) -> list[dict]:
    """One row per variant: its validation accuracy per seed (as trained, and with test-time augmentation
    where the run stored it), their mean and spread, and the difference from the first variant's mean."""
    rows = []
    for name, rs in runs.items():
        plain = np.array([accuracy(r.y_val, r.val_proba) for r in rs])
        tta = [accuracy(r.y_val, r.val_tta_proba) for r in rs if len(r.val_tta_proba)]
        rows.append(
            {
                "variant": name,
                "seeds": [r.seed for r in rs],
                "val_accuracy": plain.tolist(),
                "mean": float(plain.mean()),
                "spread": float(plain.max() - plain.min()),
                "tta_val_accuracy": tta,
                "tta_mean": float(np.mean(tta)) if tta else None,
                "train_seconds": [r.train_seconds for r in rs],
            }
        )
    for row in rows:
        row["difference"] = row["mean"] - rows[0]["mean"]
    return rows


def difference_noise(rows: list[dict], level: float = 0.95) -> float:
    """The smallest difference between two variants' mean validation accuracies that their seeds can tell
    from noise (two-sided, at ``level``): t * s * sqrt(2 / n), s the seed-to-seed standard deviation pooled
    over the k variants (k(n - 1) degrees of freedom), n the seeds of each."""
    n, k = len(rows[0]["val_accuracy"]), len(rows)
    pooled = float(np.mean([np.var(r["val_accuracy"], ddof=1) for r in rows]))
    return float(stats.t.ppf(0.5 + level / 2, k * (n - 1)) * np.sqrt(pooled * 2 / n))


def final_results(finals: list, snapshot_run, tta: bool) -> dict:
    """The final networks on the test images (once the test set may be used): each seed's probabilities
    (test-time augmented where ``tta``), accuracies and their summary, their ensemble, and the snapshot
    run's ensemble against the ensemble of the seeds as trained (neither augmented)."""
    from mnist_report.analysis import evaluate, study

    y = finals[0].y_test
    proba = [r.test_tta_proba if tta else r.test_proba for r in finals]
    acc = [accuracy(y, p) for p in proba]
    snaps = list(np.asarray(snapshot_run.snapshot_test_proba, dtype=np.float64))
    return {
        "y": y,
        "proba": proba,
        "accuracies": acc,
        "summary": study.accuracy_summary(acc, len(y)),
        "ensemble": evaluate.evaluate(y, compare.ensemble(proba)),
        "snapshot_accuracies": [accuracy(y, p) for p in snaps],
        "snapshot_ensemble": accuracy(y, compare.ensemble(snaps)),
        "seed_ensemble_as_trained": accuracy(y, compare.ensemble([r.test_proba for r in finals])),
    }


def accuracy(y_true: np.ndarray, proba: np.ndarray) -> float:
    return float(np.mean(np.asarray(proba).argmax(1) == np.asarray(y_true)))


def paired_tests(
    y_test: np.ndarray,
    final_pred: dict[int, np.ndarray],
    others: dict[str, dict[int, np.ndarray]],
    final_name: str = "the final network",
) -> dict[str, dict[int, dict]]:
    """McNemar's test of the final network against each other network trained with the same seed, on the
    same test images: {other: {seed: test}}, the seeds both have in ``final_pred``'s order. ``final_pred``
    and each of ``others``: {seed: predicted labels}. A seed only one side has is left out (the earlier
    better network has the ablation's seeds alone); a network that shares no seed is an error."""
    out = {}
    for other, preds in others.items():
        common = [s for s in final_pred if s in preds]
        if not common:
            raise ValueError(
                f"{other} shares no seed with {final_name}: its seeds are {sorted(preds)}, "
                f"those of {final_name} {sorted(final_pred)}"
            )
        out[other] = {s: compare.mcnemar_test(y_test, preds[s], final_pred[s], (other, final_name)) for s in common}
    return out


def snapshot_config(final: TrainConfig, cycles: int) -> TrainConfig:
    """The cheap alternative to an ensemble of seeds: one run of the chosen recipe whose cosine schedule
    runs ``cycles`` times (``cycles`` - 1 restarts), each cycle's end kept as a snapshot. Weight
    averaging is left out (it would carry one cycle's weights into the next snapshot)."""
    if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 2:
        raise ValueError(f"snapshot_cycles must be an integer >= 2 (an ensemble needs two snapshots); got {cycles!r}")
    return replace(final, cycles=cycles, ema_momentum=0.0)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return -(-n_train // batch_size)  # the last batch may be short


def ema_start_epochs(momentum: float, steps_per_epoch: int, share: float = 0.25) -> int:
    """The epochs at whose end the weights' moving average still holds more than ``share`` of the initial
    weights (``momentum`` to the power of the steps taken): validation scores a network near its start."""
    if momentum <= 0:
        return 0
    if momentum >= 1 or steps_per_epoch < 1:
        raise ValueError(f"need a momentum below 1 and at least one step an epoch; got {momentum}, {steps_per_epoch}")
    epochs = 0
    while momentum ** (steps_per_epoch * (epochs + 1)) > share:
        epochs += 1
    return epochs


@dataclass
class Decisions:
    """What was decided, in order, and the evidence each decision saw (shown as a table, kept in the metrics)."""

    steps: list[dict] = field(default_factory=list)

    def add(self, decided: str, evidence: str, test_set: bool = False, earlier_test_use: bool = False) -> None:
        """``earlier_test_use``: what was decided had been scored on the test set in an earlier version of
        the report (its history, stated)."""
        if any(s["test_set"] for s in self.steps):
            raise RuntimeError(f"decision {decided!r} comes after the test set was used: nothing may be decided then")
        self.steps.append(
            {
                "step": len(self.steps) + 1,
                "decided": decided,
                "evidence": evidence,
                "test_set": test_set,
                "test_set_in_earlier_versions": earlier_test_use,
            }
        )

    def test_set_used(self, what: str) -> None:
        """The one use of the test set: recorded last; a decision after it is an error."""
        self.add(f"test set used once: {what}", "the networks fixed by the steps above", test_set=True)
