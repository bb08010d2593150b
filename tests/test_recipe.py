"""Choosing the recipe on validation: candidates from a base configuration, test-time augmentation,
the rule that chooses, and the record of decisions that puts the test set last."""

import numpy as np
import pytest

from mnist_report.analysis import recipe
from mnist_report.config import TrainConfig

BASE = TrainConfig(architecture="better", epochs=20, n_train=1000)


def test_candidates_are_the_base_with_their_options_for_each_seed():
    configs = recipe.candidate_configs(BASE, {"base": {}, "EMA": {"ema_momentum": 0.999}}, [0, 1])
    assert recipe.candidate_configs(BASE, {"base": {}}, [0, 1])["base"][0] == BASE.__class__(
        **{**BASE.to_dict(), "seed": 0})  # fmt: skip
    assert list(configs) == ["base", "EMA"]
    assert [c.seed for c in configs["EMA"]] == [0, 1] and configs["base"][1] == TrainConfig(
        **{**BASE.to_dict(), "seed": 1})  # fmt: skip
    assert {c.ema_momentum for c in configs["EMA"]} == {0.999} and configs["EMA"][0].epochs == 20


@pytest.mark.parametrize(("candidates", "seeds", "message"), [
    ({}, [0, 1], "candidates is empty"),
    ('{"base": {}}', [0, 1], "candidates must be a dict of name: dict of options; got .* give it as YAML: -y"),
    ({"base": {}, "x": "label_smoothing"}, [0, 1], "candidates must be a dict of name: dict of options"),
    ({"base": {}, "x": {"ema": 0.9}}, [0, 1], r"candidate 'x': unknown parameter\(s\) ema"),
    ({"base": {}, "x": {"label_smoothing": 1.5}}, [0, 1], r"candidate 'x': label_smoothing must be a number in \[0"),
    ({"x": {"seed": 3}}, [0, 1], "the first candidate is the base recipe, with no options"),
    ({"base": {}, "x": {"seed": 3}}, [0, 1], "candidate 'x' sets seed: the seeds, the images"),
    ({"base": {}, "x": {"n_train": 500, "patience": 2}}, [0, 1], "candidate 'x' sets n_train, patience"),
    ({"base": {}, "none": {"label_smoothing": 0.0}}, [0, 1], "candidates 'base' and 'none' are the same recipe"),
    ({"x": {}}, [0], "at least 2 distinct seeds"),
    ({"x": {}}, [1, 1], "at least 2 distinct seeds"),
])  # fmt: skip
def test_a_bad_candidate_is_named_before_anything_trains(candidates, seeds, message):
    with pytest.raises(ValueError, match=message):
        recipe.candidate_configs(BASE, candidates, seeds)


def test_shifted_moves_the_image_and_fills_the_border_with_background():
    img = np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4, 1)
    down = recipe.shifted(img, 1, 0)[0, :, :, 0]
    np.testing.assert_array_equal(down[0], 0)
    np.testing.assert_array_equal(down[1:], img[0, :3, :, 0])
    left = recipe.shifted(img, 0, -1)[0, :, :, 0]
    np.testing.assert_array_equal(left[:, :3], img[0, :, 1:, 0])
    np.testing.assert_array_equal(left[:, 3], 0)
    np.testing.assert_array_equal(recipe.shifted(img, 0, 0), img)
    # each of the five views moves the image by at most one pixel
    assert len(set(recipe.SHIFTS)) == 5 and all(abs(dy) + abs(dx) <= 1 for dy, dx in recipe.SHIFTS)


def test_tta_averages_the_views_and_the_identity_alone_is_the_plain_prediction():
    from mnist_report.modeling.model import build_model
    from mnist_report.modeling.train import predict_proba

    model = build_model(TrainConfig(seed=1))
    x = np.random.default_rng(0).random((6, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(recipe.tta_proba(model, x, shifts=[(0, 0)]), predict_proba(model, x))
    views = [predict_proba(model, recipe.shifted(x, dy, dx)) for dy, dx in recipe.SHIFTS]
    np.testing.assert_allclose(recipe.tta_proba(model, x), np.mean(views, axis=0), rtol=1e-6)
    assert recipe.tta_proba(model, x[:0]).shape == (0, 10)


def _rows(means_and_tta):
    plain = {name: [m - 0.0005, m + 0.0005] for name, (m, _) in means_and_tta.items()}
    tta = {name: [t, t] for name, (_, t) in means_and_tta.items()}
    return recipe.candidate_table(list(means_and_tta), [0, 1], plain, tta)


def test_the_table_gives_each_candidates_seeds_mean_and_spread():
    (row,) = _rows({"base": (0.995, 0.996)})
    assert row["val_accuracy"] == pytest.approx([0.9945, 0.9955]) and row["mean"] == pytest.approx(0.995)
    assert row["spread"] == pytest.approx(0.001) and row["tta_mean"] == pytest.approx(0.996)
    with pytest.raises(ValueError, match="3 seeds"):
        recipe.candidate_table(["a"], [0, 1, 2], {"a": [0.9, 0.9]}, {"a": [0.9, 0.9]})


def test_the_rule_takes_the_highest_mean_the_first_on_a_tie_and_tta_only_if_it_helps():
    choice = recipe.choose(_rows({"base": (0.9950, 0.9940), "EMA": (0.9960, 0.9970), "LS": (0.9955, 0.9990)}))
    assert choice["candidate"] == "EMA" and choice["tta"] and choice["base"] == "base"
    assert choice["mean"] == pytest.approx(0.9960) and choice["base_mean"] == pytest.approx(0.9950)
    tie = recipe.choose(_rows({"base": (0.9950, 0.9940), "EMA": (0.9950, 0.9990)}))
    assert tie["candidate"] == "base" and not tie["tta"]  # the simpler on a tie; TTA lowers its mean
    equal = recipe.choose(_rows({"base": (0.9950, 0.9950)}))
    assert not equal["tta"]  # TTA must raise the mean, not merely match it


def test_the_snapshot_run_is_the_final_recipe_with_restarts_and_without_the_average():
    final = TrainConfig(architecture="better", epochs=20, ema_momentum=0.999, label_smoothing=0.1,
                        validation_fraction=0.0)  # fmt: skip
    snap = recipe.snapshot_config(final, 4)
    assert (snap.cycles, snap.ema_momentum, snap.label_smoothing, snap.epochs) == (4, 0.0, 0.1, 20)
    with pytest.raises(ValueError, match="divides epochs"):
        recipe.snapshot_config(final, 3)
    with pytest.raises(ValueError, match="snapshot_cycles must be an integer >= 2"):
        recipe.snapshot_config(final, 1)


def test_candidates_need_a_validation_split():
    with pytest.raises(ValueError, match="validation_fraction must be > 0"):
        recipe.candidate_configs(TrainConfig(architecture="better", validation_fraction=0.0), {"base": {}}, [0, 1])


def test_decisions_are_numbered_in_order_and_nothing_is_decided_after_the_test_set():
    d = recipe.Decisions()
    d.add("recipe: EMA", "validation split")
    d.test_set_used("5 networks")
    assert [s["step"] for s in d.steps] == [1, 2] and [s["test_set"] for s in d.steps] == [False, True]
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
