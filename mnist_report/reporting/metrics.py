"""Each notebook's metrics, declared once: TypedDicts whose fields say what kind of number they hold.

``Outputs.write_metrics`` validates what a notebook builds against its declaration (pydantic, strict:
a missing, misnamed or mistyped key fails before anything is written), and ``load`` validates what
the README generator and ``make reproduce`` read. The kinds (``Kind``) tell ``make reproduce`` how to
judge a number that differs: a setup number must be identical, an accuracy is judged against its
noise, a choice is listed, a timing ignored. A field's kind is the nearest marker on its path.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from mnist_report.io import read_json


class Kind(enum.Enum):
    SETUP = "setup"  # the configuration, data sizes, seeds: identical in any reproduction
    ACCURACY = "accuracy"  # one run's share of the test images right
    VAL_ACCURACY = "validation accuracy"  # one run's share of the validation images right
    ERRORS = "errors"  # one run's count of test errors
    MEAN = "mean accuracy"  # a mean over seeds (or its interval), beside its "std" and "n_runs"
    CHOICE = "choice"  # made on validation scores: may fall the other way elsewhere
    FOLLOWS_CHOICE = "follows a choice"  # the networks a choice made: judged only where the choice agrees
    TIMING = "timing"
    STATISTIC = "statistic"  # anything else with no noise of its own in the report (losses, p-values, counts)


Share = Annotated[float, Field(ge=0, le=1)]
Acc = Annotated[float, Field(ge=0, le=1), Kind.ACCURACY]
ValAcc = Annotated[float, Field(ge=0, le=1), Kind.VAL_ACCURACY]
Mean = Annotated[float, Kind.MEAN]  # an interval of a mean may reach past 0 or 1 on few runs
Errors = Annotated[int, Field(ge=0), Kind.ERRORS]
Seconds = Annotated[float, Field(ge=0), Kind.TIMING]
Count = Annotated[int, Field(ge=0)]
Setup = Kind.SETUP
OPEN = ConfigDict(extra="allow")
CLOSED = ConfigDict(extra="forbid")


@with_config(CLOSED)
class PerClass(TypedDict):
    digit: int
    precision: float
    recall: float
    f1: float
    support: Count
    errors: Count


@with_config(CLOSED)
class DirectedPair(TypedDict):
    true: int
    predicted: int
    count: Count
    rank: int


@with_config(OPEN)
class Pair(TypedDict):  # and "a->b", "b->a": each direction's count
    pair: str
    digits: list[int]
    count: Count
    rank: int


@with_config(CLOSED)
class Evaluation(TypedDict):  # evaluate.Evaluation.to_dict()
    accuracy: Acc
    loss: float
    n: Annotated[Count, Setup]
    n_errors: Errors
    confusion_matrix: list[list[Count]]
    per_class: list[PerClass]
    top_directed_pairs: list[DirectedPair]
    top_undirected_pairs: list[Pair]


@with_config(CLOSED)
class Summary(TypedDict):  # study.accuracy_summary()
    n_runs: Annotated[Count, Setup]
    mean: Mean
    std: float
    min: Acc
    max: Acc
    level: Annotated[float, Setup]
    interval_method: Annotated[str, Setup]
    ci_low: Mean
    ci_high: Mean
    prediction_low: Share
    prediction_high: Share
    binomial_se_one_run: float


@with_config(CLOSED)
class McNemar(TypedDict):  # compare.mcnemar_test(), with its sentence
    table: list[list[Count]]
    a_only: Count
    b_only: Count
    exact: bool
    p_value: float
    statistic: float
    names: list[str]
    text: str


@with_config(CLOSED)
class PairedDifference(TypedDict):  # study.paired_difference(), with its sentence
    names: list[str]
    n_runs: Annotated[Count, Setup]
    level: float
    mean_difference: float
    seed_std: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    text: str
    accuracies: list[Acc]


@with_config(CLOSED)
class Claims(TypedDict):  # evaluate.check_claims(), with its sentences
    claimed_accuracy: Annotated[float, Setup]
    accuracy: Acc
    n: Annotated[Count, Setup]
    n_errors: Errors
    accuracy_reached: bool
    accuracy_difference: float
    binomial_se: float
    within_two_se: bool
    claimed_pairs: Annotated[list[list[int]], Setup]
    claimed_pair_ranks: list[int]
    claimed_pair_counts: list[Count]
    pairs_claim_holds: bool
    top_pairs: list[dict[str, Any]]
    accuracy_verdict: str
    pairs_verdict: str


@with_config(CLOSED)
class Reproduction(TypedDict):  # notebook 01
    notebook: Literal["01-seed-reproduction"]
    config: Annotated[dict[str, Any], Setup]
    final_config: Annotated[dict[str, Any], Setup]
    data: Annotated[dict[str, Any], Setup]
    parameters: Annotated[Count, Setup]
    history: dict[str, list[float]]
    final_history: dict[str, list[float]]
    train_seconds: Seconds
    monitor_train_seconds: Seconds
    trained_on: dict[str, Any]
    model_path: str
    test: Evaluation
    label_errors_in_errors: Count
    claims: Claims
    font_digits: dict[str, Any]
    environment: dict[str, Any]
    records: dict[str, str]


@with_config(CLOSED)
class SeedRun(TypedDict):
    seed: Annotated[int, Setup]
    accuracy: Acc
    n_errors: Errors
    loss: float
    train_seconds: Seconds
    claimed_pair_ranks: list[int]
    pairs_claim_holds: bool


@with_config(CLOSED)
class Study(TypedDict):  # notebook 02
    notebook: Literal["02-multi-seed-study"]
    config: Annotated[dict[str, Any], Setup]
    seeds: Annotated[list[int], Setup]
    data: Annotated[dict[str, Any], Setup]
    runs: list[SeedRun]
    trained_on: list[str]
    accuracy_summary: Summary
    accuracy_verdict: dict[str, Any]
    pairs: dict[str, Any]
    summed_confusion_matrix: list[list[Count]]
    summed_top_pairs: list[Pair]
    per_digit_error_rate: dict[str, list[float | None]]
    hard_core: dict[str, Any]
    label_errors: dict[str, Any]
    holding_out: PairedDifference
    calibration: dict[str, Any]
    environment: dict[str, Any]
    records: dict[str, str]


@with_config(CLOSED)
class VariantRow(TypedDict):  # recipe.variant_table()
    variant: str
    seeds: Annotated[list[int], Setup]
    val_accuracy: list[ValAcc]
    mean: ValAcc
    spread: float
    tta_val_accuracy: list[ValAcc]
    tta_mean: ValAcc | None
    train_seconds: list[Seconds]
    difference: float


@with_config(CLOSED)
class Ablation(TypedDict):
    variants: Annotated[dict[str, dict[str, Any]], Setup]
    rows: list[VariantRow]
    n_val: Annotated[Count, Setup]
    noise: float
    text: str
    tta: Annotated[bool, Kind.CHOICE]
    tta_text: str


@with_config(CLOSED)
class Final(TypedDict):
    seeds: Annotated[list[int], Setup]
    tta: Annotated[bool, Kind.CHOICE]
    accuracies: list[Acc]
    accuracies_as_trained: list[Acc]
    train_seconds: list[Seconds]
    summary: Summary
    ensemble: Evaluation
    model_paths: list[str]
    text: str


@with_config(CLOSED)
class Beyond(TypedDict):  # notebook 03
    notebook: Literal["03-beyond-the-seed"]
    search: Annotated[dict[str, Any], Kind.CHOICE]
    tuned: Annotated[dict[str, Any], Kind.FOLLOWS_CHOICE]
    recipe: Annotated[dict[str, Any], Setup]
    ablation: Ablation
    final: Annotated[Final, Kind.FOLLOWS_CHOICE]
    snapshot: dict[str, Any]
    earlier_better: dict[str, Any]
    baseline: dict[str, Any]
    mcnemar: Annotated[McNemar, Kind.FOLLOWS_CHOICE]
    mcnemar_by_seed: Annotated[list[McNemar], Kind.FOLLOWS_CHOICE]
    mcnemar_earlier_better: Annotated[list[McNemar], Kind.FOLLOWS_CHOICE]
    mcnemar_ensembles: Annotated[McNemar, Kind.FOLLOWS_CHOICE]
    cost: dict[str, Any]
    label_errors: Annotated[dict[str, Any], Kind.FOLLOWS_CHOICE]
    decisions: list[dict[str, Any]]
    trained_on: list[str]
    environment: dict[str, Any]
    records: dict[str, str]


NOTEBOOKS: dict[str, type] = {
    "01-seed-reproduction": Reproduction,
    "02-multi-seed-study": Study,
    "03-beyond-the-seed": Beyond,
}


class MetricsError(ValueError):
    """Metrics that do not follow their notebook's declaration."""


