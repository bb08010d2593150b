import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from mnist_report import plots
from mnist_report.evaluate import evaluate


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
    return evaluate(y, proba / proba.sum(1, keepdims=True))


def test_every_figure_is_a_figure_and_saves(ev, tmp_path):
    images = np.random.default_rng(1).random((300, 28, 28, 1)).astype(np.float32)
    figures = {
        "samples": plots.sample_grid(images, ev.y_true, n=12),
        "curves": plots.training_curves({"loss": [1, 0.5], "val_loss": [1.1, 0.6],
                                         "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}),
        "cm": plots.confusion_heatmap(ev.confusion),
        "per-class": plots.per_class_bars(ev.per_class),
        "pairs": plots.confused_pairs_bar(ev.undirected_pairs, highlight=[(4, 9)]),
        "errors": plots.error_gallery(images, ev.y_true, ev.y_pred, ev.confidence, ev.error_indices[:10]),
        "no errors": plots.error_gallery(images, ev.y_true, ev.y_pred, ev.confidence, []),
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
