"""Uncertainty for the report and lab book: intervals, paired comparisons and verdicts.

A test accuracy measured on a finite test split, over a few training seeds, is an estimate; these
functions say how far it can be trusted, so that a conclusion ("reaches the target", "beats run X")
is drawn only when the interval supports it. numpy and scipy/scikit-learn only: no torch.
"""

import base64
import binascii

import numpy as np
from scipy import stats as sps
from sklearn import metrics as skm

CONFIDENCE = 0.95  # the one place the level of every interval here is written
RESAMPLES = 2000  # of a bootstrap over test images, where no exact interval exists

_TAILS = (100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2)  # percentiles of a bootstrap


def accuracy_interval(correct: int, total: int) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval for an accuracy of `correct` out of `total` test images.

    Exact rather than normal-approximation: it keeps its coverage near 0% and 100% accuracy and on
    small test splits, where the approximation's interval leaves [0, 1] or shrinks to a point."""
    if total <= 0:
        raise ValueError(f"accuracy_interval: total must be at least 1 test image, got total={total}")
    if not 0 <= correct <= total:
        raise ValueError(f"accuracy_interval: correct={correct} is not between 0 and total={total}")
    interval = sps.binomtest(int(correct), int(total)).proportion_ci(
        confidence_level=CONFIDENCE, method="exact"
    )
    return float(interval.low), float(interval.high)


def macro_f1(labels, predictions, num_classes: int | None = None) -> float:
    """Unweighted mean of the per-class F1 scores (0 for a class never predicted nor present).

    The classes averaged over are 0..num_classes-1 when given, else those in labels ∪ predictions.
    Give num_classes when bootstrapping: a resample may miss a class, and every resample should
    average over the same classes."""
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if num_classes is None:
        classes = np.union1d(labels, predictions)
    else:
        classes = np.arange(num_classes)
    return float(skm.f1_score(labels, predictions, labels=classes, average="macro", zero_division=0))


def macro_f1_interval(labels, predictions, num_classes: int, resamples: int = RESAMPLES, seed: int = 0):
    """Percentile bootstrap interval of the macro F1 over test images.

    Macro F1 depends only on the confusion matrix, and resampling images with replacement draws
    its cells' counts from a multinomial with the cells' frequencies: drawing those counts is
    exactly the bootstrap over images, at a cost set by the classes², not by the images (scipy
    has no interval for it; tests/unit/test_stats.py checks it against an index bootstrap of
    scikit-learn's f1_score)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if len(labels) != len(predictions):
        raise ValueError(f"macro_f1_interval: {len(labels)} labels but {len(predictions)} predictions")
    if len(labels) == 0:
        raise ValueError("macro_f1_interval: no test images")
    cells = np.bincount(labels * num_classes + predictions, minlength=num_classes**2)
    drawn = np.random.default_rng(seed).multinomial(len(labels), cells / len(labels), size=resamples)
    confusion = drawn.reshape(resamples, num_classes, num_classes)
    true_positives = np.diagonal(confusion, axis1=1, axis2=2)
    # 2TP / (2TP + FP + FN) = 2TP / (true count + predicted count); 0 for a class never seen nor predicted
    counts = confusion.sum(2) + confusion.sum(1)
    f1 = np.divide(2 * true_positives, counts, out=np.zeros(true_positives.shape), where=counts > 0)
    low, high = np.percentile(f1.mean(1), _TAILS)
    return float(low), float(high)


def images_interval(correct) -> tuple[float, float]:
    """Interval over test images of a run's test accuracy: exact (accuracy_interval) for one
    seed; for several (rows of `correct`, the same images), the percentile bootstrap over images
    of each image's correctness averaged over the seeds."""
    rows = _as_seed_rows(correct, "correct")
    if len(rows) == 1:
        return accuracy_interval(int(rows[0].sum()), rows.shape[1])
    means = bootstrap_mean_differences(rows.mean(0), RESAMPLES)
    low, high = np.percentile(means, _TAILS)
    return float(low), float(high)


