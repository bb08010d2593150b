"""Each notebook's metrics follow the schema kept in the package (mnist_report/schema.py)."""

import copy
import json

import pytest
from conftest import REPORTS, skip_if_owed

from mnist_report.reporting import schema
from mnist_report.reporting.outputs import Outputs


@pytest.mark.parametrize("name", sorted(schema.SCHEMAS))
def test_every_committed_metrics_file_follows_its_schema(name):
    skip_if_owed(name)
    schema.load(REPORTS / f"{name}.metrics.json")


def test_the_schemas_cover_every_notebook():
    notebooks = sorted(p.stem for p in (REPORTS.parent / "notebooks").glob("[0-9]*.ipynb"))
    assert sorted(schema.SCHEMAS) == notebooks


def _reproduction() -> dict:
    """A small but complete notebook-01 metrics structure."""
    from mnist_report.config import TrainConfig

    cfg = TrainConfig(epochs=1, batch_size=32, n_train=100, seed=1).to_dict()
    evaluation = {"accuracy": 0.9, "loss": 0.3, "n": 10, "n_errors": 1, "confusion_matrix": [[1] * 10] * 10,
                  "per_class": [{"digit": d, "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1, "errors": 0}
                                for d in range(10)],
                  "top_directed_pairs": [{"true": 4, "predicted": 9, "count": 1, "rank": 1}],
                  "top_undirected_pairs": [{"pair": "4<->9", "digits": [4, 9], "count": 1, "rank": 1,
                                            "4->9": 1, "9->4": 0}]}
    return {
        "notebook": "01-seed-reproduction", "config": cfg, "final_config": {**cfg, "validation_fraction": 0.0},
        "executor": {"workers": 2, "threads_per_run": 1, "local": True},
        "data": {"source": "IDX", "n_train": 90, "n_val": 10, "n_train_final": 100, "n_test": 10},
        "parameters": 225034, "history": {"accuracy": [0.5], "loss": [1.0]}, "final_history": {"accuracy": [0.5],
                                                                                              "loss": [1.0]},
        "train_seconds": 1.0, "monitor_train_seconds": 1.0, "model_path": "runs/x/model.keras",
        "test": evaluation,
        "claims": {"claimed_accuracy": 0.9925, "accuracy": 0.9, "n": 10, "n_errors": 1, "accuracy_reached": False,
                   "accuracy_difference": -0.09, "binomial_se": 0.09, "within_two_se": True,
                   "claimed_pairs": [[4, 9], [3, 8]], "claimed_pair_ranks": [1, 2], "claimed_pair_counts": [1, 0],
                   "pairs_claim_holds": False, "top_pairs": [{"pair": "4<->9", "count": 1, "rank": 1}],
                   "accuracy_verdict": "a sentence", "pairs_verdict": "a sentence"},
        "font_digits": {"n": 60, "recognised": 59, "rate": 59 / 60, "by_font": {"DejaVu Sans normal": 10}},
        "environment": {"python": "3.12", "platform": "Linux", "processor": "x86_64", "cpu_count": 2,
                        "packages": {"tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.3.0", "torch": None}},
    }  # fmt: skip


def test_a_complete_structure_passes_and_each_defect_is_named():
    good = _reproduction()
    assert schema.validate("01-seed-reproduction", good) is good
    cases = [
        (lambda m: m["claims"].pop("pairs_verdict"), "claims: 'pairs_verdict' is a required property"),
        (lambda m: m["test"].update(accuracy=1.5), "test.accuracy: 1.5 is greater than the maximum of 1"),
        (lambda m: m["config"].update(epochs="ten"), "config.epochs: 'ten' is not of type 'integer'"),
        (lambda m: m.update(seed_metrics=1), "Additional properties are not allowed ('seed_metrics'"),
        (lambda m: m["test"]["confusion_matrix"].pop(), "test.confusion_matrix: "),
        (lambda m: m.update(notebook="02-multi-seed-study"), "notebook: '01-seed-reproduction' was expected"),
    ]
    for spoil, message in cases:
        bad = copy.deepcopy(good)
        spoil(bad)
        with pytest.raises(schema.MetricsError, match="01-seed-reproduction metrics do not follow") as err:
            schema.validate("01-seed-reproduction", bad)
        assert message in str(err.value)


def test_write_metrics_refuses_a_bad_structure_and_writes_nothing(tmp_path):
    out = Outputs(tmp_path, "01-seed-reproduction")
    metrics = {k: v for k, v in _reproduction().items() if k not in ("notebook", "environment")}
    path = out.write_metrics(metrics)
    assert json.loads(path.read_text())["claims"]["pairs_verdict"] == "a sentence"
    path.unlink()
    del metrics["claims"]
    with pytest.raises(schema.MetricsError, match="'claims' is a required property"):
        out.write_metrics(metrics)
    assert not path.exists()


def test_a_notebook_without_a_schema_is_not_checked(tmp_path):
    path = Outputs(tmp_path, "a-test-notebook").write_metrics({"anything": [1, "two"]})
    assert json.loads(path.read_text())["anything"] == [1, "two"]
