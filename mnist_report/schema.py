"""The structure of each notebook's metrics JSON, as JSON Schema (draft 2020-12), checked by the
``jsonschema`` library.

``report.Outputs.write_metrics`` validates what a notebook builds before writing it (nothing is
written otherwise), and ``load`` validates what ``readme`` and ``reproduce`` read. The schemas are
built here in Python from a few helpers so that the shared parts (an evaluation, a summary over
seeds, McNemar's test, a training configuration) are written once. Objects list the keys they
require and, where the structure is the report's own, refuse keys they do not know, so a renamed
key fails at once rather than in a README table.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mnist_report.config import TrainConfig
from mnist_report.io import read_json

INT = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
NUMBER = {"type": "number"}
SHARE = {"type": "number", "minimum": 0, "maximum": 1}  # an accuracy, a rate, a probability
SECONDS = {"type": "number", "minimum": 0}
TEXT = {"type": "string", "minLength": 1}
BOOL = {"type": "boolean"}
NULL = {"type": "null"}


def array(items: dict, n: int | None = None) -> dict:
    out = {"type": "array", "items": items}
    return out | ({"minItems": n, "maxItems": n} if n is not None else {})


def obj(required: dict, optional: dict | None = None, closed: bool = True) -> dict:
    """An object with the keys of ``required`` (each with its schema) and perhaps ``optional``'s."""
    out = {"type": "object", "properties": {**required, **(optional or {})}, "required": list(required)}
    return out | ({"additionalProperties": False} if closed else {})


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, NULL]}


def config(*, without: tuple[str, ...] = ()) -> dict:
    """A ``TrainConfig.to_dict()``, from the dataclass's own fields (less ``without``)."""
    kinds = {int: INT, float: NUMBER, str: TEXT}
    props = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in without:
            continue
        kind = kinds[type(f.default)] if f.default is not None else INT  # n_train, n_test, patience
        props[f.name] = nullable(kind) if f.default is None else kind
    return obj(props)


MATRIX_10 = array(array(COUNT, 10), 10)
PAIR = array(INT, 2)
EVALUATION = obj({  # evaluate.Evaluation.to_dict()
    "accuracy": SHARE, "loss": {"type": "number", "minimum": 0}, "n": COUNT, "n_errors": COUNT,
    "confusion_matrix": MATRIX_10,
    "per_class": array(obj({"digit": INT, "precision": SHARE, "recall": SHARE, "f1": SHARE, "support": COUNT,
                            "errors": COUNT}), 10),
    "top_directed_pairs": array(obj({"true": INT, "predicted": INT, "count": COUNT, "rank": INT})),
    "top_undirected_pairs": array(obj({"pair": TEXT, "digits": PAIR, "count": COUNT, "rank": INT}, closed=False)),
})  # fmt: skip
SUMMARY = obj({  # study.accuracy_summary()
    "n_runs": COUNT, "mean": SHARE, "std": {"type": "number", "minimum": 0}, "min": SHARE, "max": SHARE,
    "level": SHARE, "interval_method": TEXT, "ci_low": NUMBER, "ci_high": NUMBER, "prediction_low": SHARE,
    "prediction_high": SHARE, "binomial_se_one_run": {"type": "number", "minimum": 0},
})  # fmt: skip
MCNEMAR = obj({  # compare.mcnemar_test() and its sentence
    "table": array(array(COUNT, 2), 2), "a_only": COUNT, "b_only": COUNT, "exact": BOOL, "p_value": SHARE,
    "statistic": NUMBER, "names": array(TEXT, 2), "text": TEXT,
})  # fmt: skip
PAIRS_CLAIM = obj({"pairs": array(TEXT), "ranks": array(INT), "counts": array(COUNT), "holds": BOOL})
EXECUTOR = obj({"workers": {"type": "integer", "minimum": 1}, "threads_per_run": {"type": "integer", "minimum": 1},
                "local": BOOL})  # fmt: skip
FINGERPRINT = obj({"machine": TEXT, "simd": array(TEXT), "gpus": array(TEXT), "onednn": TEXT, "python": TEXT})
ENVIRONMENT = obj({"python": TEXT, "platform": TEXT, "processor": {"type": "string"}, "cpu_count": nullable(COUNT),
                   "packages": {"type": "object", "additionalProperties": nullable(TEXT),  # None: not installed
                                "required": ["tensorflow", "keras", "numpy"]}},
                  {"cpu_model": {"type": "string"}, "fingerprint": FINGERPRINT})  # fmt: skip
