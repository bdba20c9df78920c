"""Evaluation of saved predictions. numpy and scikit-learn only: the analysis step needs no torch."""

import numpy as np
from sklearn import metrics as skm

from . import stats

INTERVAL_METHOD = (
    f"{stats.CONFIDENCE:.0%} intervals over the test images: exact Clopper–Pearson for accuracy, "
    f"percentile bootstrap ({stats.RESAMPLES} resamples) for macro F1"
)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(1, keepdims=True)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.argmax(1) == labels))


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean((top == labels[:, None]).any(1)))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts; rows are true classes, columns predicted classes. Every class gets a row even
    when the test split lacks it, so matrices of different runs line up."""
    return skm.confusion_matrix(labels, predicted, labels=np.arange(num_classes))


def row_normalized(matrix) -> np.ndarray:
    """Each row divided by its count: the fraction of a true class predicted as each class."""
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix.sum(1, keepdims=True)
    return np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)


def per_class(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict:
    """Precision, recall, F1 and support per class (0 where undefined, e.g. never predicted)."""
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=np.arange(num_classes), zero_division=0
    )
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def roc_one_vs_rest(probabilities: np.ndarray, labels: np.ndarray) -> list:
    """Per class: ROC curve of "this class" against all others, and its AUC.
    AUC is None for a class absent from the labels (no positives: the curve is undefined)."""
    curves = []
    for c in range(probabilities.shape[1]):
        positives = labels == c
        if positives.all() or not positives.any():
            curves.append({"fpr": [], "tpr": [], "auc": None})
            continue
        fpr, tpr, _ = skm.roc_curve(positives, probabilities[:, c])
        curves.append({"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": float(skm.auc(fpr, tpr))})
    return curves


def calibration(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict:
    """Reliability of the top-class confidence in equal-width bins, and the expected calibration
    error: the bin-size-weighted mean gap between confidence and accuracy."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    # bin i holds confidences in (edges[i], edges[i+1]]; a confidence of exactly 0 goes to bin 0
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    mean_confidence = np.bincount(which, weights=confidence, minlength=bins)
    mean_accuracy = np.bincount(which, weights=correct.astype(float), minlength=bins)
    filled = counts > 0
    mean_confidence[filled] /= counts[filled]
    mean_accuracy[filled] /= counts[filled]
    ece = float(np.sum(counts / len(labels) * np.abs(mean_accuracy - mean_confidence)))
    return {
        "bins": bins,
        "edges": edges.tolist(),
        "count": counts.tolist(),
        # None for empty bins: there is nothing to plot there
        "confidence": [float(v) if n else None for v, n in zip(mean_confidence, counts, strict=True)],
        "accuracy": [float(v) if n else None for v, n in zip(mean_accuracy, counts, strict=True)],
        "ece": ece,
    }


def confident_mistakes(probabilities: np.ndarray, labels: np.ndarray, count: int) -> list:
    """The `count` wrong predictions made with the highest confidence, most confident first."""
    predicted = probabilities.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][:count]
    return [
        {
            "index": int(i),
            "true": int(labels[i]),
            "predicted": int(predicted[i]),
            "confidence": float(probabilities[i, predicted[i]]),
        }
        for i in order
    ]


