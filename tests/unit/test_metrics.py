"""The analysis numbers (labbook/metrics.py) on examples small enough to check by hand, and at the
edges: extreme logits, absent classes, confidences of exactly 0 and 1, ties, defaults, and the
nearest-centroid baseline."""

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


# ---------------------------------------------------------------- at the edges
def test_softmax_rows_sum_to_one_and_survive_extreme_logits():
    logits = np.array([[1000.0, 999.0], [-1000.0, -1001.0], [0.0, 0.0]])
    p = metrics.softmax(logits)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(1), 1.0)
    e = np.e / (1 + np.e)
    np.testing.assert_allclose(p, [[e, 1 - e], [e, 1 - e], [0.5, 0.5]])


def test_row_normalized_divides_each_row_by_its_own_count():
    np.testing.assert_allclose(metrics.row_normalized([[1, 3], [1, 1], [0, 1], [0, 0]]),
                               [[0.25, 0.75], [0.5, 0.5], [0, 1], [0, 0]])  # fmt: skip


def test_per_class_keeps_absent_classes_and_scores_never_predicted_as_zero():
    labels = np.array([0, 0, 1, 1])
    predicted = np.array([0, 0, 0, 0])  # class 1 never predicted, classes 2 and 3 nowhere
    stats = metrics.per_class(labels, predicted, 4)
    np.testing.assert_allclose(stats["precision"], [0.5, 0, 0, 0])
    np.testing.assert_allclose(stats["recall"], [1, 0, 0, 0])
    np.testing.assert_allclose(stats["f1"], [2 / 3, 0, 0, 0])
    assert stats["support"].tolist() == [2, 2, 0, 0]


def test_roc_keeps_one_curve_per_class_also_after_an_absent_one():
    probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.1, 0.7], [0.6, 0.1, 0.3], [0.1, 0.1, 0.8]])
    labels = np.array([0, 2, 0, 2])  # class 1 absent
    curves = metrics.roc_one_vs_rest(probabilities, labels)
    assert len(curves) == 3
    assert curves[1] == {"fpr": [], "tpr": [], "auc": None}
    for curve in (curves[0], curves[2]):
        assert set(curve) == {"fpr", "tpr", "auc"} and curve["auc"] == 1.0
        assert curve["fpr"][0] == 0.0 and curve["tpr"][-1] == 1.0


def test_calibration_bins_edges_and_the_extreme_confidences():
    probabilities = np.array([[0.0, 0.0], [1.0, 0.0], [0.05, 0.95], [0.3, 0.7], [0.35, 0.65]])
    labels = np.array([0, 0, 1, 0, 1])
    result = metrics.calibration(probabilities, labels, bins=10)
    assert set(result) == {"bins", "edges", "count", "confidence", "accuracy", "ece"}
    assert result["bins"] == 10
    np.testing.assert_allclose(result["edges"], np.arange(11) / 10)
    # 0 → bin 0; 0.65 and 0.7 → bin 6 ((0.6, 0.7]); 0.95 → bin 9; exactly 1 → bin 9 too
    assert result["count"] == [1, 0, 0, 0, 0, 0, 2, 0, 0, 2]
    assert result["confidence"][0] == 0.0 and result["confidence"][6] == pytest.approx(0.675)
    assert result["confidence"][9] == pytest.approx(0.975)
    assert result["accuracy"][6] == 0.5 and result["accuracy"][9] == 1.0 and result["accuracy"][0] == 1.0
    assert [v for i, v in enumerate(result["confidence"]) if i not in (0, 6, 9)] == [None] * 7
    assert [v for i, v in enumerate(result["accuracy"]) if i not in (0, 6, 9)] == [None] * 7
    ece = (1 * abs(1 - 0) + 2 * abs(0.5 - 0.675) + 2 * abs(1 - 0.975)) / 5
    assert result["ece"] == pytest.approx(ece)
    assert len(metrics.calibration(probabilities, labels)["count"]) == 15, "15 bins unless told"


