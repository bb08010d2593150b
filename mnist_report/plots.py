"""Figures.  Each function takes data and returns a matplotlib Figure; ``save`` writes it atomically."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from mnist_report.io import atomic_path

LABEL_NOTE = "\nlabel rejected"  # caption of an image whose test label reviewers rejected
LABEL_COLOR = "darkorange"


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) atomically, with fixed metadata."""
    path = Path(path)
    with atomic_path(path) as tmp:
        # no creation date or software version in the file: the same figure gives the same bytes
        meta = {"Software": None} if path.suffix == ".png" else {}
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata=meta)
    return path


def image_grid(
    images: np.ndarray, titles: list[str], ncols: int = 10, title: str | None = None, title_colors=None
) -> Figure:
    """Images (N, 28, 28[, 1]) in a grid, each with a short caption."""
    n = len(images)
    if n == 0:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "(no images)", ha="center", va="center")
        return fig
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.15 * ncols, 1.35 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            vmax = 1 if images.dtype.kind == "f" else 255
            ax.imshow(np.asarray(images[i]).reshape(28, 28), cmap="gray_r", vmin=0, vmax=vmax)
            color = title_colors[i] if title_colors is not None else "black"
            ax.set_title(titles[i], fontsize=8, color=color)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def sample_grid(images: np.ndarray, labels: np.ndarray, n: int = 30, ncols: int = 10) -> Figure:
    """The first ``n`` images with their labels."""
    n = min(n, len(images))
    return image_grid(images[:n], [f"label {int(y)}" for y in labels[:n]], ncols=ncols)


def error_gallery(images, y_true, y_pred, confidence, indices, ncols: int = 8, label_errors=()) -> Figure:
    """Misclassified images: true label, predicted label and the model's confidence in it. Images in
    ``label_errors`` (indices whose label reviewers rejected) are captioned so, in orange."""
    indices = np.asarray(indices, dtype=int)
    listed = set(np.asarray(label_errors, dtype=int).tolist())
    titles = [f"#{i}: {y_true[i]}→{y_pred[i]}\n{confidence[i]:.0%}" + (LABEL_NOTE if i in listed else "")
              for i in indices]  # fmt: skip
    colors = [LABEL_COLOR if i in listed else "firebrick" for i in indices]
    return image_grid(images[indices], titles, ncols=ncols, title_colors=colors, title=_legend(indices, listed))