def validate(name: str, metrics: dict) -> dict:
    """``metrics`` checked against notebook ``name``'s declaration; a ``MetricsError`` naming every problem."""
    if name not in NOTEBOOKS:
        return metrics  # a notebook of the user's own, with no declaration
    try:
        TypeAdapter(NOTEBOOKS[name]).validate_python(metrics, strict=True)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:8])
        raise MetricsError(f"{name}'s metrics do not follow mnist_report/reporting/metrics.py: {problems}") from None
    return metrics


def load(path: str | Path) -> dict:
    """A metrics file, validated against its notebook's declaration."""
    metrics = read_json(path)
    return validate(str(metrics.get("notebook", "")), metrics)


def kinds(name: str, path: list[str | int]) -> list[Kind]:
    """The kinds marked on the way down notebook ``name``'s declaration to the number at ``path`` (keys
    and list indices), outermost first; the last is the number's own."""
    found, hint = [], NOTEBOOKS.get(name)
    for step in [*path, None]:
        hint, markers = _unwrap(hint)
        found += markers
        if step is None:
            break
        if isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__annotations__"):
            hint = get_type_hints(hint, include_extras=True).get(step) if isinstance(step, str) else None
        elif get_origin(hint) in (list, dict):
            hint = get_args(hint)[-1]
        else:
            hint = None
    return found


