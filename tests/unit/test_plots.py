"""Every figure the analysis and the report draw renders to a real PNG, also in edge cases."""

import numpy as np
import pytest
from labbook import metrics, plots
from PIL import Image

CLASSES = ["circle", "ring", "square"]


@pytest.fixture(scope="module")
def evaluation():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    logits = rng.normal(size=(60, 3)) + 2 * np.eye(3)[labels]
    return metrics.evaluate(logits, labels, CLASSES, top_k=2, calibration_bins=10, mistakes=8)


def saved(fig, tmp_path, name):
    path = tmp_path / f"{name}.png"
    plots.save(fig, path)
    with Image.open(path) as image:
        assert image.width > 100 and image.height > 50
        # not a blank canvas: some pixels differ from the background
        assert len(set(np.asarray(image.convert("L")).ravel().tolist())) > 2
    return path


def test_confusion(tmp_path, evaluation):
    saved(plots.confusion(evaluation["confusion_matrix"], CLASSES, title="t"), tmp_path, "confusion")


def test_roc_curves_skip_a_class_without_test_images(tmp_path, evaluation):
    roc = dict(evaluation["roc"])
    roc["ring"] = {"fpr": [], "tpr": [], "auc": None}
    fig = plots.roc_curves(roc)
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert not any(label.startswith("ring") for label in labels)
    assert any(label.startswith("circle (") for label in labels)
    saved(fig, tmp_path, "roc")


def test_reliability_shows_ece_in_title(tmp_path, evaluation):
    fig = plots.reliability(evaluation["calibration"])
    assert f"{evaluation['ece']:.3f}" in fig.axes[0].get_title()
    saved(fig, tmp_path, "reliability")


def test_mistakes_grid_titles_name_true_and_predicted(tmp_path, evaluation):
    images = np.random.default_rng(0).integers(0, 255, (60, 8, 8, 3), dtype=np.uint8)
    mistakes = evaluation["confident_mistakes"]
    fig = plots.mistakes_grid(images, mistakes, CLASSES, columns=4)
    first = fig.axes[0].get_title()
    assert (
        first.startswith(CLASSES[mistakes[0]["true"]]) and f"→ {CLASSES[mistakes[0]['predicted']]}" in first
    )
    saved(fig, tmp_path, "mistakes")
    saved(plots.mistakes_grid(images, [], CLASSES), tmp_path, "no-mistakes")


def test_training_curves_and_accuracy_by_run(tmp_path):
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "val_loss": 1.2 / e,
            "train_acc": 1 - 1 / (e + 1),
            "val_acc": 0.9 - 1 / (e + 2),
        }
        for e in range(1, 4)
    ]
    saved(plots.training_curves({"a s0": history, "b s0": history[:2]}), tmp_path, "curves")
    saved(plots.accuracy_by_run({"a": [0.8, 0.82], "b": [0.3]}), tmp_path, "accuracy")


def test_a_sweep_over_one_option_is_accuracy_against_its_values_in_order(tmp_path):
    points = [({"lr": 0.1}, 0.5), ({"lr": 0.001}, 0.7), ({"lr": 0.01}, 0.9)]
    fig = plots.sweep(points, title="sweep cnn")
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == [0.001, 0.01, 0.1] and list(line.get_ydata()) == [0.7, 0.9, 0.5]
    assert fig.axes[0].get_xscale() == "log", "values 100× apart"
    assert fig.axes[0].get_xlabel() == "lr"
    saved(fig, tmp_path, "sweep1")
    named = plots.sweep([({"optimizer": "sgd"}, 0.4), ({"optimizer": "adam"}, 0.6)])
    assert [t.get_text() for t in named.axes[0].get_xticklabels()] == ["adam", "sgd"]


def test_a_sweep_over_two_options_is_a_heat_map_of_the_grid(tmp_path):
    points = [
        ({"lr": 0.1, "batch_size": 128}, 0.1),
        ({"lr": 0.1, "batch_size": 512}, 0.2),
        ({"lr": 0.01, "batch_size": 128}, 0.3),
    ]  # one combination missing: left blank
    fig = plots.sweep(points)
    grid = fig.axes[0].get_images()[0].get_array()
    assert np.allclose(grid.filled(np.nan), [[0.3, np.nan], [0.1, 0.2]], equal_nan=True)
    assert (fig.axes[0].get_ylabel(), fig.axes[0].get_xlabel()) == ("lr", "batch_size")
    saved(fig, tmp_path, "sweep2")
