"""Each notebook's metrics are declared once (mnist_report/reporting/metrics.py): what they must hold, and
what kind of number each field is, which make reproduce and the README generator read."""

import json

import pytest
from conftest import REPORTS, skip_if_owed

from mnist_report.reporting import metrics
from mnist_report.reporting.metrics import Kind


def test_the_declarations_cover_every_notebook():
    notebooks = sorted(p.stem for p in (REPORTS.parent / "notebooks").glob("[0-9]*.ipynb"))
    assert sorted(metrics.NOTEBOOKS) == notebooks


@pytest.mark.parametrize("name", sorted(metrics.NOTEBOOKS))
def test_every_committed_metrics_file_follows_its_declaration(name):
    skip_if_owed(name)
    metrics.load(REPORTS / f"{name}.metrics.json")


@pytest.mark.parametrize(
    "name, path, kind",
    [
        ("01-seed-reproduction", ["test", "accuracy"], Kind.ACCURACY),
        ("01-seed-reproduction", ["test", "n_errors"], Kind.ERRORS),
        ("01-seed-reproduction", ["test", "n"], Kind.SETUP),
        ("01-seed-reproduction", ["final_config", "epochs"], Kind.SETUP),
        ("01-seed-reproduction", ["train_seconds"], Kind.TIMING),
        ("01-seed-reproduction", ["test", "loss"], Kind.STATISTIC),
        ("02-multi-seed-study", ["runs", 3, "accuracy"], Kind.ACCURACY),
        ("02-multi-seed-study", ["accuracy_summary", "ci_low"], Kind.MEAN),
        ("02-multi-seed-study", ["seeds", 2], Kind.SETUP),
        ("03-beyond-the-seed", ["search", "trials", 0, "val_accuracy"], Kind.CHOICE),
        ("03-beyond-the-seed", ["ablation", "rows", 1, "val_accuracy", 0], Kind.VAL_ACCURACY),
        ("03-beyond-the-seed", ["final", "summary", "mean"], Kind.MEAN),
        ("03-beyond-the-seed", ["final", "train_seconds", 0], Kind.TIMING),
        ("03-beyond-the-seed", ["nothing", "here"], Kind.STATISTIC),
    ],
)
def test_each_number_has_the_kind_its_declaration_gives(name, path, kind):
    assert metrics.kind(name, path) == kind


def test_the_networks_a_choice_made_are_marked_as_following_it():
    assert Kind.FOLLOWS_CHOICE in metrics.kinds("03-beyond-the-seed", ["final", "summary", "mean"])
    assert Kind.FOLLOWS_CHOICE not in metrics.kinds("03-beyond-the-seed", ["baseline", "accuracies", 0])


def test_a_structure_that_does_not_follow_its_declaration_is_refused_with_every_place_named(monkeypatch):
    monkeypatch.setattr(metrics, "NOTEBOOKS", {"x": metrics.Evaluation})
    good = {
        "accuracy": 0.9,
        "loss": 0.3,
        "n": 10,
        "n_errors": 1,
        "confusion_matrix": [[1] * 10] * 10,
        "per_class": [],
        "top_directed_pairs": [],
        "top_undirected_pairs": [{"pair": "4<->9", "digits": [4, 9], "count": 1, "rank": 1, "4->9": 1}],
    }
    assert metrics.validate("x", good) == good  # the pairs' "a->b" counts are allowed: an open record
    for bad, where in [
        ({**good, "accuracy": 1.2}, "accuracy"),
        ({**good, "n": "10"}, "n"),
        ({**good, "extra": 1}, "extra"),
        ({k: v for k, v in good.items() if k != "loss"}, "loss"),
    ]:
        with pytest.raises(metrics.MetricsError, match=rf"x's metrics do not follow .*{where}"):
            metrics.validate("x", bad)
    assert metrics.validate("a notebook of the user's own", {"anything": 1}) == {"anything": 1}


def test_numbers_are_named_by_the_records_they_belong_to(tmp_path):
    found = metrics.numbers(
        {
            "runs": [{"seed": 3, "accuracy": 0.99, "ok": True}],
            "pairs": [{"true": 4, "predicted": 9, "count": 2}],
            "environment": {"cpu": 2},
            "xs": [5],
        }
    )
    assert found == {
        "runs[seed=3].seed": (("runs", 0, "seed"), 3),
        "runs[seed=3].accuracy": (("runs", 0, "accuracy"), 0.99),
        "pairs[4->9].true": (("pairs", 0, "true"), 4),
        "pairs[4->9].predicted": (("pairs", 0, "predicted"), 9),
        "pairs[4->9].count": (("pairs", 0, "count"), 2),
        "xs[0]": (("xs", 0), 5),
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"notebook": "01-seed-reproduction", "test": {}}))
    with pytest.raises(metrics.MetricsError):
        metrics.load(path)