def preprocessing_examples(originals, images, labels, proba) -> Figure:
    """Each image as given (top row) and made MNIST-like, 28x28, with the prediction (bottom row):
    the digit predicted and its probability, red where it is not ``labels``."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3.0), squeeze=False)
    for k in range(n):
        top, bottom = axes[0, k], axes[1, k]
        top.imshow(np.asarray(originals[k]), cmap="gray", vmin=0, vmax=255)
        top.set_title(f"given: {labels[k]}", fontsize=8)
        bottom.imshow(np.asarray(images[k]).reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
        guess = int(np.argmax(proba[k]))
        bottom.set_title(f"{guess} ({proba[k][guess]:.0%})", fontsize=8,
                         color="black" if guess == labels[k] else "firebrick")  # fmt: skip
        top.axis("off")
        bottom.axis("off")
    axes[0, 0].text(-0.15, 0.5, "image", rotation=90, va="center", ha="right", transform=axes[0, 0].transAxes)
    axes[1, 0].text(-0.15, 0.5, "28x28", rotation=90, va="center", ha="right", transform=axes[1, 0].transAxes)
    fig.tight_layout()
    return fig


def training_curves(history: dict[str, list[float]]) -> Figure:
    """Loss and accuracy per epoch, training and validation side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label, style in ((metric, "training", "-o"), (f"val_{metric}", "validation", "-s")):
            if key in history:
                values = history[key]
                ax.plot(range(1, len(values) + 1), values, style, label=label, markersize=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def confusion_heatmap(cm: np.ndarray, title: str = "Confusion matrix (test set)") -> Figure:
    """Counts in every cell; colour on a log scale so that the few errors stand out."""
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    sns.heatmap(
        cm,
        annot=True,
        fmt="d",
        cmap="viridis",
        norm=LogNorm(vmin=1, vmax=max(int(cm.max()), 2)),
        mask=cm == 0,
        cbar_kws={"label": "count (log scale; blank = 0)"},
        linewidths=0.5,
        linecolor="lightgrey",
        square=True,
        annot_kws={"fontsize": 8},
        ax=ax,
    )
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def per_class_bars(per_class: list[dict]) -> Figure:
    """Precision, recall and F1 per digit, zoomed in on the range where they differ."""
    digits = [r["digit"] for r in per_class]
    fig, ax = plt.subplots(figsize=(10, 3.4))
    width = 0.27
    lows = []
    for j, metric in enumerate(("precision", "recall", "f1")):
        values = [r[metric] for r in per_class]
        lows.append(min(values))
        ax.bar(np.array(digits) + (j - 1) * width, values, width, label=metric)
    ax.set_ylim(max(0.0, min(lows) - 0.01), 1.0)
    ax.set_xticks(digits)
    ax.set_xlabel("digit")
    ax.set_title("Per-class precision, recall and F1 (test set)")
    ax.legend(ncols=3, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def confused_pairs_bar(pairs: list[dict], top: int = 10, highlight=()) -> Figure:
    """The most frequent confusions (both directions combined), the claimed pairs highlighted."""
    rows = [r for r in pairs[:top] if r["count"] > 0]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    highlight = {tuple(sorted(p)) for p in highlight}
    colors = ["darkorange" if tuple(r["digits"]) in highlight else "steelblue" for r in rows]
    ax.bar([r["pair"] for r in rows], [r["count"] for r in rows], color=colors)
    ax.set_ylabel("errors")
    ax.set_title("Most confused digit pairs (orange: the claimed pairs)" if highlight else "Most confused digit pairs")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


# --- across seeds (the multi-seed study) -------------------------------------------------------


def seed_accuracies(seeds, accuracies, summary: dict, claimed: float) -> Figure:
    """Each run's test accuracy, the mean with its confidence interval, and the claimed value."""
    acc = np.asarray(accuracies) * 100
    fig, ax = plt.subplots(figsize=(8, 3.4))
    x = np.arange(len(acc))
    ax.axhspan(summary["ci_low"] * 100, summary["ci_high"] * 100, color="steelblue", alpha=0.18,
               label=f"{summary['level']:.0%} CI of the mean")  # fmt: skip
    ax.axhline(summary["mean"] * 100, color="steelblue", lw=1.5, label=f"mean {summary['mean']:.2%}")
    ax.axhline(claimed * 100, color="darkorange", ls="--", lw=1.5, label=f"claimed {claimed:.2%}")
    ax.plot(x, acc, "o", color="black", label="one run (seed)")
    ax.set_xticks(x, [str(s) for s in seeds])
    ax.set_xlabel("seed")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy of each run")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def digit_error_rates(rates: np.ndarray) -> Figure:
    """Per-digit error rate across runs: mean and standard deviation as bars, each run as a dot."""
    rates = np.asarray(rates) * 100
    digits = np.arange(rates.shape[1])
    fig, ax = plt.subplots(figsize=(8, 3.4))
    std = rates.std(axis=0, ddof=1) if len(rates) > 1 else np.zeros(rates.shape[1])
    ax.bar(digits, rates.mean(axis=0), yerr=std, color="steelblue", alpha=0.7, capsize=3,
           label="mean +- std over runs")  # fmt: skip
    jitter = np.linspace(-0.25, 0.25, len(rates)) if len(rates) > 1 else np.zeros(1)
    for j, row in enumerate(rates):
        ax.plot(digits + jitter[j], row, ".", color="black", markersize=3, label="one run" if j == 0 else None)
    ax.set_xticks(digits)
    ax.set_xlabel("true digit")
    ax.set_ylabel("test images misclassified (%)")
    ax.set_title("Error rate per digit across runs")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def wrong_count_histogram(counts: np.ndarray, n_runs: int) -> Figure:
    """How many test images are misclassified by exactly k of the runs, k = 1..n_runs."""
    k = np.arange(1, n_runs + 1)
    n = np.bincount(np.asarray(counts), minlength=n_runs + 1)[1:]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar(k, n, color="firebrick", alpha=0.8)
    for ki, ni in zip(k, n, strict=True):
        ax.text(ki, ni, str(ni), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(k)
    ax.set_xlabel("number of runs that misclassify the image")
    ax.set_ylabel("test images")
    ax.set_title("Errors shared between runs")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def reliability_diagram(curves: dict[str, dict]) -> Figure:
    """Accuracy against mean confidence per confidence bin (left), and how many images each bin holds.

    ``curves`` maps a label to ``study.reliability``'s result.
    """
    fig, (ax, ax_n) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1.2, 1]})
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    for (label, r), marker in zip(curves.items(), "osd^v", strict=False):
        ax.plot(r["confidence"], r["accuracy"], f"-{marker}", markersize=4, label=label)
        ax_n.plot(r["confidence"], r["count"], f"-{marker}", markersize=4, label=label)
    ax.set_xlabel("confidence (probability of the predicted digit)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram (test set)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax_n.set_yscale("log")
    ax_n.set_xlabel("confidence")
    ax_n.set_ylabel("images in the bin (log scale)")
    ax_n.set_title("Where the predictions lie")
    ax_n.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def hard_core_gallery(images: np.ndarray, rows: list[dict], n_runs: int, ncols: int = 10, label_errors=()) -> Figure:
    """The images most runs get wrong: index, true digit -> usual wrong answer, runs wrong; images in
    ``label_errors`` captioned so, in orange."""
    idx = np.asarray([r["index"] for r in rows], dtype=int)
    listed = set(np.asarray(label_errors, dtype=int).tolist())
    titles = [f"#{r['index']}: {r['true']}→{r['usual_prediction']}\n{r['wrong_runs']}/{n_runs} wrong"
              + (LABEL_NOTE if r["index"] in listed else "") for r in rows]  # fmt: skip
    colors = [LABEL_COLOR if i in listed else "firebrick" for i in idx]
    return image_grid(images[idx], titles, ncols=ncols, title_colors=colors, title=_legend(idx, listed))


def _legend(indices, listed: set) -> str | None:
    n = len(listed.intersection(np.asarray(indices).tolist()))
    return f"orange: label rejected by human reviewers ({n} shown)" if n else None


def tuning_results(trials: list[dict], claimed: float | None = None) -> Figure:
    """Each trial's validation accuracy against its learning rate; colour: batch size, size: dense width.
    ``claimed``: the original experiment's claimed test accuracy, drawn as a line for scale."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    batch_sizes = sorted({t["batch_size"] for t in trials})
    palette = dict(zip(batch_sizes, sns.color_palette("viridis", len(batch_sizes)), strict=True))
    for b in batch_sizes:
        rows = [t for t in trials if t["batch_size"] == b]
        ax.scatter([t["learning_rate"] for t in rows], [t["val_accuracy"] * 100 for t in rows],
                   s=[t["dense_units"] / 2 + 10 for t in rows], color=palette[b], alpha=0.8,
                   label=f"batch {b}")  # fmt: skip
    best = trials[0]
    ax.scatter([best["learning_rate"]], [best["val_accuracy"] * 100], s=160, facecolors="none",
               edgecolors="firebrick", linewidths=1.5, label="selected")  # fmt: skip
    if claimed is not None:
        ax.axhline(claimed * 100, color="darkorange", ls="--", lw=1, label=f"claimed test accuracy {claimed:.2%}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale); marker size: dense-layer width")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"Hyperparameter search: {len(trials)} trials, scored on the validation split")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def candidate_scores(rows: list[dict], chosen: str) -> Figure:
    """Each candidate recipe's validation accuracy: one dot per seed, a bar at the mean, and the same
    with test-time augmentation (open markers); the chosen candidate's name in bold."""
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.6))
    for y, r in enumerate(rows):
        plain, tta = np.asarray(r["val_accuracy"]) * 100, np.asarray(r["tta_val_accuracy"]) * 100
        ax.scatter(plain, [y - 0.1] * len(plain), color="steelblue", s=30, zorder=3,
                   label="one seed" if y == 0 else None)  # fmt: skip
        ax.scatter(tta, [y + 0.1] * len(tta), facecolors="none", edgecolors="seagreen", s=30, zorder=3,
                   label="one seed, test-time augmentation" if y == 0 else None)  # fmt: skip
        ax.plot([plain.mean()] * 2, [y - 0.3, y + 0.05], color="steelblue", lw=2, label="mean" if y == 0 else None)
        ax.plot([tta.mean()] * 2, [y - 0.05, y + 0.3], color="seagreen", lw=2, ls=":",
                label="mean, test-time augmentation" if y == 0 else None)  # fmt: skip
    ax.set_yticks(range(len(rows)), [r["candidate"] for r in rows])
    for label, r in zip(ax.get_yticklabels(), rows, strict=True):
        label.set_fontweight("bold" if r["candidate"] == chosen else "normal")
    ax.invert_yaxis()
    ax.set_xlabel("validation accuracy (%)")
    ax.set_title("Candidate recipes, scored on the validation split only (chosen: bold)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
