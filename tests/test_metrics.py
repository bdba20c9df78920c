"""The analysis numbers on examples small enough to check by hand."""

import json

import numpy as np
import pytest
from labbook import metrics

CLASSES = ["cat", "dog", "bird"]


def logits_from(probabilities):
    """Logits whose softmax is exactly the given probabilities."""
    return np.log(np.asarray(probabilities, dtype=float))


def test_confusion_matrix_rows_are_true_classes():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    matrix = metrics.confusion_matrix(labels, predicted, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert metrics.row_normalized(matrix).tolist() == [[0.5, 0.5, 0], [0, 1, 0], [0.5, 0, 0.5]]


def test_confusion_matrix_keeps_a_class_missing_from_the_test_split():
    matrix = metrics.confusion_matrix(np.array([0, 0]), np.array([0, 1]), 3)
    assert matrix.shape == (3, 3)
    assert metrics.row_normalized(matrix)[2].tolist() == [0, 0, 0]


def test_per_class_precision_recall_f1():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    stats = metrics.per_class(labels, predicted, 3)
    # class 0: predicted twice, right once; found 1 of 2
    assert stats["precision"][0] == pytest.approx(0.5)
    assert stats["recall"][0] == pytest.approx(0.5)
    # class 1: predicted 3 times, right twice; found both
    assert stats["precision"][1] == pytest.approx(2 / 3)
    assert stats["recall"][1] == pytest.approx(1.0)
    assert stats["f1"][1] == pytest.approx(0.8)
    assert stats["support"].tolist() == [2, 2, 2]


def test_topk_accuracy():
    logits = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    labels = np.array([1, 0])
    assert metrics.accuracy(logits, labels) == 0
    assert metrics.topk_accuracy(logits, labels, 2) == 0.5
    assert metrics.topk_accuracy(logits, labels, 3) == 1.0
    assert metrics.topk_accuracy(logits, labels, 10) == 1.0  # k beyond the classes: everything


def test_auc_of_perfect_scores_is_one_and_of_reversed_scores_zero():
    labels = np.array([0, 1, 2, 0, 1, 2])
    perfect = np.eye(3)[labels] * 0.9 + 0.05
    assert [c["auc"] for c in metrics.roc_one_vs_rest(perfect, labels)] == [1.0, 1.0, 1.0]
    reversed_scores = 1 - perfect
    assert [c["auc"] for c in metrics.roc_one_vs_rest(reversed_scores, labels)] == [0.0, 0.0, 0.0]


def test_auc_is_undefined_for_a_class_missing_from_the_labels():
    labels = np.array([0, 1, 0, 1])
    curves = metrics.roc_one_vs_rest(np.full((4, 3), 1 / 3), labels)
    assert curves[2]["auc"] is None
    assert curves[0]["auc"] == pytest.approx(0.5)  # constant scores: chance


def test_ece_of_perfectly_calibrated_predictions_is_about_zero():
    """Confidence c, right with probability c: accuracy in each bin matches its confidence."""
    rng = np.random.default_rng(0)
    n, classes = 200_000, 4
    confidence = rng.uniform(0.3, 1.0, n)
    predicted = rng.integers(0, classes, n)
    probabilities = np.empty((n, classes))
    probabilities[:] = ((1 - confidence) / (classes - 1))[:, None]
    probabilities[np.arange(n), predicted] = confidence
    correct = rng.uniform(size=n) < confidence
    wrong_label = (predicted + rng.integers(1, classes, n)) % classes
    labels = np.where(correct, predicted, wrong_label)
    result = metrics.calibration(probabilities, labels, bins=10)
    assert result["ece"] < 0.01
    assert sum(result["count"]) == n


def test_ece_of_an_always_sure_half_right_model_is_one_half():
    probabilities = np.array([[1.0, 0.0]] * 4)
    labels = np.array([0, 1, 0, 1])
    result = metrics.calibration(probabilities, labels, bins=5)
    assert result["ece"] == pytest.approx(0.5)
    assert result["count"] == [0, 0, 0, 0, 4]  # confidence 1 falls in the last bin
    assert result["accuracy"][:4] == [None] * 4  # empty bins say so instead of 0


def test_confident_mistakes_most_confident_first():
    probabilities = np.array([[0.6, 0.4], [0.1, 0.9], [0.2, 0.8], [0.95, 0.05]])
    labels = np.array([1, 0, 1, 1])  # wrong: rows 0 (0.6), 1 (0.9), 3 (0.95)
    found = metrics.confident_mistakes(probabilities, labels, 2)
    assert [m["index"] for m in found] == [3, 1]
    assert found[0] == {"index": 3, "true": 1, "predicted": 0, "confidence": 0.95}


def test_evaluate_is_json_ready_and_consistent():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.array(
        [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.5, 0.2, 0.3], [0.1, 0.1, 0.8]]
    )
    evaluation = metrics.evaluate(logits_from(probabilities), labels, CLASSES, top_k=2, mistakes=5)
    json.dumps(evaluation)  # raises on numpy types
    assert evaluation["accuracy"] == pytest.approx(4 / 6)
    assert evaluation["top2_accuracy"] == pytest.approx(1.0)
    assert evaluation["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert evaluation["per_class"]["dog"]["f1"] == pytest.approx(0.8)
    assert evaluation["macro_f1"] == pytest.approx(
        np.mean([v["f1"] for v in evaluation["per_class"].values()])
    )
    assert [m["index"] for m in evaluation["confident_mistakes"]] == [1, 4]
    assert set(evaluation["roc"]) == set(CLASSES)
    assert 0 <= evaluation["ece"] <= 1
    assert evaluation["test_images"] == 6