HISTORY = {"type": "object", "additionalProperties": array(NUMBER), "required": ["accuracy", "loss"]}
WHERE_LABELS_STAND = {  # label_errors.accuracy_where_labels_stand()
    "n": COUNT, "accuracy": SHARE, "n_errors": COUNT, "errors_on_listed_images": COUNT, "listed_images": COUNT,
    "listed_predicted_as_proposed": COUNT,
}  # fmt: skip


def _common(name: str) -> dict:
    return {"notebook": {"const": name}, "executor": EXECUTOR, "environment": ENVIRONMENT}


REPRODUCTION = obj({
    **_common("01-seed-reproduction"),
    "config": config(), "final_config": config(),
    "data": obj({"source": TEXT, "n_train": COUNT, "n_val": COUNT, "n_train_final": COUNT, "n_test": COUNT}),
    "parameters": COUNT, "history": HISTORY, "final_history": HISTORY,
    "train_seconds": SECONDS, "monitor_train_seconds": SECONDS, "model_path": TEXT,
    "test": EVALUATION,
    "claims": obj({
        "claimed_accuracy": SHARE, "accuracy": SHARE, "n": COUNT, "n_errors": COUNT, "accuracy_reached": BOOL,
        "accuracy_difference": NUMBER, "binomial_se": NUMBER, "within_two_se": BOOL,
        "claimed_pairs": array(PAIR), "claimed_pair_ranks": array(INT), "claimed_pair_counts": array(COUNT),
        "pairs_claim_holds": BOOL, "top_pairs": array(obj({"pair": TEXT, "count": COUNT, "rank": INT})),
        "accuracy_verdict": TEXT, "pairs_verdict": TEXT,
    }),
    "font_digits": obj({"n": COUNT, "recognised": COUNT, "rate": SHARE,
                        "by_font": {"type": "object", "additionalProperties": COUNT}}),
})  # fmt: skip

STUDY = obj({
    **_common("02-multi-seed-study"),
    "config": config(without=("seed",)), "seeds": array(INT) | {"minItems": 2}, "cache_key": TEXT,
    "data": obj({"source": TEXT, "n_train": COUNT, "n_val": COUNT, "n_test": COUNT}),
    "runs": array(obj({
        "seed": INT, "accuracy": SHARE, "n_errors": COUNT, "loss": NUMBER, "train_seconds": SECONDS,
        "claimed_pair_ranks": array(INT), "pairs_claim_holds": BOOL, "temperature": NUMBER,
        "ece_before": SHARE, "ece_after": SHARE, "nll_before": NUMBER, "nll_after": NUMBER,
    })),
    "accuracy_summary": SUMMARY,
    "accuracy_verdict": obj({"claimed_accuracy": SHARE, "position": {"enum": ["inside", "above", "below"]},
                             "one_run_plausible": BOOL, "runs_reaching_claim": COUNT, "text": TEXT}),
    "pairs": obj({"runs_holding": COUNT, "n_runs": COUNT, "summed": PAIRS_CLAIM, "text": TEXT}),
    "summed_confusion_matrix": MATRIX_10,
    "summed_top_pairs": array(obj({"pair": TEXT, "digits": PAIR, "count": COUNT, "rank": INT}, closed=False)),
    "per_digit_error_rate": obj({"mean": array(nullable(NUMBER), 10), "std": array(nullable(NUMBER), 10)}),
    "hard_core": obj({"min_runs": COUNT, "wrong_by_all": COUNT, "wrong_by_any": COUNT,
                      "images": array(obj({"index": COUNT, "true": INT, "wrong_runs": COUNT,
                                           "usual_prediction": INT}))}),
    "label_errors": obj({
        "source": TEXT, "listed": COUNT, "n_standing": COUNT, "in_hard_core": COUNT, "wrong_by_all": COUNT,
        "errors_on_listed_images": array(COUNT), "accuracies": array(SHARE), "accuracy_where_labels_stand": SUMMARY,
        "text": TEXT,
    }),
    "precision_comparison": nullable(obj({
        "names": array(TEXT, 2), "n_runs": COUNT, "level": SHARE, "mean_difference": NUMBER, "seed_std": NUMBER,
        "ci_low": nullable(NUMBER), "ci_high": nullable(NUMBER), "p_value": nullable(SHARE),
        "within_noise": nullable(BOOL), "text": TEXT, "accuracies": array(SHARE),
        "mean_train_seconds": {"type": "object", "additionalProperties": SECONDS},
    })),
    "calibration": obj({
        "n_bins": COUNT, "n_runs": COUNT, "mean_temperature": NUMBER, "mean_ece_before": SHARE,
        "mean_ece_after": SHARE, "mean_nll_before": NUMBER, "mean_nll_after": NUMBER, "about_calibrated": BOOL,
        "runs_temperature_above_one": COUNT, "runs_ece_lower": COUNT, "text": TEXT,
    }),
})  # fmt: skip

