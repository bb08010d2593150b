"""The better network's recipe: the ablation's variants from the recipe, their table on validation, the
snapshot run, and the record of decisions that puts the test set last."""

from pathlib import Path

import numpy as np
import pytest

from mnist_report.analysis import recipe
from mnist_report.config import TrainConfig
from mnist_report.runs.store import Run

RECIPE = TrainConfig(architecture="better", epochs=20, n_train=1000, ema_momentum=0.99, label_smoothing=0.1)


def test_each_variant_is_the_recipe_with_its_options_for_each_seed():
    variants = {
        "full recipe": {},
        "without augmentation": {"augment": False},
        "without weight average and label smoothing": {"ema_momentum": 0.0, "label_smoothing": 0.0},
    }
    configs = recipe.variant_configs(RECIPE, variants, [0, 1])
    assert list(configs) == list(variants)  # in the order given: the first is the reference
    assert configs["full recipe"] == [TrainConfig(**{**RECIPE.to_dict(), "seed": s}) for s in (0, 1)]
    assert [c.seed for c in configs["without augmentation"]] == [0, 1]
    assert configs["without augmentation"][1] == TrainConfig(**{**RECIPE.to_dict(), "seed": 1, "augment": False})
    plain = configs["without weight average and label smoothing"][0]
    assert (plain.ema_momentum, plain.label_smoothing, plain.augment, plain.epochs) == (0.0, 0.0, True, 20)


@pytest.mark.parametrize(
    ("variants", "seeds", "message"),
    [
        ({}, [0, 1], "variants is empty: name at least the recipe itself"),
        (
            '{"recipe": {}}',
            [0, 1],
            "variants must be a dict of name: dict of options; got .* give it as YAML: -y variants",
        ),
        ({"recipe": {}, "x": "augment"}, [0, 1], "variants must be a dict of name: dict of options"),
        ({"x": {"augment": False}}, [0, 1], r"the first variant is the recipe itself, with no options; 'x' has"),
        (
            {"recipe": {}, "x": {"seed": 3}},
            [0, 1],
            "variant 'x' sets seed: the seeds, the images, the validation split",
        ),
        ({"recipe": {}, "x": {"n_train": 500, "patience": 2}}, [0, 1], "variant 'x' sets n_train, patience"),
        ({"recipe": {}, "x": {"cycles": 2}}, [0, 1], "variant 'x' sets cycles"),
        ({"recipe": {}, "x": {"ema": 0.9}}, [0, 1], r"variant 'x': unknown parameter\(s\) ema"),
        (
            {"recipe": {}, "x": {"label_smoothing": 1.5}},
            [0, 1],
            r"variant 'x': label_smoothing must be a number in \[0",
        ),
        ({"recipe": {}, "x": {"augment": "no"}}, [0, 1], "variant 'x': augment must be True or False"),
        (
            {"recipe": {}, "x": {"architecture": "baseline", "conv_width": 32, "augment": False}},
            [0, 1],
            "variant 'x': augment must be True for the baseline network",
        ),
        # the recipe's own seed among the variants' seeds
        ({"recipe": {}, "same": {"label_smoothing": 0.1}}, [42, 43], "variants 'recipe' and 'same' are the same"),
        (
            {"recipe": {}, "x": {"augment": False}, "y": {"augment": False}},
            [42, 43],
            "variants 'x' and 'y' are the same",
        ),
        ({"x": {}}, [0], r"each variant needs at least 2 distinct seeds, to show the spread; got \[0\]"),
        ({"x": {}}, [1, 1], "at least 2 distinct seeds"),
    ],
)
def test_a_bad_variant_is_named_before_anything_trains(variants, seeds, message):
    with pytest.raises(ValueError, match=message):
        recipe.variant_configs(RECIPE, variants, seeds)


