"""Evaluation of saved predictions. numpy only: the analysis step needs no torch."""

import numpy as np


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
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class(matrix: np.ndarray) -> dict:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(matrix).astype(float)
    predicted = matrix.sum(0)
    actual = matrix.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual}


def evaluate(logits: np.ndarray, labels: np.ndarray, classes, top_k: int = 3) -> dict:
    """Every number the analysis step reports, JSON-ready."""
    predicted = logits.argmax(1)
    matrix = confusion_matrix(labels, predicted, len(classes))
    stats = per_class(matrix)
    return {
        "accuracy": accuracy(logits, labels),
        f"top{top_k}_accuracy": topk_accuracy(logits, labels, top_k),
        "macro_f1": float(stats["f1"].mean()),
        "per_class": {
            c: {key: float(stats[key][i]) for key in ("precision", "recall", "f1", "support")}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": matrix.tolist(),
        "test_images": int(len(labels)),
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