def evaluate(
    logits: np.ndarray,
    labels: np.ndarray,
    classes,
    top_k: int = 3,
    calibration_bins: int = 15,
    mistakes: int = 16,
) -> dict:
    """Every number the analysis step reports, JSON-ready (evaluation.json). Logits that are not
    all finite (a diverged run's) get diverged_evaluation's record instead."""
    num_classes = len(classes)
    if num_classes < 2:
        raise ValueError(f"{num_classes} class(es): accuracy of a classifier needs at least two")
    if top_k > num_classes:
        raise ValueError(f"analysis top_k {top_k} is more than the {num_classes} classes")
    if not np.isfinite(logits).all():
        return diverged_evaluation(logits, labels, classes, top_k)
    probabilities = softmax(logits.astype(np.float64))
    predicted = probabilities.argmax(1)
    matrix = confusion_matrix(labels, predicted, num_classes)
    per_class_stats = per_class(labels, predicted, num_classes)
    roc = roc_one_vs_rest(probabilities, labels)
    aucs = [curve["auc"] for curve in roc if curve["auc"] is not None]
    reliability = calibration(probabilities, labels, calibration_bins)
    correct = int(np.sum(predicted == labels))
    return {
        "accuracy": accuracy(logits, labels),
        "accuracy_interval": list(stats.accuracy_interval(correct, len(labels))),
        "top_k": top_k,
        f"top{top_k}_accuracy": topk_accuracy(logits, labels, top_k),
        "macro_precision": float(per_class_stats["precision"].mean()),
        "macro_recall": float(per_class_stats["recall"].mean()),
        "macro_f1": float(per_class_stats["f1"].mean()),
        "macro_f1_interval": list(stats.macro_f1_interval(labels, predicted, num_classes)),
        "interval_method": INTERVAL_METHOD,
        "macro_auc": float(np.mean(aucs)) if aucs else None,
        "ece": reliability["ece"],
        "per_class": {
            c: {
                "precision": float(per_class_stats["precision"][i]),
                "recall": float(per_class_stats["recall"][i]),
                "f1": float(per_class_stats["f1"][i]),
                "support": int(per_class_stats["support"][i]),
                "auc": roc[i]["auc"],
            }
            for i, c in enumerate(classes)
        },
        "confusion_matrix": matrix.tolist(),
        "confusion_matrix_normalized": row_normalized(matrix).round(4).tolist(),
        "roc": {c: roc[i] for i, c in enumerate(classes)},
        "calibration": reliability,
        "confident_mistakes": confident_mistakes(probabilities, labels, mistakes),
        "test_images": int(len(labels)),
        "diverged": False,
    }


def diverged_evaluation(logits: np.ndarray, labels: np.ndarray, classes, top_k: int) -> dict:
    """evaluation.json of logits with NaN or inf in them, as a diverged network gives: evaluate's
    keys, every metric None (accuracy, F1, AUC, calibration, the confusion matrix: a network
    that outputs NaN has no predictions to score, and a score of the rows that happen to be
    finite would read as the run's), and what can still be said: how many test images got finite
    logits (finite_predictions), and the accuracy over those alone (accuracy_where_finite, None
    when there are none), recorded for the record but not reported as the run's accuracy."""
    finite = np.isfinite(logits).all(1)
    where_finite = accuracy(logits[finite], labels[finite]) if finite.any() else None
    return {
        "accuracy": None,
        "top_k": top_k,
        f"top{top_k}_accuracy": None,
        **dict.fromkeys(["macro_precision", "macro_recall", "macro_f1", "macro_auc", "ece"]),
        **dict.fromkeys(["accuracy_interval", "macro_f1_interval"]),
        "per_class": {
            c: {
                "precision": None,
                "recall": None,
                "f1": None,
                "support": int(np.sum(labels == i)),
                "auc": None,
            }
            for i, c in enumerate(classes)
        },
        "confusion_matrix": None,
        "confusion_matrix_normalized": None,
        "roc": None,
        "calibration": None,
        "confident_mistakes": [],
        "test_images": int(len(labels)),
        "diverged": True,
        "finite_predictions": int(finite.sum()),
        "accuracy_where_finite": where_finite,
    }


def nearest_centroid_logits(train_images, train_labels, test_images) -> np.ndarray:
    """A baseline: negative distance of each test image to each class's mean training image."""
    flat_train = train_images.reshape(len(train_images), -1).astype(np.float32) / 255
    flat_test = test_images.reshape(len(test_images), -1).astype(np.float32) / 255
    classes = np.unique(train_labels)
    centroids = np.stack([flat_train[train_labels == c].mean(0) for c in classes])
    # ‖a−b‖² = ‖a‖² − 2a·b + ‖b‖², without a test×class×pixel array
    distances = (flat_test**2).sum(1)[:, None] - 2 * flat_test @ centroids.T + (centroids**2).sum(1)
    return -distances