@pytest.mark.parametrize(
    "variants",
    [
        {"recipe": {}, "same": {"label_smoothing": 0.1}},
        {"recipe": {}, "x": {"augment": False}, "y": {"augment": False}},
    ],
)
def test_two_identical_variants_are_refused_whatever_the_seeds(variants):
    with pytest.raises(ValueError, match="are the same configuration"):
        recipe.variant_configs(RECIPE, variants, [0, 1])


def test_variants_need_a_validation_split():
    with pytest.raises(ValueError, match="validation_fraction must be > 0"):
        recipe.variant_configs(TrainConfig(architecture="better", validation_fraction=0.0), {"recipe": {}}, [0, 1])


def _run(config, seed, y_val, predicted, tta_predicted=None, seconds=(1.0, 2.0)):
    """A stored run (as ``runs.get`` returns it) whose validation predictions are ``predicted``."""

    def proba(labels):
        return np.eye(10, dtype=np.float32)[labels] * 0.9 + 0.01

    arrays = {"y_val": np.asarray(y_val), "val_proba": proba(predicted)}
    if tta_predicted is not None:
        arrays["val_tta_proba"] = proba(tta_predicted)
    return Run(
        config=TrainConfig(**{**config.to_dict(), "seed": seed}),
        key=f"k{seed}",
        path=Path("nowhere"),
        history={},
        epoch_seconds=list(seconds),
        trained_on={},
        arrays=arrays,
    )


def test_the_variant_table_by_hand():
    y = [0, 1, 2, 3]
    plain = TrainConfig(**{**RECIPE.to_dict(), "augment": False})
    runs = {
        # right on 4 and 3 of the 4 images; with test-time augmentation on 2 and 4
        "full recipe": [
            _run(RECIPE, 0, y, [0, 1, 2, 3], [0, 1, 9, 9]),
            _run(RECIPE, 1, y, [0, 1, 2, 9], [0, 1, 2, 3], seconds=(3.0, 4.5)),
        ],
        # right on 2 and 3; no test-time augmentation stored
        "without augmentation": [_run(plain, 0, y, [0, 1, 9, 9]), _run(plain, 1, y, [0, 9, 2, 3])],
    }
    full, without = recipe.variant_table(runs)
    assert full["variant"] == "full recipe" and full["seeds"] == [0, 1]
    assert full["val_accuracy"] == [1.0, 0.75] and full["mean"] == 0.875 and full["spread"] == 0.25
    assert full["tta_val_accuracy"] == [0.5, 1.0] and full["tta_mean"] == 0.75
    assert full["train_seconds"] == [3.0, 7.5] and full["difference"] == 0.0
    assert without["val_accuracy"] == [0.5, 0.75] and without["mean"] == 0.625 and without["spread"] == 0.25
    assert without["tta_val_accuracy"] == [] and without["tta_mean"] is None
    assert without["difference"] == pytest.approx(0.625 - 0.875)


def test_the_snapshot_run_is_the_final_recipe_with_restarts_and_without_the_average():
    final = TrainConfig(
        architecture="better", epochs=20, ema_momentum=0.999, label_smoothing=0.1, validation_fraction=0.0
    )
    snap = recipe.snapshot_config(final, 4)
    assert (snap.cycles, snap.ema_momentum, snap.label_smoothing, snap.epochs) == (4, 0.0, 0.1, 20)
    with pytest.raises(ValueError, match="divides epochs"):
        recipe.snapshot_config(final, 3)
    with pytest.raises(ValueError, match="snapshot_cycles must be an integer >= 2"):
        recipe.snapshot_config(final, 1)


def test_decisions_are_numbered_in_order_and_nothing_is_decided_after_the_test_set():
    d = recipe.Decisions()
    d.add("recipe: EMA", "validation split")
    d.test_set_used("5 networks")
    assert [s["step"] for s in d.steps] == [1, 2] and [s["test_set"] for s in d.steps] == [False, True]
    assert [s["test_set_in_earlier_versions"] for s in d.steps] == [False, False]
    with pytest.raises(RuntimeError, match="after the test set was used"):
        d.add("epochs: 30", "test accuracy")
    with pytest.raises(RuntimeError):
        d.test_set_used("again")


