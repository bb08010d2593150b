"""Figures.  Each function takes data and returns a matplotlib Figure; ``save`` writes it atomically."""

from __future__ import annotations

import itertools
import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from mnist_report.analysis.evaluate import binomial_se
from mnist_report.io import atomic_path

LABEL_NOTE = "\nlabel rejected"  # caption of an image whose test label reviewers rejected
LABEL_COLOR = "darkorange"
CLAIM_COLOR = "darkorange"  # a claimed confusion pair


def _legend_outside(fig: Figure, handles: list, where: str = "lower center", ncols: int = 4) -> None:
    """A figure legend outside the axes (constrained layout makes room for it), so it covers no data."""
    if handles:
        fig.legend(handles=handles, loc=f"outside {where}", ncols=min(ncols, len(handles)), fontsize=8, frameon=False)


def _percent_ticks(axis) -> None:
    """At most about six ticks at round steps (0.01, 0.02, 0.05, ...), written in full, no offset:
    accuracies in percent that differ in the second decimal stay readable."""
    axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
    axis.get_major_formatter().set_useOffset(False)


def _log_ticks(axis, fmt: str = "{:g}", accuracy: bool = False) -> None:
    """Labelled ticks on a log axis at 1-2-5 steps (every step under one decade, decades only over
    three), written with ``fmt``. ``accuracy``: the axis is an accuracy in percent stretched by
    ``_stretch`` (the log of the error rate), ticked where the error rate would be."""
    lo, hi = sorted(axis.get_view_interval())
    if accuracy:
        lo, hi = max(100 - hi, 1e-3), 100 - lo
    decades = math.log10(hi / lo)
    subs = np.arange(1.0, 10.0) if decades < 1 else (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
    ticks = [t for t in LogLocator(subs=subs).tick_values(lo, hi) if lo <= t <= hi]
    if accuracy:  # no tick at 0% (it sits right by 10%); one at 10%, chance for ten digits, instead
        ticks = [t for t in ticks if t < 100] + ([90.0] if lo <= 90 <= hi else [])
    axis.set_major_locator(FixedLocator([100 - t for t in ticks] if accuracy else ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt.format(float(f"{v:.6g}"))))
    axis.set_minor_formatter(NullFormatter())


def _stretch(accuracy):
    """Accuracy (%) to the axis position: minus the log of the error rate, so 90, 99, 99.9 are evenly spaced."""
    return -np.log10(np.clip(100 - np.asarray(accuracy, dtype=float), 1e-3, None))


def _unstretch(position):
    return 100 - 10 ** -np.asarray(position, dtype=float)


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
    lines = title.split("\n") if title else []
    width = max(1.15 * ncols, 0.08 * max(map(len, lines), default=0))  # a title line fits: ~0.075 in a character
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 1.35 * nrows + 0.25 * len(lines)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            vmax = 1 if images.dtype.kind == "f" else 255
            ax.imshow(np.asarray(images[i]).reshape(28, 28), cmap="gray_r", vmin=0, vmax=vmax)
            color = title_colors[i] if title_colors is not None else "black"
            ax.set_title(titles[i], fontsize=8, color=color)
    if title:
        fig.suptitle(title, fontsize=10)
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
    titles = [
        f"#{i}: {y_true[i]}→{y_pred[i]}\n{confidence[i]:.0%}" + (LABEL_NOTE if i in listed else "") for i in indices
    ]
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
        bottom.set_title(
            f"{guess} ({proba[k][guess]:.0%})", fontsize=8, color="black" if guess == labels[k] else "firebrick"
        )
        top.axis("off")
        bottom.axis("off")
    axes[0, 0].text(-0.15, 0.5, "image", rotation=90, va="center", ha="right", transform=axes[0, 0].transAxes)
    axes[1, 0].text(-0.15, 0.5, "28x28", rotation=90, va="center", ha="right", transform=axes[1, 0].transAxes)
    fig.tight_layout()
    return fig


def training_curves(
    history: dict[str, list[float]], note: str | None = None, shade: tuple[int, int] | None = None
) -> Figure:
    """Loss and error rate (100% - accuracy) per epoch, training and validation, both on a log scale: a
    validation curve that starts far off (weights averaged from their start) then does not flatten the
    rest. ``note``: a caption under the panels; ``shade``: epochs (first, last) to shade, e.g. those the
    note explains."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    panels = (
        ("loss", "loss", "loss (log scale)", "{:g}"),
        ("accuracy", "error rate = 100% − accuracy", "error rate (%, log scale)", "{:g}%"),
    )
    for ax, (metric, title, ylabel, fmt) in zip(axes, panels, strict=True):
        if shade is not None:
            ax.axvspan(
                shade[0] - 0.5,
                shade[1] + 0.5,
                color="grey",
                alpha=0.15,
                lw=0,
                label=f"epochs {shade[0]}-{shade[1]}" + (" (see note)" if note else ""),
            )
        for key, label, style, color in ((metric, "training", "-o", "C0"), (f"val_{metric}", "validation", "-s", "C1")):
            if key in history:
                y = np.asarray(history[key], dtype=float)
                y = 100 * (1 - y) if metric == "accuracy" else y
                y[y <= 0] = np.nan  # a log scale cannot show 0 (a perfect epoch): that point is left out
                ax.plot(np.arange(1, len(y) + 1), y, style, color=color, label=label, markersize=4)
        ax.set_title(title)
        if not ax.lines:
            ax.axis("off")
            ax.text(0.5, 0.5, f"({metric} not recorded)", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.set_yscale("log")
        _log_ticks(ax.yaxis, fmt)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}  # each label once
    _legend_outside(fig, list(handles.values()), "upper center")
    if note:
        fig.supxlabel(textwrap.fill(note, 140), fontsize=9, x=0.01, ha="left")  # a caption: layout makes room
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
    """Per digit, how far precision, recall and F1 fall short of 100%, as bars from zero: the scores differ
    by fractions of a percent, and bars of the scores themselves would need an axis cut off below."""
    digits = np.array([r["digit"] for r in per_class])
    fig, ax = plt.subplots(figsize=(10, 3.6), layout="constrained")
    width = 0.27
    for j, (metric, label) in enumerate((("precision", "precision"), ("recall", "recall"), ("f1", "F1"))):
        ax.bar(digits + (j - 1) * width, [100 * (1 - r[metric]) for r in per_class], width, label=label)
    ax.set_xticks(digits)
    ax.set_xlabel("digit")
    ax.set_ylabel("100% − score (percentage points)")
    ax.set_title("Per-class shortfall from 100% of precision, recall and F1 (test set; lower is better)")
    ax.grid(axis="y", alpha=0.3)
    _legend_outside(fig, ax.get_legend_handles_labels()[0])
    return fig


def confused_pairs_bar(pairs: list[dict], top: int = 10, highlight=(), title: str | None = None) -> Figure:
    """The ``top`` most frequent confusions (both directions combined), each bar labelled with its count.
    Claimed pairs (``highlight``) among them are orange; the legend names them, and names any claimed pair
    not among the bars, with its rank and count."""
    rows = [r for r in pairs[:top] if r["count"] > 0]
    claimed = [tuple(sorted(p)) for p in highlight]
    shown = {tuple(r["digits"]) for r in rows}
    by_pair = {tuple(r["digits"]): r for r in pairs}
    fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
    colors = [CLAIM_COLOR if tuple(r["digits"]) in claimed else "steelblue" for r in rows]
    bars = ax.bar([r["pair"] for r in rows], [r["count"] for r in rows], color=colors)
    ax.bar_label(bars, fontsize=8, padding=2)
    ax.set_ylim(0, max([r["count"] for r in rows], default=1) * 1.15)  # headroom for the labels
    handles = []
    hits = [f"{a}<->{b}" for a, b in claimed if (a, b) in shown]
    if hits:
        handles.append(Patch(color=CLAIM_COLOR, label=f"claimed pair{'s' if len(hits) > 1 else ''}: {', '.join(hits)}"))
    for a, b in claimed:
        if (a, b) not in shown:
            r = by_pair.get((a, b))
            where = f"rank {r['rank']}, {r['count']} errors" if r else "no count given"
            handles.append(Patch(color="none", label=f"claimed pair {a}<->{b} is not among the bars: {where}"))
    ax.set_xlabel("digit pair")
    ax.set_ylabel("errors (both directions)")
    ax.set_title(title or f"The {len(rows)} most confused digit pairs")
    ax.grid(axis="y", alpha=0.3)
    _legend_outside(fig, handles, ncols=1)
    return fig


# --- across seeds (the multi-seed study) -------------------------------------------------------


def seed_accuracies(seeds, accuracies, summary: dict, claimed: float) -> Figure:
    """Each run's test accuracy, the mean with its confidence interval, the prediction interval of one
    more run (what a single run's claim is judged by), and the claimed value."""
    acc = np.asarray(accuracies) * 100
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    x = np.arange(len(acc))
    ax.axhspan(
        summary["prediction_low"] * 100,
        summary["prediction_high"] * 100,
        color="grey",
        alpha=0.12,
        label=f"{summary['level']:.0%} prediction interval of one more run",
    )
    ax.axhspan(
        summary["ci_low"] * 100,
        summary["ci_high"] * 100,
        color="steelblue",
        alpha=0.18,
        label=f"{summary['level']:.0%} CI of the mean",
    )
    ax.axhline(summary["mean"] * 100, color="steelblue", lw=1.5, label=f"mean {summary['mean']:.2%}")
    ax.axhline(claimed * 100, color="darkorange", ls="--", lw=1.5, label=f"claimed {claimed:.2%}")
    ax.plot(x, acc, "o", color="black", label="one run (seed)")
    ax.set_xticks(x, [str(s) for s in seeds])
    ax.set_xlabel("seed")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy of each run")
    ax.grid(axis="y", alpha=0.3)
    _legend_outside(fig, ax.get_legend_handles_labels()[0], ncols=3)
    return fig


def digit_error_rates(rates: np.ndarray) -> Figure:
    """Per-digit error rate across runs: mean and standard deviation as bars, each run as a dot."""
    rates = np.asarray(rates) * 100
    digits = np.arange(rates.shape[1])
    fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
    std = rates.std(axis=0, ddof=1) if len(rates) > 1 else np.zeros(rates.shape[1])
    ax.bar(digits, rates.mean(axis=0), yerr=std, color="steelblue", alpha=0.7, capsize=3, label="mean +- std over runs")
    jitter = np.linspace(-0.25, 0.25, len(rates)) if len(rates) > 1 else np.zeros(1)
    for j, row in enumerate(rates):
        ax.plot(digits + jitter[j], row, ".", color="black", markersize=3, label="one run" if j == 0 else None)
    ax.set_xticks(digits)
    ax.set_xlabel("true digit")
    ax.set_ylabel("test images misclassified (%)")
    ax.set_title("Error rate per digit across runs")
    ax.grid(axis="y", alpha=0.3)
    _legend_outside(fig, ax.get_legend_handles_labels()[0])
    return fig


def wrong_count_histogram(counts: np.ndarray, n_runs: int) -> Figure:
    """How many test images are misclassified by exactly k of the runs, k = 1..n_runs."""
    k = np.arange(1, n_runs + 1)
    n = np.bincount(np.asarray(counts), minlength=n_runs + 1)[1:]
    fig, ax = plt.subplots(figsize=(8, 3.2), layout="constrained")
    bars = ax.bar(k, n, color="firebrick", alpha=0.8)
    ax.bar_label(bars, fontsize=8, padding=2)
    ax.set_ylim(0, max(int(n.max()), 1) * 1.15)  # headroom: the tallest bar's label stays inside
    ax.set_xticks(k)
    ax.set_xlabel("number of runs that misclassify the image")
    ax.set_ylabel("test images")
    ax.set_title("Errors shared between runs")
    ax.grid(axis="y", alpha=0.3)
    return fig


def reliability_diagram(curves: dict[str, dict]) -> Figure:
    """Accuracy against mean confidence per confidence bin (left), and how many images each bin holds.

    ``curves`` maps a label to ``study.reliability``'s result.
    """
    fig, (ax, ax_n) = plt.subplots(
        1, 2, figsize=(10, 4.4), gridspec_kw={"width_ratios": [1.2, 1]}, layout="constrained"
    )
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    for (label, r), marker in zip(curves.items(), "osd^v", strict=False):
        ax.plot(r["confidence"], r["accuracy"], f"-{marker}", markersize=4, label=label)
        ax_n.plot(r["confidence"], r["count"], f"-{marker}", markersize=4, label=label)
    ax.set_xlabel("confidence (probability of the predicted digit)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram (test set)")
    ax.grid(alpha=0.3)
    _legend_outside(fig, ax.get_legend_handles_labels()[0])
    ax_n.set_yscale("log")
    ax_n.set_xlabel("confidence")
    ax_n.set_ylabel("images in the bin (log scale)")
    ax_n.set_title("Where the predictions lie")
    ax_n.grid(alpha=0.3)
    return fig


def hard_core_gallery(images: np.ndarray, rows: list[dict], n_runs: int, ncols: int = 10, label_errors=()) -> Figure:
    """The images most runs get wrong: index, true digit -> usual wrong answer, runs wrong; images in
    ``label_errors`` captioned so, in orange."""
    idx = np.asarray([r["index"] for r in rows], dtype=int)
    listed = set(np.asarray(label_errors, dtype=int).tolist())
    titles = [
        f"#{r['index']}: {r['true']}→{r['usual_prediction']}\n{r['wrong_runs']}/{n_runs} wrong"
        + (LABEL_NOTE if r["index"] in listed else "")
        for r in rows
    ]
    colors = [LABEL_COLOR if i in listed else "firebrick" for i in idx]
    return image_grid(images[idx], titles, ncols=ncols, title_colors=colors, title=_legend(idx, listed))


def _legend(indices, listed: set) -> str | None:
    """The title of a gallery that marks images whose label reviewers rejected; None where none is listed."""
    if not listed:
        return None
    n = len(listed.intersection(np.asarray(indices).tolist()))
    if n:
        return f"orange: label rejected by human reviewers ({n} shown)\nthere the label, not the network, may be wrong"
    return f"none of these images is among the {len(listed)} whose label human reviewers rejected"


def tuning_results(trials: list[dict], claimed: float | None = None) -> Figure:
    """Each trial's validation accuracy against its learning rate; colour: batch size, size: dense width.
    ``claimed``: the original experiment's claimed test accuracy, drawn as a line for scale."""
    fig, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
    batch_sizes = sorted({t["batch_size"] for t in trials})
    palette = dict(zip(batch_sizes, sns.color_palette("viridis", len(batch_sizes)), strict=True))
    for b in batch_sizes:
        rows = [t for t in trials if t["batch_size"] == b]
        ax.scatter(
            [t["learning_rate"] for t in rows],
            [t["val_accuracy"] * 100 for t in rows],
            s=[t["dense_units"] / 2 + 10 for t in rows],
            color=palette[b],
            alpha=0.8,
            label=f"batch {b}",
        )
    best = trials[0]
    ax.scatter(
        [best["learning_rate"]],
        [best["val_accuracy"] * 100],
        s=160,
        facecolors="none",
        edgecolors="firebrick",
        linewidths=1.5,
        label="selected",
    )
    if claimed is not None:
        ax.axhline(claimed * 100, color="darkorange", ls="--", lw=1, label=f"claimed test accuracy {claimed:.2%}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale); marker size: dense-layer width")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"Hyperparameter search: {len(trials)} trials, scored on the validation split")
    ax.grid(alpha=0.3)
    _legend_outside(fig, ax.get_legend_handles_labels()[0], ncols=3)
    return fig


def ablation_scores(
    rows: list[dict],
    reference: str | None = None,
    n_images: int | None = None,
    title: str = "What each part of the recipe adds: validation accuracy without it",
) -> Figure:
    """Each variant's validation accuracy (``rows``: variant, seeds, val_accuracy, mean): one dot per seed,
    a line at the mean, the mean also written under the name. ``reference``: a variant whose mean is drawn
    across all rows; with ``n_images``, shaded one binomial standard error either side of it (how much one
    accuracy measured on that many images varies by chance)."""
    fig, ax = plt.subplots(figsize=(8, 0.7 * len(rows) + 2.0), layout="constrained")
    if reference is not None:
        ref = next(r["mean"] for r in rows if r["variant"] == reference) * 100
        if n_images:
            se = binomial_se(ref / 100, n_images) * 100
            ax.axvspan(
                ref - se,
                ref + se,
                color="grey",
                alpha=0.15,
                lw=0,
                label=f"± 1 binomial standard error ({n_images:,} images)",
            )
        ax.axvline(ref, color="grey", ls="--", lw=1, label=f"mean of {reference}")
    for y, r in enumerate(rows):
        acc = np.asarray(r["val_accuracy"]) * 100
        jitter = np.linspace(-0.12, 0.12, len(acc)) if len(acc) > 1 else np.zeros(1)  # equal scores stay visible
        ax.scatter(acc, y + jitter, color="steelblue", s=30, zorder=3, label="one seed" if y == 0 else None)
        ax.plot([r["mean"] * 100] * 2, [y - 0.3, y + 0.3], color="black", lw=2, label="mean" if y == 0 else None)
    names = [f"{r['variant']}\nmean {r['mean']:.2%}, {len(r['seeds'])} seeds" for r in rows]
    ax.set_yticks(range(len(rows)), names)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first row on top
    _percent_ticks(ax.xaxis)
    ax.set_xlabel("validation accuracy (%)")
    fig.suptitle(title)  # centred on the figure, not over the axes beside the long names
    ax.grid(axis="x", alpha=0.3)
    _legend_outside(fig, ax.get_legend_handles_labels()[0])
    return fig


def accuracy_vs_cost(
    ensembles: dict[str, list[float]],
    curves: dict[str, tuple[list[float], list[float]]],
    log_time: bool = True,
    trained_on: dict[str, str] | None = None,
) -> Figure:
    """(a) Test accuracy of an ensemble of 1..N networks, per kind of network (``ensembles``: name ->
    accuracy with 1, 2, ... members). (b) Validation accuracy after each epoch against the training time
    spent so far (``curves``: name -> (seconds of each epoch, validation accuracy after it)); the accuracy
    axis is stretched towards 100% (log of the error rate), so a run that starts near chance, as one whose
    weights are averaged does, does not flatten the rest. ``trained_on``: name -> the CPU whose seconds
    (b) shows, said under the panels."""
    names = list(dict.fromkeys([*ensembles, *curves]))
    style = {n: {"color": f"C{i % 10}", "marker": m} for i, (n, m) in enumerate(zip(names, itertools.cycle("osD^v")))}
    fig, (ax_e, ax_t) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for name, acc in ensembles.items():
        ax_e.plot(np.arange(1, len(acc) + 1), np.asarray(acc) * 100, "-", markersize=5, **style[name])
    ax_e.xaxis.set_major_locator(MaxNLocator(integer=True))
    _percent_ticks(ax_e.yaxis)
    ax_e.set_xlabel("networks in the ensemble")
    ax_e.set_ylabel("test accuracy (%)")
    ax_e.set_title("(a) accuracy against ensemble size", fontsize=10)
    for name, (seconds, acc) in curves.items():
        ax_t.plot(np.cumsum(seconds), np.asarray(acc) * 100, "-", markersize=4, **style[name])
    ax_t.set_yscale("function", functions=(_stretch, _unstretch))
    _log_ticks(ax_t.yaxis, "{:g}", accuracy=True)
    if log_time:
        ax_t.set_xscale("log")
        _log_ticks(ax_t.xaxis, "{:g}")
    ax_t.set_xlabel("training time so far (seconds" + (", log scale)" if log_time else ")"))
    ax_t.set_ylabel("validation accuracy (%)")
    ax_t.set_title(
        "(b) accuracy against training time, one point per epoch\n"
        "(accuracy axis stretched near 100%: a log scale of the error rate)",
        fontsize=10,
    )
    for ax in (ax_e, ax_t):
        ax.grid(alpha=0.3)
    _legend_outside(fig, [Line2D([], [], label=n, **style[n]) for n in names])
    if trained_on:
        cpus = set(trained_on.values())
        where = next(iter(cpus)) if len(cpus) == 1 else "; ".join(f"{n} on {c}" for n, c in trained_on.items())
        fig.supxlabel(f"(b): seconds of the CPU that trained each run: {where}", fontsize=9, x=0.01, ha="left")
    return fig
