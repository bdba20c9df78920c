"""Figures for the step notebooks and the report. Static PNGs: they render offline anywhere."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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
    """histories: {label: metrics history list}; loss and accuracy per epoch, overlaid."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
    for label, history in histories.items():
        epochs = [h["epoch"] for h in history]
        (line,) = loss_ax.plot(epochs, [h["train_loss"] for h in history], "--", label=f"{label} train")
        loss_ax.plot(epochs, [h["test_loss"] for h in history], color=line.get_color(), label=f"{label} test")
        acc_ax.plot(epochs, [h["train_acc"] for h in history], "--", color=line.get_color())
        acc_ax.plot(epochs, [h["test_acc"] for h in history], color=line.get_color(), label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss (dashed: train)")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy (dashed: train)", ylim=(0, 1))
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


def save(fig, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
