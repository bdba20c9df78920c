"""Figures for the step notebooks and the report. Static PNGs: they render offline anywhere."""

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
# Titles, labels and legends show class and run names, which come from the dataset and the
# config: text is shown as it is. Otherwise a name like "$x_1$" renders as math, and one with an
# odd "$" or a backslash stops the figure with a mathtext parse error.
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DIVERGED_COLOUR = "#c62828"  # the report's "not supported" red


def sample_grid(images, labels, classes, per_class: int = 8, seed: int = 0):
    """One row per class with up to per_class random examples."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.95), squeeze=False
    )
    for row, name in enumerate(classes):
        members = np.flatnonzero(labels == row)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for col, ax in enumerate(axes[row]):
            ax.axis("off")
            if col < len(chosen):
                ax.imshow(images[chosen[col]])
        axes[row][0].set_title(name, loc="left", fontsize=8, pad=2)
    fig.tight_layout(pad=0.3)
    return fig


def class_counts(counts: dict):
    """counts: {split: {class: n}} as a grouped bar chart."""
    splits = list(counts)
    classes = list(counts[splits[0]])
    x = np.arange(len(classes))
    width = 0.8 / len(splits)
    fig, ax = plt.subplots(figsize=(max(5, len(classes) * 0.6), 3))
    for i, split in enumerate(splits):
        ax.bar(x + i * width, [counts[split][c] for c in classes], width, label=split)
    ax.set_xticks(x + width * (len(splits) - 1) / 2, classes, rotation=45, ha="right")
    ax.set_ylabel("images")
    ax.legend()
    fig.tight_layout()
    return fig


def training_curves(histories: dict):
    """histories: {label: metrics history list}; train and val loss and accuracy per epoch,
    overlaid (the val split is evaluated after every epoch; test only once, at the end)."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
    for label, history in histories.items():
        epochs = [h["epoch"] for h in history]
        marker = "o" if len(epochs) < 3 else None  # a one-epoch run is a point, not a line
        (line,) = loss_ax.plot(
            epochs, [h["train_loss"] for h in history], "--", marker=marker, label=f"{label} train"
        )
        style = {"color": line.get_color(), "marker": marker}
        loss_ax.plot(epochs, [h["val_loss"] for h in history], label=f"{label} val", **style)
        acc_ax.plot(epochs, [h["train_acc"] for h in history], "--", **style)
        acc_ax.plot(epochs, [h["val_acc"] for h in history], label=f"{label} val", **style)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss (solid: val, dashed: train)")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy (solid: val, dashed: train)", ylim=(0, 1))
    loss_ax.legend(fontsize=7)
    acc_ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def confusion(matrix, classes, title: str = ""):
    """Row-normalized colours, counts written in the cells."""
    matrix = np.asarray(matrix)
    rows = matrix.sum(1, keepdims=True)
    normalized = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    size = max(4, len(classes) * 0.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            colour = "white" if normalized[i, j] > 0.5 else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    fig.tight_layout()
    return fig


def roc_curves(roc: dict, title: str = ""):
    """roc: {class: {fpr, tpr, auc}} (metrics.roc_one_vs_rest by class name), one line each."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    colours = plt.get_cmap("tab10" if len(roc) <= 10 else "tab20")
    for i, (name, curve) in enumerate(roc.items()):
        if curve["auc"] is None:
            continue  # class absent from the test split: no curve
        ax.plot(curve["fpr"], curve["tpr"], color=colours(i % colours.N), lw=1.2,
                label=f"{name} ({curve['auc']:.3f})")  # fmt: skip
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
           title=title or "ROC, one class vs rest (AUC)")  # fmt: skip
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def reliability(calibration: dict, title: str = ""):
    """Accuracy against confidence per bin (metrics.calibration); the diagonal is perfect
    calibration. Bars below it: overconfident. The lower panel shows how many predictions
    fell in each bin, since a gap in a nearly empty bin means little."""
    edges = np.asarray(calibration["edges"])
    width = np.diff(edges)
    accuracy = [a if a is not None else 0 for a in calibration["accuracy"]]
    fig, (ax, count_ax) = plt.subplots(
        2, 1, figsize=(4.5, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.bar(edges[:-1], accuracy, width, align="edge", edgecolor="black", color="#4c72b0",
           label="accuracy")  # fmt: skip
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title=title or f"reliability (ECE {calibration['ece']:.3f})")  # fmt: skip
    ax.legend(fontsize=7, loc="upper left")
    count_ax.bar(edges[:-1], calibration["count"], width, align="edge", color="grey")
    count_ax.set(xlabel="confidence of the predicted class", ylabel="predictions")
    fig.tight_layout()
    return fig


def mistakes_grid(images, mistakes: list, classes, columns: int = 8):
    """The most confident mistakes (metrics.confident_mistakes), each titled true → predicted."""
    if not mistakes:
        fig, ax = plt.subplots(figsize=(4, 0.6))
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center")
        return fig
    rows = -(-len(mistakes) // columns)
    columns = min(columns, len(mistakes))
    # constrained layout leaves room for the two-line titles, which tight_layout clipped
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * 1.25, rows * 1.6), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, mistake in zip(axes.flat, mistakes, strict=False):
        ax.imshow(images[mistake["index"]])
        ax.set_title(
            f"{classes[mistake['true']]}\n→ {classes[mistake['predicted']]} {mistake['confidence']:.0%}",
            fontsize=7,
            pad=2,
        )
    return fig


def accuracy_by_run(summary: dict):
    """summary: {run: [test accuracy of each seed]}; bar = mean, dots = seeds. A run with no
    accuracy (every seed diverged: an empty list) gets no bar, the word "diverged" instead."""
    names = list(summary)
    means = [np.mean(summary[name]) if summary[name] else 0.0 for name in names]
    fig, ax = plt.subplots(figsize=(max(4, len(names) * 1.1), 3))
    ax.bar(range(len(names)), means, color="#4c72b0", width=0.6)
    for i, name in enumerate(names):
        if not summary[name]:
            ax.text(i, 0.02, "diverged", ha="center", fontsize=8, color=DIVERGED_COLOUR)
            continue
        ax.plot([i] * len(summary[name]), summary[name], "o", color="black", ms=4)
        ax.text(i, means[i] + 0.02, f"{means[i]:.1%}", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel="test accuracy", ylim=(0, 1.1), title="test accuracy (bar: mean; dots: seeds)")
    fig.tight_layout()
    return fig


def sweep(points: list, title: str = "", diverged=()):
    """points: [({option: value}, mean test accuracy)] of one sweep over one or two options.
    One option: accuracy against its values; two: a heat map of the grid. diverged: the
    combinations ({option: value}) whose runs diverged, which have no accuracy: a red × at the
    bottom of the curve, the word "diverged" in the heat map's cell."""
    combinations = [p[0] for p in points] + list(diverged)
    keys = list(combinations[0])
    values = [sorted({c[key] for c in combinations}, key=_order) for key in keys]
    if len(keys) == 1:
        fig, ax = plt.subplots(figsize=(5, 3))
        ordered = sorted(((p[0][keys[0]], p[1]) for p in points), key=lambda xy: _order(xy[0]))
        xs, ys = zip(*ordered, strict=True) if ordered else ((), ())
        lost = [c[keys[0]] for c in diverged]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in values[0]):
            ax.plot(xs, ys, "o-", color="#4c72b0")
            if max(values[0]) / min(values[0]) >= 10:
                ax.set_xscale("log")
                _plain_log_ticks(ax.xaxis, max(values[0]) / min(values[0]))
        else:  # categories: each value at its place in the sorted values
            xs, lost = [values[0].index(x) for x in xs], [values[0].index(x) for x in lost]
            ax.plot(xs, ys, "o-", color="#4c72b0")
            ax.set_xticks(range(len(values[0])), [str(x) for x in values[0]])
        if lost:
            ax.plot(lost, [0] * len(lost), "x", color=DIVERGED_COLOUR, ms=9, mew=2, label="diverged")
            ax.legend(fontsize=7)
        ax.set(xlabel=keys[0], ylabel="test accuracy", title=title)
    else:
        grid = np.full([len(v) for v in values], np.nan)
        for combination, accuracy in points:
            grid[values[0].index(combination[keys[0]]), values[1].index(combination[keys[1]])] = accuracy
        fig, ax = plt.subplots(figsize=(1.2 * len(values[1]) + 2.5, 0.6 * len(values[0]) + 1.8))
        known = grid[~np.isnan(grid)]
        low, high = (known.min(), known.max()) if known.size else (0, 1)
        ax.imshow(grid, cmap="viridis", vmin=low, vmax=high, aspect="auto")
        for (i, j), accuracy in np.ndenumerate(grid):
            if not np.isnan(accuracy):
                ax.text(j, i, f"{accuracy:.1%}", ha="center", va="center", color="white", fontsize=9)
        for combination in diverged:
            i, j = values[0].index(combination[keys[0]]), values[1].index(combination[keys[1]])
            ax.text(j, i, "diverged", ha="center", va="center", color=DIVERGED_COLOUR, fontsize=9)
        ax.set_yticks(range(len(values[0])), [str(v) for v in values[0]])
        ax.set_xticks(range(len(values[1])), [str(v) for v in values[1]])
        ax.set(ylabel=keys[0], xlabel=keys[1], title=title)
    fig.tight_layout()
    return fig


def notice(text: str):
    """A plain figure that only says text: what stands where a figure cannot be drawn (e.g.
    "run diverged: no ROC curves"), so that every figure file a step declares exists."""
    fig, ax = plt.subplots(figsize=(5, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color=DIVERGED_COLOUR)
    return fig


def _plain_log_ticks(axis, span: float) -> None:
    """Log-scale ticks labelled as plain numbers (0.01, 1e+06): the scale's own labels are
    mathtext, which shows as raw `$\\mathdefault{10^{-2}}$` with text.parse_math off. At most
    seven decades are labelled; under two decades of span, also 2× and 5× of each."""
    plain = matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}")
    axis.set_major_locator(matplotlib.ticker.LogLocator(numticks=7))
    axis.set_major_formatter(plain)
    if span < 100:
        axis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(2, 5)))
        axis.set_minor_formatter(plain)
    else:
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _order(value):
    """Numbers by size, anything else by its text, numbers first."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value, "") if is_number else (1, 0, str(value))


def save(fig, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