CANDIDATE_ROW = obj({  # recipe.candidate_table()
    "candidate": TEXT, "seeds": array(INT) | {"minItems": 2}, "val_accuracy": array(SHARE), "mean": SHARE,
    "spread": SHARE, "tta_val_accuracy": array(SHARE), "tta_mean": SHARE,
})  # fmt: skip
BEYOND = obj({
    **_common("03-beyond-the-seed"),
    "precision": TEXT,
    "search": obj({
        "max_trials": COUNT, "max_epochs": COUNT, "seconds": SECONDS,
        "space": {"type": "object", "additionalProperties": array(NUMBER)},
        "trials": array(obj({"val_accuracy": SHARE, "best_epoch": COUNT, "trial": COUNT, "cached": BOOL},
                            closed=False)) | {"minItems": 1},
        "selected": config(),
    }),
    "tuned": obj({"test": EVALUATION, "train_seconds": SECONDS, "model_path": TEXT}),
    "candidates": obj({
        "base_config": config(without=("seed",)),
        "options": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "object"}},
        "rows": array(CANDIDATE_ROW) | {"minItems": 1},
        "choice": obj({"candidate": TEXT, "mean": SHARE, "tta": BOOL, "tta_mean": SHARE, "base": TEXT,
                       "base_mean": SHARE, "text": TEXT}),
        "n_val": COUNT,
        "train_seconds": {"type": "object", "additionalProperties": array(SECONDS)},
    }),
    "final": obj({"config": config(without=("seed",)), "seeds": array(INT) | {"minItems": 2}, "tta": BOOL,
                  "accuracies": array(SHARE), "accuracies_as_trained": array(SHARE),
                  "train_seconds": array(SECONDS) | {"minItems": 2}, "summary": SUMMARY, "cache_key": TEXT,
                  "ensemble": EVALUATION, "model_paths": array(TEXT)}),
    "snapshot": obj({"config": config(), "snapshot_accuracies": array(SHARE) | {"minItems": 2},
                     "ensemble_accuracy": SHARE, "train_seconds": SECONDS, "model_paths": array(TEXT), "text": TEXT}),
    "earlier_better": obj({"seeds": array(INT), "accuracies": array(SHARE), "cache_key": TEXT}),
    "baseline": obj({"seeds": array(INT), "accuracies": array(SHARE), "cache_key": TEXT}),
    "mcnemar": MCNEMAR, "mcnemar_by_seed": array(MCNEMAR), "mcnemar_earlier_better": array(MCNEMAR),
    "mcnemar_ensembles": MCNEMAR,
    "label_errors": obj({
        "source": TEXT, "listed": COUNT, "better_runs": COUNT, "better_mean_where_labels_stand": SHARE, "text": TEXT,
        "networks": {"type": "object", "minProperties": 1, "additionalProperties": obj(
            {**WHERE_LABELS_STAND, "accuracy_all": SHARE, "n_errors_all": COUNT})},
    }),
    "decisions": array(obj({"step": COUNT, "decided": TEXT, "evidence": TEXT, "test_set": BOOL})) | {"minItems": 1},
    "time": obj({"seconds": SECONDS, "runs": COUNT, "cached": COUNT, "text": TEXT}),
})  # fmt: skip

SCHEMAS = {"01-seed-reproduction": REPRODUCTION, "02-multi-seed-study": STUDY, "03-beyond-the-seed": BEYOND}


class MetricsError(ValueError):
    """A metrics structure that does not follow its notebook's schema."""


def validate(name: str, metrics: dict) -> dict:
    """``metrics`` if it follows the schema of notebook ``name``; else ``MetricsError`` naming every
    place that does not. A name without a schema (a test's own notebook) is not checked."""
    import jsonschema

    schema = SCHEMAS.get(name)
    if schema is None:
        return metrics
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(metrics), key=lambda e: list(e.absolute_path))
    if errors:
        where = "; ".join(f"{'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise MetricsError(f"{name} metrics do not follow mnist_report/schema.py: {where}{more}")
    return metrics


def load(path: str | Path) -> dict:
    """A notebook's metrics JSON (``reports/NAME.metrics.json``), validated against its schema."""
    path = Path(path)
    return validate(path.name.removesuffix(".metrics.json"), read_json(path))
