import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.text import Text

from mnist_report.analysis import evaluate, plots, study


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def ev():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 300)
    proba = rng.random((300, 10))
    proba[np.arange(300), y] += 2  # mostly right
    return evaluate.evaluate(y, proba / proba.sum(1, keepdims=True))


def test_every_figure_is_a_figure_and_saves(ev, tmp_path):
    images = np.random.default_rng(1).random((300, 28, 28, 1)).astype(np.float32)
    figures = {
        "samples": plots.sample_grid(images, ev.y_true, n=12),
        "curves": plots.training_curves(
            {"loss": [1, 0.5], "val_loss": [1.1, 0.6], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}
        ),
        "cm": plots.confusion_heatmap(ev.confusion),
        "per-class": plots.per_class_bars(ev.per_class),
        "pairs": plots.confused_pairs_bar(ev.undirected_pairs, highlight=[(4, 9)]),
        "errors": plots.error_gallery(images, ev.y_true, ev.y_pred, ev.confidence, ev.error_indices[:10]),
        "no errors": plots.error_gallery(images, ev.y_true, ev.y_pred, ev.confidence, []),
        "shared": plots.wrong_count_histogram(np.array([1, 1, 2, 3]), 3),
        "ablation": plots.ablation_scores(ABLATION, reference="full recipe", n_images=6000),
        "cost": plots.accuracy_vs_cost({"a": [0.99, 0.992]}, {"a": ([10.0, 10.0], [0.98, 0.99])}),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure), name
        path = plots.save(fig, tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not list(tmp_path.glob(".*partial*"))


def test_grid_titles_and_heatmap_counts(ev):
    images = np.zeros((3, 28, 28), np.uint8)
    fig = plots.sample_grid(images, np.array([7, 2, 1]))
    assert [ax.get_title() for ax in fig.axes] == ["label 7", "label 2", "label 1"]
    fig = plots.confusion_heatmap(ev.confusion)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert str(ev.confusion[0, 0]) in texts  # counts are written in the cells


def test_curves_plot_each_epoch():
    fig = plots.training_curves({"loss": [3, 2, 1], "val_loss": [3, 2, 2]})
    xs, ys = fig.axes[0].lines[0].get_data()
    assert list(xs) == [1, 2, 3] and list(ys) == [3, 2, 1]


# --- what a reader sees: legends beside the data, labels whole, ticks apart ---------------------


def _draw(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _legends_cover_no_axes(fig):
    """Every legend lies outside every axes, so it covers no data whatever the data are."""
    _draw(fig)
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends
    for legend in legends:
        for ax in fig.axes:
            if ax.axison:
                assert not legend.get_window_extent().overlaps(ax.get_window_extent()), ax.get_title()


def _nothing_outside_the_figure(fig):
    box = fig.get_tightbbox(_draw(fig))  # every drawn artist, in inches
    assert box.x0 >= -0.01 and box.y0 >= -0.01
    assert box.x1 <= fig.get_figwidth() + 0.01 and box.y1 <= fig.get_figheight() + 0.01


def _tick_labels_apart(axis):
    boxes = sorted((t.get_window_extent() for t in axis.get_ticklabels() if t.get_text()), key=lambda b: b.x0)
    assert len(boxes) >= 3
    assert all(a.x1 < b.x0 for a, b in itertools.pairwise(boxes)), [t.get_text() for t in axis.get_ticklabels()]


def _legend_text(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


EMA_HISTORY = {  # a network validated with an average of its weights: near chance for three epochs
    "loss": [0.9, 0.62, 0.58] + [0.55] * 17,
    "accuracy": [0.88, 0.97, 0.98] + [0.995] * 17,
    "val_loss": [5.9, 5.7, 4.0, 1.5, 0.74] + list(np.linspace(0.56, 0.52, 15)),
    "val_accuracy": [0.10, 0.10, 0.11, 0.54, 0.91] + list(np.linspace(0.985, 0.996, 15)),
}


def test_training_curves_keep_late_epochs_readable_and_carry_the_note():
    note = "Epochs 1-3: the averaged weights are still near their start."
    fig = plots.training_curves(EMA_HISTORY, note=note, shade=(1, 3))
    loss, err = fig.axes
    assert loss.get_yscale() == err.get_yscale() == "log"
    val = next(line for line in err.lines if line.get_label() == "validation")
    assert np.allclose(val.get_ydata(), 100 * (1 - np.array(EMA_HISTORY["val_accuracy"])))
    # epochs 6-20 (1.5% to 0.4% error) span a visible part of the axis, not a flat line at the top
    _draw(fig)
    y = err.transAxes.inverted().transform(err.transData.transform(np.c_[val.get_xdata(), val.get_ydata()]))[:, 1]
    assert y[5] - y[-1] > 0.15 and 0 <= y.min() and y.max() <= 1
    assert note in " ".join(t.get_text().replace("\n", " ") for t in fig.findobj(Text))
    assert "epochs 1-3 (see note)" in _legend_text(fig)
    _legends_cover_no_axes(fig)
    _nothing_outside_the_figure(fig)


def test_training_curves_take_ordinary_histories():
    fig = plots.training_curves({"loss": [0.3, 0.1, 0.05], "accuracy": [0.9, 0.99, 1.0]})  # no val_*, a 0% error
    assert [len(ax.lines) for ax in fig.axes] == [1, 1]
    assert np.isnan(fig.axes[1].lines[0].get_ydata()[-1])  # 0% cannot sit on a log scale: left out
    assert _legend_text(fig) == ["training"]
    fig = plots.training_curves({"loss": [0.3, 0.1]})
    assert not fig.axes[1].axison and "accuracy not recorded" in fig.axes[1].texts[0].get_text()


def test_per_class_bars_start_at_zero_with_a_label():
    per_class = [{"digit": d, "precision": 0.99 + d / 1000, "recall": 0.995, "f1": 0.992} for d in range(10)]
    fig = plots.per_class_bars(per_class)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0 and "100% − score" in ax.get_ylabel()
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 30 and np.allclose(heights[:10], [100 * (0.01 - d / 1000) for d in range(10)])
    _legends_cover_no_axes(fig)


def test_wrong_count_histogram_labels_fit_inside_the_axes():
    counts = np.repeat(np.arange(1, 11), [72, 25, 25, 19, 14, 15, 18, 8, 10, 15])
    fig = plots.wrong_count_histogram(counts, 10)
    ax = fig.axes[0]
    _draw(fig)
    frame = ax.get_window_extent()
    labels = [t for t in ax.texts if t.get_text()]
    assert [t.get_text() for t in labels] == ["72", "25", "25", "19", "14", "15", "18", "8", "10", "15"]
    for t in labels:
        box = t.get_window_extent()
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1 and frame.x0 <= box.x0 and box.x1 <= frame.x1, t


def _pairs(counts: dict) -> list[dict]:
    cm = np.zeros((10, 10), int)
    for (a, b), n in counts.items():
        cm[a, b] = n
    return evaluate.ranked_pairs(cm, directed=False)


def test_confused_pairs_say_which_claimed_pairs_are_shown():
    pairs = _pairs(
        {
            (3, 5): 84,
            (2, 7): 83,
            (4, 9): 80,
            (7, 9): 52,
            (5, 9): 47,
            (5, 6): 46,
            (8, 9): 42,
            (0, 6): 41,
            (4, 6): 32,
            (1, 6): 31,
            (1, 7): 25,
            (3, 8): 20,
        }
    )
    fig = plots.confused_pairs_bar(pairs, highlight=[(4, 9), (3, 8)])
    orange = [p for p in fig.axes[0].patches if p.get_facecolor()[:3] == to_rgb(plots.CLAIM_COLOR)]
    assert len(fig.axes[0].patches) == 10 and len(orange) == 1
    assert _legend_text(fig) == ["claimed pair: 4<->9", "claimed pair 3<->8 is not among the bars: rank 12, 20 errors"]
    _legends_cover_no_axes(fig)
    fig = plots.confused_pairs_bar(pairs, top=12, highlight=[(9, 4), (3, 8)])
    assert _legend_text(fig) == ["claimed pairs: 4<->9, 3<->8"]
    assert not plots.confused_pairs_bar(pairs).legends


def test_error_gallery_marks_and_explains_rejected_labels():
    images = np.zeros((20, 28, 28), np.float32)
    y, pred, conf = np.arange(20) % 10, (np.arange(20) + 1) % 10, np.full(20, 0.9)
    fig = plots.error_gallery(images, y, pred, conf, [3, 5], label_errors=np.array([5, 12]))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[1].endswith("label rejected") and not titles[0].endswith("label rejected")
    assert "orange: label rejected by human reviewers (1 shown)" in fig._suptitle.get_text().replace("\n", " ")
    _nothing_outside_the_figure(fig)  # the explanation is wrapped to the narrow grid
    fig = plots.error_gallery(images, y, pred, conf, [3, 4], label_errors=[12])
    assert "none of these images is among the 1" in fig._suptitle.get_text().replace("\n", " ")


ABLATION = [
    {"variant": "full recipe", "seeds": [0, 1, 2], "val_accuracy": [0.9957, 0.9960, 0.9955], "mean": 0.9957333},
    {"variant": "without augmentation", "seeds": [0, 1, 2], "val_accuracy": [0.994, 0.9943, 0.9938], "mean": 0.9940333},
    {
        "variant": "without batch normalisation",
        "seeds": [0, 1, 2],
        "val_accuracy": [0.995, 0.995, 0.9952],
        "mean": 0.9950667,
    },
    {
        "variant": "without weight average and label smoothing",
        "seeds": [0, 1, 2],
        "val_accuracy": [0.9948, 0.9951, 0.9946],
        "mean": 0.9948333,
    },
]


def test_ablation_scores_show_each_seed_and_the_reference():
    fig = plots.ablation_scores(ABLATION, reference="full recipe", n_images=6000)
    ax = fig.axes[0]
    dots = [c.get_offsets() for c in ax.collections]
    assert [len(d) for d in dots] == [3, 3, 3, 3]
    assert np.allclose(dots[1][:, 0], [99.40, 99.43, 99.38])
    ref = next(line for line in ax.lines if line.get_label() == "mean of full recipe")
    assert np.allclose(ref.get_xdata(), 99.57333)
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names[1] == "without augmentation\nmean 99.40%, 3 seeds"
    assert "(%)" in ax.get_xlabel() and "± 1 binomial standard error (6,000 images)" in _legend_text(fig)
    _legends_cover_no_axes(fig)
    _tick_labels_apart(ax.xaxis)
    _nothing_outside_the_figure(fig)
    assert len(plots.ablation_scores(ABLATION).axes[0].lines) == 4  # no reference: the four means only


def test_accuracy_vs_cost_two_panels_with_units():
    ensembles = {"baseline": [0.9921, 0.9935, 0.9941], "final": [0.9955, 0.9962, 0.9964]}
    curves = {"baseline": ([9.5] * 4, [0.985, 0.99, 0.992, 0.993]), "final": ([14.0] * 4, [0.10, 0.54, 0.99, 0.996])}
    fig = plots.accuracy_vs_cost(ensembles, curves)
    ax_e, ax_t = fig.axes
    assert list(ax_e.lines[0].get_xdata()) == [1, 2, 3]
    assert np.allclose(ax_e.lines[1].get_ydata(), [99.55, 99.62, 99.64])
    assert np.allclose(ax_t.lines[0].get_xdata(), [9.5, 19, 28.5, 38]) and ax_t.get_xscale() == "log"
    assert "(%)" in ax_e.get_ylabel() and "%" in ax_t.get_ylabel() and "seconds" in ax_t.get_xlabel()
    # the stretched axis keeps the last epochs apart (99.3% and 99.6%) though one run starts at 10%
    _draw(fig)
    ends = [
        ax_t.transAxes.inverted().transform(ax_t.transData.transform((line.get_xdata()[-1], line.get_ydata()[-1])))
        for line in ax_t.lines
    ]
    assert ends[1][1] - ends[0][1] > 0.05  # on a linear axis: 0.003
    assert _legend_text(fig) == ["baseline", "final"]
    _legends_cover_no_axes(fig)
    _nothing_outside_the_figure(fig)


def test_the_seed_figure_shows_the_interval_a_single_run_is_judged_by():
    summary = {"mean": 0.992, "ci_low": 0.9915, "ci_high": 0.9925, "prediction_low": 0.990, "prediction_high": 0.994}
    fig = plots.seed_accuracies([0, 1, 2], [0.991, 0.992, 0.993], {**summary, "level": 0.95}, 0.9925)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "95% prediction interval of one more run" in labels and "95% CI of the mean" in labels
    assert not fig.axes[0].get_legend()  # outside the axes: it covers no point


def test_accuracy_against_cost_names_the_cpus_its_seconds_come_from():
    curves = {"a": ([10.0, 10.0], [0.98, 0.99]), "b": ([5.0], [0.97])}
    one = plots.accuracy_vs_cost({"a": [0.99]}, curves, trained_on={"a": "CPU A", "b": "CPU A"})
    assert one._supxlabel.get_text().endswith("each run: CPU A")
    two = plots.accuracy_vs_cost({"a": [0.99]}, curves, trained_on={"a": "CPU A", "b": "CPU B"})
    assert two._supxlabel.get_text().endswith("a on CPU A; b on CPU B")
    assert plots.accuracy_vs_cost({"a": [0.99]}, curves)._supxlabel is None


def test_the_reliability_diagram_keeps_its_legend_off_the_bins():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 2000)
    proba = rng.dirichlet(np.full(10, 0.2), 2000)
    proba[np.arange(2000), y] += 1.0  # confident and mostly right, as trained networks are
    proba /= proba.sum(1, keepdims=True)
    curves = {"as trained": study.reliability(y, proba), "with temperature 1.4": study.reliability(y, proba**0.7)}
    fig = plots.reliability_diagram(curves)
    assert _legend_text(fig) == ["perfect calibration", "as trained", "with temperature 1.4"]
    _legends_cover_no_axes(fig)
    _nothing_outside_the_figure(fig)
