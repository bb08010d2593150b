"""The better network's recipe, chosen on the validation split only (notebook 03), then used once on the test set.

Each candidate is the base configuration with some options changed (``TrainConfig`` fields: weight
averaging, label smoothing, epochs, width). Every candidate trains with the same seeds on the training
split and is scored on the validation split; test-time augmentation (TTA) is scored on the same
validation images. ``choose`` applies the rule fixed before any run: the candidate with the highest
mean validation accuracy (the first listed on a tie, the simpler), and TTA only where it raises that
candidate's mean validation accuracy. ``Decisions`` records what was decided, in order, and on what
evidence, so the notebook can show that the test set came last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from mnist_report import compare, runs
from mnist_report.config import TrainConfig

# The views TTA averages: the image itself and the image moved by one pixel up, down, left and right.
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))
# The options a candidate may not change: each candidate is scored on the same images, and the final
# networks (trained on all images, without a validation split) and the snapshot run are built from it.
FIXED = ("seed", "validation_fraction", "n_train", "n_test", "patience", "cycles")


def candidate_configs(base: TrainConfig, candidates: dict[str, dict],
                      seeds: Sequence[int]) -> dict[str, list[TrainConfig]]:  # fmt: skip
    """Each candidate's configurations, one per seed: ``base`` with the candidate's options.

    An unknown option or a value ``TrainConfig`` refuses is a ``ValueError`` naming the candidate.
    """
    if not isinstance(candidates, dict) or not all(isinstance(o, dict) for o in candidates.values()):
        raise ValueError(f"candidates must be a dict of name: dict of options; got {candidates!r} (on the command "
                         f"line, give it as YAML: -y candidates '{{base: {{}}, smoothing: {{label_smoothing: 0.1}}}}')")
    if not candidates:
        raise ValueError("candidates is empty: name at least one (an empty dict of options is the base recipe)")
    if base.validation_fraction <= 0:
        raise ValueError("the candidates are scored on a validation split: validation_fraction must be > 0")
    first, options = next(iter(candidates.items()))
    if options:
        raise ValueError(f"the first candidate is the base recipe, with no options (the others are compared with it); "
                         f"{first!r} has {options}")
    seeds = list(seeds)
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"candidates need at least 2 distinct seeds each, to show the spread; got {seeds}")
    out = {}
    for name, options in candidates.items():
        fixed = sorted(set(options) & set(FIXED))
        if fixed:
            raise ValueError(f"candidate {name!r} sets {', '.join(fixed)}: the seeds, the images, the validation split "
                             "and the schedule's shape are the same for every candidate")
        try:
            config = TrainConfig.from_params({**base.to_dict(), **options})
        except ValueError as e:
            raise ValueError(f"candidate {name!r}: {e}") from None
        configs = [replace(config, seed=s) for s in seeds]
        same = next((other for other, runs_of in out.items() if runs_of[0] == configs[0]), None)
        if same is not None:
            raise ValueError(f"candidates {same!r} and {name!r} are the same recipe (their options give the same "
                             f"configuration): give each candidate options that differ")  # fmt: skip
        out[name] = configs
    return out


def train_candidates(configs: dict[str, list[TrainConfig]], raw, cache_root, executor,
                     print_fn=print) -> dict[str, list[runs.StoredRun]]:  # fmt: skip
    """Every candidate's runs, trained together on the executor (or read from the cache) without the
    test images (``runs.run_many(test=False)``): one line per run, with its validation accuracy."""
    flat = [(name, c) for name, cs in configs.items() for c in cs]
    names = {c: name for name, c in flat}

    def describe(run: runs.StoredRun) -> str:
        return f"{names[run.config]}, seed {run.seed}: validation accuracy {accuracy(run.y_val, run.val_proba):.2%}"

    done = runs.run_many([c for _, c in flat], raw, cache_root, executor, print_fn, describe, test=False)
    out: dict[str, list[runs.StoredRun]] = {name: [] for name in configs}
    for (name, _), run in zip(flat, done, strict=True):
        out[name].append(run)
    return out


def validation_scores(candidate_runs: dict[str, list[runs.StoredRun]], raw,
                      print_fn=print) -> tuple[dict[str, list[float]], dict[str, list[float]]]:  # fmt: skip
    """Each candidate's validation accuracy per seed, as trained and with test-time augmentation (its
    saved networks reloaded and shown each validation image's ``SHIFTS``). A run's validation images
    are its own seed's (``data.splits_for``): the same for every candidate at that seed."""
    from mnist_report import data

    say = print_fn or (lambda line: None)
    plain, tta = {}, {}
    for name, rs in candidate_runs.items():
        plain[name], tta[name] = [], []
        for run in rs:
            splits = data.splits_for(raw, run.config)
            if not np.array_equal(run.y_val, splits.y_val):
                raise ValueError(f"candidate {name!r}, seed {run.seed}: its stored validation labels are not "
                                 "those of its split")
            plain[name].append(accuracy(splits.y_val, run.val_proba))
            tta[name].append(accuracy(splits.y_val, tta_proba(_model(run), splits.x_val)))
        say(f"{name}: validation accuracy {np.mean(plain[name]):.2%}, with test-time augmentation "
            f"{np.mean(tta[name]):.2%} (mean of {len(rs)} seeds)")  # fmt: skip
    return plain, tta