def kind(name: str, path: list[str | int]) -> Kind:
    """The number's own kind: the nearest marker on its path, else ``Kind.STATISTIC``."""
    found = kinds(name, path)
    return found[-1] if found else Kind.STATISTIC


def _unwrap(hint) -> tuple[Any, list[Kind]]:
    """A type without its ``Annotated`` layers, and the kinds they mark (outermost first)."""
    markers = []
    while get_origin(hint) is Annotated:
        hint, *extra = get_args(hint)
        markers += [m for m in extra if isinstance(m, Kind)]
    if get_origin(hint) is not None and type(None) in get_args(hint):  # X | None
        inner = [a for a in get_args(hint) if a is not type(None)]
        if len(inner) == 1:
            hint, more = _unwrap(inner[0])
            markers += more
    return hint, markers


NAMES = ("pair", "variant", "digit", "seed", "trial", "step", "index")  # a list's records are named by these


def _label(item, i: int) -> str:
    """A list element's name where it is a named record (so that a reordering is no difference)."""
    if isinstance(item, dict):
        if "true" in item and "predicted" in item:
            return f"{item['true']}->{item['predicted']}"
        for key in NAMES:
            if isinstance(item.get(key), str | int) and not isinstance(item.get(key), bool):
                return f"{key}={item[key]}"
    return str(i)


def numbers(obj, path: tuple = ()) -> dict[str, tuple[tuple, float | str]]:
    """Every number and text of a metrics structure: its shown path -> (its path in the declaration, value);
    booleans aside, and the environment and run records (where it ran, not what it found)."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not (not path and k in ("environment", "records", "trained_on")):
                out.update(numbers(v, (*path, (k, str(k)))))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(numbers(v, (*path, (i, f"[{_label(v, i)}]"))))
    elif isinstance(obj, int | float | str) and not isinstance(obj, bool):
        shown_path = "".join(p if p.startswith("[") or not j else f".{p}" for j, (_, p) in enumerate(path))
        out[shown_path] = (tuple(k for k, _ in path), obj)
    return out