def _t_interval(values: np.ndarray) -> tuple[float, float]:
    """Student-t CONFIDENCE interval of the mean of at least two values."""
    mean = float(np.mean(values))
    standard_error = float(np.std(values, ddof=1)) / np.sqrt(len(values))
    if standard_error == 0:  # all equal: scipy returns nan for a zero scale; the interval is a point
        return mean, mean
    low, high = sps.t.interval(CONFIDENCE, len(values) - 1, loc=mean, scale=standard_error)
    return float(low), float(high)


def seeds_summary(values) -> dict:
    """Mean, standard deviation and Student-t interval of the mean of one number over seeds.

    Returns {"mean", "sd", "low", "high", "seeds"}: sd is the sample standard deviation (ddof=1);
    sd, low and high are None with a single seed, where the spread over seeds is unknown."""
    values = np.asarray(values, dtype=float).ravel()
    if len(values) == 0:
        raise ValueError("seeds_summary: no values")
    summary = {"mean": float(np.mean(values)), "sd": None, "low": None, "high": None, "seeds": len(values)}
    if len(values) >= 2:
        summary["sd"] = float(np.std(values, ddof=1))
        summary["low"], summary["high"] = _t_interval(values)
    return summary


def _as_seed_rows(correct, name: str) -> np.ndarray:
    """Per-image correctness as a boolean (seeds, images) array; one run of (images,) is one row."""
    array = np.asarray(correct)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(
            f"{name}: expected (seeds, images) or (images,) correctness, got shape {array.shape}"
        )
    if array.dtype != bool:
        if not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name}: correctness must be boolean (or 0/1)")
        array = array.astype(bool)
    return array


def bootstrap_mean_differences(per_image, resamples: int, seed: int = 0) -> np.ndarray:
    """The means of `resamples` nonparametric bootstrap resamples (with replacement) of per_image.

    A resample's mean depends only on how many times each distinct value is drawn, and those
    counts are multinomial with the values' frequencies: drawing the counts is exactly the
    bootstrap over images, at a cost set by the number of distinct values (few: seed-averaged
    correctness differences), not by the number of images."""
    per_image = np.asarray(per_image, dtype=float)
    values, counts = np.unique(per_image, return_counts=True)
    # Drawn in one orientation of the values or their negatives, whichever sorts first, so that
    # B − A's resamples are exactly minus A − B's and the two intervals mirror each other.
    negated = (-values[::-1], counts[::-1])
    sign = -1.0 if [*zip(*negated, strict=True)] < [*zip(values, counts, strict=True)] else 1.0
    if sign < 0:
        values, counts = negated
    images = len(per_image)
    drawn = np.random.default_rng(seed).multinomial(images, counts / images, size=resamples)
    return sign * (drawn @ values) / images