def predict_test(run: runs.StoredRun, x_test: np.ndarray, tta: bool) -> np.ndarray:
    """A run's test probabilities: as stored, or from its saved network (with ``SHIFTS`` where ``tta``)
    for a run stored without them (a candidate, trained with ``test=False``)."""
    if not tta and len(run.y_test) == len(x_test):
        return np.asarray(run.test_proba, dtype=np.float64)
    model = _model(run)
    return tta_proba(model, x_test) if tta else tta_proba(model, x_test, shifts=SHIFTS[:1])


def _model(run: runs.StoredRun):
    from mnist_report.train import load_model

    return load_model(run.model_path)


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``images`` (N, H, W, C) moved ``dy`` pixels down and ``dx`` right; the uncovered border is 0 (background)."""
    out = np.zeros_like(images)
    h, w = images.shape[1:3]
    out[:, max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)] = \
        images[:, max(-dy, 0): h + min(-dy, 0), max(-dx, 0): w + min(-dx, 0)]  # fmt: skip
    return out


def tta_proba(model, images: np.ndarray, shifts=SHIFTS, batch_size: int = 1000) -> np.ndarray:
    """The mean of the model's class probabilities over ``shifts`` of each image (inference mode)."""
    from mnist_report.train import predict_proba

    if not len(images):
        return np.zeros((0, 10))
    return np.mean([predict_proba(model, shifted(images, dy, dx), batch_size) for dy, dx in shifts], axis=0)


def accuracy(y_true: np.ndarray, proba: np.ndarray) -> float:
    return float(np.mean(np.asarray(proba).argmax(1) == np.asarray(y_true)))


def candidate_table(names: Sequence[str], seeds: Sequence[int], val_accuracy: dict[str, list[float]],
                    tta_val_accuracy: dict[str, list[float]]) -> list[dict]:  # fmt: skip
    """One row per candidate: its validation accuracy per seed, their mean and spread, and the same with TTA."""
    rows = []
    for name in names:
        plain, tta = np.asarray(val_accuracy[name]), np.asarray(tta_val_accuracy[name])
        if len(plain) != len(seeds) or len(tta) != len(seeds):
            raise ValueError(f"candidate {name!r}: {len(plain)} and {len(tta)} scores for {len(seeds)} seeds")
        rows.append({
            "candidate": name, "seeds": list(seeds), "val_accuracy": plain.tolist(), "mean": float(plain.mean()),
            "spread": float(plain.max() - plain.min()), "tta_val_accuracy": tta.tolist(), "tta_mean": float(tta.mean()),
        })  # fmt: skip
    return rows


def choose(rows: list[dict]) -> dict:
    """The rule fixed in advance: the highest mean validation accuracy (first listed on a tie), and TTA
    if it raises that candidate's mean. Returns the choice with the numbers it rests on."""
    if not rows:
        raise ValueError("no candidates to choose from")
    best = max(rows, key=lambda r: r["mean"])  # max keeps the first of equals
    base = rows[0]
    return {
        "candidate": best["candidate"], "mean": best["mean"], "tta": best["tta_mean"] > best["mean"],
        "tta_mean": best["tta_mean"], "base": base["candidate"], "base_mean": base["mean"],
    }  # fmt: skip


def paired_tests(y_test: np.ndarray, final_pred: dict[int, np.ndarray], others: dict[str, dict[int, np.ndarray]],
                 final_name: str = "the final network") -> dict[str, dict[int, dict]]:
    """McNemar's test of the final network against each other network trained with the same seed, on the
    same test images: {other: {seed: test}}, the seeds both have in ``final_pred``'s order. ``final_pred``
    and each of ``others``: {seed: predicted labels}. A seed only one side has is left out (the earlier
    better network has the candidates' seeds alone); a network that shares no seed is an error."""
    out = {}
    for other, preds in others.items():
        common = [s for s in final_pred if s in preds]
        if not common:
            raise ValueError(f"{other} shares no seed with {final_name}: its seeds are {sorted(preds)}, "
                             f"those of {final_name} {sorted(final_pred)}")  # fmt: skip
        out[other] = {s: compare.mcnemar_test(y_test, preds[s], final_pred[s], (other, final_name)) for s in common}
    return out


def snapshot_config(final: TrainConfig, cycles: int) -> TrainConfig:
    """The cheap alternative to an ensemble of seeds: one run of the chosen recipe whose cosine schedule
    runs ``cycles`` times (``cycles`` - 1 restarts), each cycle's end kept as a snapshot. Weight
    averaging is left out (it would carry one cycle's weights into the next snapshot)."""
    if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 2:
        raise ValueError(f"snapshot_cycles must be an integer >= 2 (an ensemble needs two snapshots); got {cycles!r}")
    return replace(final, cycles=cycles, ema_momentum=0.0)


@dataclass
class Decisions:
    """What was decided, in order, and the evidence each decision saw (shown as a table, kept in the metrics)."""

    steps: list[dict] = field(default_factory=list)

    def add(self, decided: str, evidence: str, test_set: bool = False) -> None:
        if any(s["test_set"] for s in self.steps):
            raise RuntimeError(f"decision {decided!r} comes after the test set was used: nothing may be decided then")
        self.steps.append({"step": len(self.steps) + 1, "decided": decided, "evidence": evidence,
                           "test_set": test_set})  # fmt: skip

    def test_set_used(self, what: str) -> None:
        """The one use of the test set: recorded last; a decision after it is an error."""
        self.add(f"test set used once: {what}", "the networks fixed by the steps above", test_set=True)
