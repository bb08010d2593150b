"""The test-set label errors: the shipped list, verified, and accuracy on the images whose labels stand."""

import json

import numpy as np
import pytest

from mnist_report.analysis import label_errors, plots
from mnist_report.data import DataError


def test_the_shipped_list_matches_the_verified_test_labels(raw):
    errors = label_errors.load(raw.y_test)
    assert len(errors.indices) == 15 and errors.indices.min() >= 0 and errors.indices.max() < 10_000
    assert np.all(raw.y_test[errors.indices] == errors.given) and np.all(errors.given != errors.proposed)
    assert "Northcutt" in errors.source and all(sum(v) == 5 for v in errors.votes)
    assert errors.standing(10_000).sum() == 9_985
    assert list(errors.within(2000)) == [947, 1621, 1901]  # the first N test images: only those listed there


def test_a_changed_list_or_one_for_another_test_set_is_refused(raw, tmp_path):
    doc = json.loads(label_errors.PATH.read_text())
    doc["errors"][0]["given"] = 3  # image 947 is labelled 8
    path = tmp_path / "errors.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="does not match its SHA-256"):
        label_errors.load(raw.y_test, path)
    with pytest.raises(DataError, match=r"test image\(s\) \[947\] is not the one in the verified test labels"):
        label_errors.load(raw.y_test, path, sha256=None)
    with pytest.raises(DataError, match="is missing: it ships with the project"):
        label_errors.load(raw.y_test, tmp_path / "nothing.json")


def test_accuracy_where_labels_stand_by_hand(raw):
    errors = label_errors.load(raw.y_test)
    y = raw.y_test[:2000]
    pred = y.copy()
    pred[[947, 1621]] = errors.proposed[:2]  # the network agrees with the reviewers on two listed images
    pred[[0, 1, 2]] = (y[[0, 1, 2]] + 1) % 10  # and is wrong on three others
    r = label_errors.accuracy_where_labels_stand(y, pred, errors)
    assert r["n"] == 1997 and r["n_errors"] == 3 and r["accuracy"] == pytest.approx(1 - 3 / 1997)
    assert r["errors_on_listed_images"] == 2 and r["listed_images"] == 3 and r["listed_predicted_as_proposed"] == 2


def test_galleries_mark_the_listed_images(raw):
    x = raw.x_test[:1000].astype("float32") / 255
    fig = plots.error_gallery(x, raw.y_test, (raw.y_test + 1) % 10, np.full(1000, 0.9), [5, 947, 7], label_errors=[947])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[1].endswith("label rejected") and not titles[0].endswith("label rejected")
    assert "orange: label rejected by human reviewers (1 shown)" in fig._suptitle.get_text()
    rows = [{"index": 947, "true": 8, "wrong_runs": 10, "usual_prediction": 9}]
    fig = plots.hard_core_gallery(x, rows, 10, label_errors=[947])
    assert [ax.get_title() for ax in fig.axes if ax.get_title()][0].endswith("label rejected")
    assert plots.error_gallery(x, raw.y_test, raw.y_test, np.ones(1000), [5])._suptitle is None


def test_across_seeds_and_by_network_by_hand(raw):
    errors = label_errors.load(raw.y_test)
    y = raw.y_test[:2000]  # listed here: 947, 1621, 1901
    preds = np.stack([y.copy(), y.copy()])
    preds[:, 947] = 9  # both runs wrong on 947 (given 8): it is in the hard core
    preds[0, 1621] = 6  # one run wrong on 1621
    preds[1, 5] = (y[5] + 1) % 10  # and one ordinary error
    r = label_errors.across_seeds(y, preds, errors, hard_core=[947, 12])
    assert (r["listed"], r["n_standing"], r["in_hard_core"], r["wrong_by_all"]) == (3, 1997, 1, 1)
    assert r["errors_on_listed_images"] == [2, 1] and r["accuracies"] == [1.0, 1 - 1 / 1997]
    assert r["accuracy_where_labels_stand"]["mean"] == pytest.approx(1 - 0.5 / 1997)
    n = label_errors.by_network(y, {"a": preds[0], "b": preds[1]}, errors, runs=list(preds))
    assert n["networks"]["a"]["accuracy_all"] == 1 - 2 / 2000 and n["networks"]["a"]["n_errors_all"] == 2
    assert n["networks"]["b"]["n_errors"] == 1 and n["networks"]["a"]["listed_predicted_as_proposed"] == 2
    assert n["better_mean_where_labels_stand"] == pytest.approx(1 - 0.5 / 1997) and n["listed"] == 3
    short = label_errors.across_seeds(y[:900], preds[:, :900], errors, hard_core=[])  # none listed below 947
    assert (short["listed"], short["n_standing"], short["errors_on_listed_images"]) == (0, 900, [0, 0])


def test_indices_must_be_distinct_and_non_negative(raw, tmp_path):
    doc = json.loads(label_errors.PATH.read_text())
    for bad in (-1, doc["errors"][1]["index"]):
        doc["errors"][0]["index"] = bad
        path = tmp_path / "errors.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(DataError, match="distinct and non-negative"):
            label_errors.load(raw.y_test, path, sha256=None)


def test_by_network_says_whether_the_order_changes_where_labels_stand(raw):
    errors = label_errors.load(raw.y_test)
    y = raw.y_test[:2000]  # listed here: 947, 1621, 1901
    listed_wrong = y.copy()
    listed_wrong[[947, 1621, 1901]] = errors.proposed[:3]  # 3 errors, all on listed images (the reviewers' labels)
    ordinary_wrong = y.copy()
    ordinary_wrong[[3, 4]] = (y[[3, 4]] + 1) % 10  # 2 errors, both where labels stand
    changed = label_errors.by_network(y, {"A": listed_wrong, "B": ordinary_wrong}, errors, runs=[listed_wrong])
    assert changed["order_all"] == ["B", "A"]  # 1998 against 1997 of 2,000 right
    assert changed["order_where_labels_stand"] == ["A", "B"]  # 1997 against 1995 of 1,997 right
    assert changed["ranking_changes"] is True
    # on the 1,997 images whose labels stand A gets all right and B misses 2: exact McNemar p = 2 x 0.5^2
    assert changed["swaps"] == [
        {"ahead_on_all": "B", "ahead_where_labels_stand": "A", "p_value": pytest.approx(0.5), "images_apart": 2}
    ]
    assert changed["networks"]["A"]["accuracy"] == 1.0 and changed["networks"]["B"]["accuracy"] == 1 - 2 / 1997
    assert changed["better_runs"] == 1 and changed["better_mean_where_labels_stand"] == 1.0

    also_ordinary = listed_wrong.copy()
    also_ordinary[[5, 6, 7]] = (y[[5, 6, 7]] + 1) % 10  # now 3 errors where labels stand too: behind B either way
    kept = label_errors.by_network(y, {"A": also_ordinary, "B": ordinary_wrong}, errors, runs=[also_ordinary])
    assert kept["order_all"] == kept["order_where_labels_stand"] == ["B", "A"]
    assert kept["ranking_changes"] is False and kept["listed"] == 3