def paired_difference(correct_a, correct_b, resamples: int = 10000, seed: int = 0) -> dict:
    """Run A's test accuracy minus run B's, both evaluated on the same test images, with intervals.

    correct_a, correct_b: boolean per-image correctness, (seeds, images) or (images,); row i of one
    is matched with row i of the other (the caller orders the seeds); seed counts may differ. The
    matched pairs are rows 0..min(seeds_a, seeds_b)-1.

    Returns a dict:
      difference: mean over A's seeds of its accuracy minus the same for B.
      images: number of test images.
      a_only, b_only: images right in A and wrong in B (and the reverse), counted in each matched
        pair and averaged over the pairs (an integer count with one seed each).
      low, high: paired percentile bootstrap interval over images of the mean of the per-image
        difference of seed-averaged correctness. Pairing by image removes the shared difficulty
        of the images, which an interval per run would count twice.
      seeds_low, seeds_high: Student-t interval of the per-seed differences (row i of A minus row
        i of B) when both have the same number ≥ 2 of seeds, else None.
      mcnemar_p: McNemar's exact two-sided p-value (binomial test of the discordant images) of each
        matched pair, the largest over the pairs: conservative, the difference must hold for every
        seed pair. 1.0 when no image is discordant.
      method: what was computed, in words.
    """
    a = _as_seed_rows(correct_a, "correct_a")
    b = _as_seed_rows(correct_b, "correct_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"the two runs were not evaluated on the same test images: {a.shape[1]} images in A, "
            f"{b.shape[1]} in B"
        )
    images = a.shape[1]
    if images == 0:
        raise ValueError("paired_difference: no test images")

    per_image = a.mean(0) - b.mean(0)  # seed-averaged correctness, A minus B
    low, high = np.percentile(bootstrap_mean_differences(per_image, resamples, seed), _TAILS)

    pairs = min(len(a), len(b))
    a_only = (a[:pairs] & ~b[:pairs]).sum(1)  # per matched pair
    b_only = (~a[:pairs] & b[:pairs]).sum(1)
    mcnemar_p = max(
        1.0 if n_a + n_b == 0 else float(sps.binomtest(int(n_a), int(n_a + n_b), 0.5).pvalue)
        for n_a, n_b in zip(a_only, b_only, strict=True)
    )

    seeds_low = seeds_high = None
    method = f"paired bootstrap over {images} images ({resamples} resamples)"
    if len(a) == len(b) >= 2:
        seeds_low, seeds_high = _t_interval(a.mean(1) - b.mean(1))
        method += f"; t over {len(a)} seeds"
    method += "; McNemar exact" + (f" (largest p of {pairs} seed pairs)" if pairs > 1 else "")

    return {
        "difference": float(a.mean(1).mean() - b.mean(1).mean()),
        "images": images,
        "a_only": float(a_only.mean()),
        "b_only": float(b_only.mean()),
        "low": float(low),
        "high": float(high),
        "seeds_low": seeds_low,
        "seeds_high": seeds_high,
        "mcnemar_p": mcnemar_p,
        "method": method,
    }


def verdict(intervals, threshold: float) -> str:
    """Whether intervals support "the quantity is at least threshold".

    intervals: (low, high) pairs, e.g. the test-images interval and the seeds interval; None
    entries (or pairs with a None bound: a single seed) are skipped. "supported" when every low
    ≥ threshold, "not supported" when every high < threshold, else "inconclusive": a conclusion
    is drawn only when every available interval agrees on it."""
    usable = [pair for pair in intervals if pair is not None and None not in pair]
    if not usable:
        raise ValueError("verdict: no intervals to judge")
    if all(low >= threshold for low, _ in usable):
        return "supported"
    if all(high < threshold for _, high in usable):
        return "not supported"
    return "inconclusive"


def pack_correct(correct) -> str:
    """Per-image correctness, boolean (seeds, images) or (images,), as compact text for JSON.

    Each seed's row is np.packbits (8 images a byte) in base64; rows are joined by ",", which
    base64 never uses. 10,000 images take about 1.7 KB a seed."""
    rows = _as_seed_rows(correct, "pack_correct")
    return ",".join(base64.b64encode(np.packbits(row).tobytes()).decode("ascii") for row in rows)


def unpack_correct(text: str, images: int) -> np.ndarray:
    """The boolean (seeds, images) array that pack_correct wrote as `text`."""
    rows = []
    for number, encoded in enumerate(text.split(",")):
        try:
            packed = np.frombuffer(base64.b64decode(encoded, validate=True), dtype=np.uint8)
        except binascii.Error as error:
            raise ValueError(f"unpack_correct: row {number} is not base64 ({error})") from error
        if len(packed) != (images + 7) // 8:
            raise ValueError(
                f"unpack_correct: row {number} holds {len(packed)} bytes, not the "
                f"{(images + 7) // 8} of {images} images"
            )
        rows.append(np.unpackbits(packed, count=images).astype(bool))
    return np.stack(rows)