def test_confident_mistakes_break_ties_by_position():
    rng = np.random.default_rng(0)
    confidence = np.round(rng.uniform(0.5, 1, 300), 1)  # many equal confidences
    probabilities = np.stack([1 - confidence, confidence], 1)
    labels = np.zeros(300, int)  # every prediction (class 1) is wrong
    found = metrics.confident_mistakes(probabilities, labels, 300)
    keys = [(-m["confidence"], m["index"]) for m in found]
    assert keys == sorted(keys), "most confident first, then in test-set order"
    assert len(metrics.confident_mistakes(probabilities, labels, 7)) == 7


def test_evaluate_defaults_and_every_key():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(5), 21)  # rows of 21: fractions with more than 4 decimals
    logits = rng.normal(0, 1, (105, 5)) + np.eye(5)[labels]
    result = metrics.evaluate(logits, labels, list("abcde"))
    assert result["top_k"] == 3 and "top3_accuracy" in result
    assert result["calibration"]["bins"] == 15 and len(result["confident_mistakes"]) == 16
    per_class_auc = [result["per_class"][c]["auc"] for c in "abcde"]
    assert result["macro_auc"] == pytest.approx(np.mean(per_class_auc))
    assert set(result["per_class"]["a"]) == {"precision", "recall", "f1", "support", "auc"}
    assert result["macro_precision"] == pytest.approx(
        np.mean([result["per_class"][c]["precision"] for c in "abcde"])
    )
    assert result["macro_recall"] == pytest.approx(
        np.mean([result["per_class"][c]["recall"] for c in "abcde"])
    )
    assert result["per_class"]["a"]["support"] == 21
    normalized = np.array(result["confusion_matrix_normalized"])
    assert np.array_equal(normalized, np.round(normalized, 4)) and not np.array_equal(
        normalized, np.round(normalized, 3)
    )
    assert {"confusion_matrix", "roc", "calibration", "ece", "test_images", "macro_f1", "accuracy"} <= set(
        result
    )
    chosen = metrics.evaluate(logits, labels, list("abcde"), top_k=2, calibration_bins=7, mistakes=4)
    assert chosen["top_k"] == 2 and "top2_accuracy" in chosen
    assert chosen["calibration"]["bins"] == 7 and len(chosen["confident_mistakes"]) == 4


def test_evaluate_without_any_defined_auc_says_none():
    result = metrics.evaluate(np.array([[2.0, 0.0], [1.0, 0.0]]), np.array([0, 0]), ["a", "b"], top_k=1)
    assert result["macro_auc"] is None


def test_nearest_centroid_logits_are_minus_squared_distances_to_class_means():
    # images of two pixels (1×2, one channel): [value, 0]
    def images(*values):
        return np.array([[[[v], [0]]] for v in values], np.uint8) * 20

    logits = metrics.nearest_centroid_logits(images(0, 2, 10, 12), np.array([0, 0, 1, 1]), images(0, 11))
    centroids = np.array([1, 11]) * 20 / 255
    tests = np.array([0, 11]) * 20 / 255
    np.testing.assert_allclose(logits, -((tests[:, None] - centroids[None, :]) ** 2), rtol=1e-5, atol=1e-6)
    assert logits.shape == (2, 2) and logits.argmax(1).tolist() == [0, 1]


def test_the_evaluation_gives_test_accuracy_and_macro_f1_with_their_95_percent_intervals():
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 4
    logits = rng.normal(size=(400, 4))
    logits[np.arange(400), labels] += 1.5  # about two thirds right
    evaluation = metrics.evaluate(logits, labels, ["a", "b", "c", "d"])
    correct = int(np.sum(logits.argmax(1) == labels))
    from scipy import stats as sps

    exact = sps.binomtest(correct, 400).proportion_ci(0.95, method="exact")
    assert evaluation["accuracy_interval"] == pytest.approx([exact.low, exact.high])
    low, high = evaluation["macro_f1_interval"]
    assert low < evaluation["macro_f1"] < high and high - low < 0.2
    assert "Clopper–Pearson" in evaluation["interval_method"]
    json.dumps(evaluation, allow_nan=False)