def test_paired_tests_pair_each_network_with_the_final_network_of_the_same_seed():
    y = np.array([0, 1, 2, 3, 4, 5])
    final = {0: y.copy(), 1: np.array([0, 1, 2, 3, 4, 0]), 2: y.copy()}  # seed 1 misses the last image
    earlier = {1: y.copy(), 0: np.array([9, 9, 2, 3, 4, 5]), 7: y.copy()}  # seed 7: not a final seed
    got = recipe.paired_tests(y, final, {"the earlier better network": earlier})
    assert list(got) == ["the earlier better network"]
    tests = got["the earlier better network"]
    assert list(tests) == [0, 1]  # the seeds both have, in the final network's order
    assert (tests[0]["a_only"], tests[0]["b_only"]) == (0, 2)  # the final network alone right on two images
    assert (tests[1]["a_only"], tests[1]["b_only"]) == (1, 0)  # the earlier network alone right on one
    assert tests[1]["names"] == ["the earlier better network", "the final network"]
    with pytest.raises(ValueError, match="the baseline network shares no seed with the final network"):
        recipe.paired_tests(y, final, {"the baseline network": {5: y}})


def test_final_results_use_augmented_predictions_only_where_chosen_and_the_snapshots_as_stored():
    from types import SimpleNamespace

    y = np.array([0, 1, 2, 3])
    eye = np.eye(10)

    def net(pred, tta_pred):
        return SimpleNamespace(y_test=y, test_proba=eye[pred], test_tta_proba=eye[tta_pred])

    finals = [net([0, 1, 2, 0], [0, 1, 2, 3]), net([0, 1, 0, 0], [0, 1, 2, 0])]
    snapshot = SimpleNamespace(snapshot_test_proba=np.stack([eye[[0, 0, 0, 0]], eye[[0, 1, 2, 3]]]).astype(np.float32))
    with_tta = recipe.final_results(finals, snapshot, tta=True)
    assert with_tta["accuracies"] == [1.0, 0.75] and with_tta["summary"]["mean"] == 0.875
    assert with_tta["ensemble"].accuracy == 0.75  # (0,1,2,3) and (0,1,2,0) averaged: a tie of 3 and 0 goes to 0
    assert recipe.final_results(finals, snapshot, tta=False)["accuracies"] == [0.75, 0.5]
    assert with_tta["snapshot_accuracies"] == [0.25, 1.0] and with_tta["snapshot_ensemble"] == 0.25
    assert with_tta["seed_ensemble_as_trained"] == 0.5  # as trained, whatever tta: (0,1,2,0) and (0,1,0,0)


def test_a_decision_scored_on_the_test_set_by_an_earlier_version_says_so():
    d = recipe.Decisions()
    d.add("base recipe", "scored on the test set before", earlier_test_use=True)
    d.add("ablation", "validation")
    assert [s["test_set_in_earlier_versions"] for s in d.steps] == [True, False]
    assert d.steps[0]["test_set_in_earlier_versions"] and not d.steps[0]["test_set"]


def test_the_weight_average_holds_its_start_for_the_epochs_the_momentum_gives():
    assert recipe.steps_per_epoch(54_000, 128) == 422 and recipe.steps_per_epoch(256, 128) == 2
    # 0.999 ** (422 * 3) = 0.282 > 0.25 > 0.999 ** (422 * 4) = 0.185
    assert recipe.ema_start_epochs(0.999, 422) == 3
    assert recipe.ema_start_epochs(0.999, 422, share=0.1) == 5  # 0.121 after five epochs, 0.080 after six
    assert recipe.ema_start_epochs(0.0, 422) == 0 and recipe.ema_start_epochs(0.9, 422) == 0
    with pytest.raises(ValueError, match="momentum below 1"):
        recipe.ema_start_epochs(1.0, 422)
