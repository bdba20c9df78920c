"""The statistics behind the report's conclusions (labbook/stats.py): intervals checked against
published or hand-worked values, the multinomial bootstrap against a brute-force bootstrap over
image indices, and verdicts at their edges."""

import numpy as np
import pytest
from labbook import stats
from scipy import stats as sps


@pytest.mark.parametrize(
    ("correct", "total", "expected"),
    [(0, 10, (0.0, 0.3085)), (10, 10, (0.6915, 1.0)), (8, 10, (0.4439, 0.9748)), (1, 1, (0.025, 1.0))],
)
def test_accuracy_interval_is_clopper_pearson(correct, total, expected):
    assert stats.accuracy_interval(correct, total) == pytest.approx(expected, abs=5e-5)


def test_accuracy_interval_matches_the_beta_quantiles():
    # Clopper–Pearson's definition: the bounds are quantiles of Beta(k, n-k+1) and Beta(k+1, n-k)
    low, high = stats.accuracy_interval(912, 1000)
    assert low == pytest.approx(sps.beta.ppf(0.025, 912, 89))
    assert high == pytest.approx(sps.beta.ppf(0.975, 913, 88))
    assert low < 0.912 < high


def test_accuracy_interval_rejects_no_images():
    with pytest.raises(ValueError, match="total"):
        stats.accuracy_interval(0, 0)
    with pytest.raises(ValueError, match="correct"):
        stats.accuracy_interval(11, 10)


def test_macro_f1_averages_classes_equally():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    # F1 per class: 0 → P 1/2, R 1/2 → 1/2; 1 → P 2/3, R 1 → 4/5; 2 → P 1, R 1/2 → 2/3
    assert stats.macro_f1(labels, predicted) == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    # a fourth class never seen nor predicted counts as F1 0 when the classes are given
    assert stats.macro_f1(labels, predicted, num_classes=4) == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 4)


def test_macro_f1_interval_matches_an_index_bootstrap_of_scikit_learns_f1():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 300)
    predictions = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 4, 300))
    brute = []
    for _ in range(1000):
        drawn = rng.integers(0, 300, 300)
        brute.append(stats.macro_f1(labels[drawn], predictions[drawn], num_classes=4))
    low, high = stats.macro_f1_interval(labels, predictions, 4, resamples=4000)
    assert (low, high) == pytest.approx(np.percentile(brute, [2.5, 97.5]), abs=0.012)
    assert low < stats.macro_f1(labels, predictions) < high


def test_macro_f1_interval_is_seeded_and_counts_a_class_never_seen_as_0():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 60)
    predictions = np.where(rng.random(60) < 0.7, labels, rng.integers(0, 3, 60))
    first = stats.macro_f1_interval(labels, predictions, 3, resamples=100, seed=5)
    assert stats.macro_f1_interval(labels, predictions, 3, resamples=100, seed=5) == first
    assert stats.macro_f1_interval(labels, predictions, 3, resamples=100, seed=6) != first
    perfect = np.arange(200) % 2  # every resample holds both classes, each F1 1; class 2 F1 0
    assert stats.macro_f1_interval(perfect, perfect, 3) == (pytest.approx(2 / 3), pytest.approx(2 / 3))


def test_seeds_summary_is_the_student_t_interval():
    values = [0.91, 0.93, 0.92, 0.95]
    summary = stats.seeds_summary(values)
    low, high = sps.t.interval(0.95, 3, loc=np.mean(values), scale=sps.sem(values))
    assert summary["mean"] == pytest.approx(0.9275)
    assert summary["sd"] == pytest.approx(np.std(values, ddof=1))
    assert (summary["low"], summary["high"]) == pytest.approx((low, high))
    assert summary["seeds"] == 4


def test_seeds_summary_of_one_seed_has_no_spread():
    assert stats.seeds_summary([0.9]) == {"mean": 0.9, "sd": None, "low": None, "high": None, "seeds": 1}
    equal = stats.seeds_summary([0.9, 0.9])
    assert (equal["sd"], equal["low"], equal["high"]) == (0.0, 0.9, 0.9)


def test_paired_difference_on_a_hand_worked_example():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    predicted_a = np.array([0, 1, 2, 0, 1, 2, 1, 2, 2, 1])  # right on 0-5 and 8: 7 of 10
    predicted_b = np.array([0, 1, 2, 1, 2, 0, 1, 1, 2, 1])  # right on 0-2, 7 and 8: 5 of 10
    result = stats.paired_difference(predicted_a == labels, predicted_b == labels)
    assert result["difference"] == pytest.approx(0.2)
    assert result["images"] == 10
    assert (result["a_only"], result["b_only"]) == (3, 1)  # images 3, 4, 5; image 7
    # discordant 3 against 1: P(X ≤ 1 or X ≥ 3) for X ~ Binomial(4, 1/2) = (1 + 4 + 4 + 1) / 16
    assert result["mcnemar_p"] == pytest.approx(10 / 16)
    assert result["low"] <= 0.2 <= result["high"]
    assert result["seeds_low"] is None and result["seeds_high"] is None
    assert result["method"] == "paired bootstrap over 10 images (10000 resamples); McNemar exact"


def test_mcnemar_of_six_discordant_images_all_one_way():
    a = np.r_[np.zeros(6, bool), np.ones(4, bool)]
    b = np.ones(10, bool)
    result = stats.paired_difference(a, b)
    assert (result["a_only"], result["b_only"]) == (0, 6)
    assert result["mcnemar_p"] == pytest.approx(2 * 0.5**6)  # 0.03125
    assert stats.paired_difference(b, b)["mcnemar_p"] == 1.0  # nothing discordant


def test_paired_difference_over_seeds():
    rng = np.random.default_rng(2)
    a = rng.random((3, 400)) < 0.8
    b = rng.random((3, 400)) < 0.7
    # pair 1 is made identical (A copies B): no discordant image, McNemar p 1
    a[1] = b[1]
    result = stats.paired_difference(a, b)
    accuracy_a, accuracy_b = a.mean(1), b.mean(1)
    assert result["difference"] == pytest.approx(accuracy_a.mean() - accuracy_b.mean())
    seeds_low, seeds_high = sps.t.interval(
        0.95, 2, loc=np.mean(accuracy_a - accuracy_b), scale=sps.sem(accuracy_a - accuracy_b)
    )
    assert (result["seeds_low"], result["seeds_high"]) == pytest.approx((seeds_low, seeds_high))
    assert result["mcnemar_p"] == 1.0  # the largest p over the pairs: pair 1's
    assert result["a_only"] == pytest.approx((a & ~b).sum() / 3)
    assert result["b_only"] == pytest.approx((~a & b).sum() / 3)
    assert result["method"] == (
        "paired bootstrap over 400 images (10000 resamples); t over 3 seeds; "
        "McNemar exact (largest p of 3 seed pairs)"
    )


def test_paired_difference_with_unequal_seed_counts_skips_the_seed_interval():
    rng = np.random.default_rng(3)
    a = rng.random((2, 50)) < 0.8
    b = rng.random((3, 50)) < 0.6
    result = stats.paired_difference(a, b)
    assert result["difference"] == pytest.approx(a.mean() - b.mean())
    assert result["seeds_low"] is None and result["seeds_high"] is None
    assert "t over" not in result["method"]


def test_paired_difference_rejects_different_test_images():
    with pytest.raises(ValueError, match="not evaluated on the same test images"):
        stats.paired_difference(np.ones(10, bool), np.ones((2, 9), bool))


def test_multinomial_bootstrap_matches_a_brute_force_index_bootstrap():
    rng = np.random.default_rng(4)
    images = 60
    a = rng.random((2, images)) < 0.75
    b = rng.random((3, images)) < 0.55
    per_image = a.mean(0) - b.mean(0)  # values on a grid of 1/6, with unequal frequencies
    resamples = 20000
    counted = stats.bootstrap_mean_differences(per_image, resamples, seed=0)
    drawn = np.random.default_rng(99).integers(0, images, size=(resamples, images))
    brute = per_image[drawn].mean(1)
    # both estimate the same distribution: mean(per_image), variance var(per_image)/images
    standard_error = np.std(per_image) / np.sqrt(images)
    for means in (counted, brute):
        assert means.mean() == pytest.approx(per_image.mean(), abs=4 * standard_error / np.sqrt(resamples))
        assert means.std() == pytest.approx(standard_error, rel=0.03)
    percentiles = [2.5, 25, 50, 75, 97.5]
    assert np.percentile(counted, percentiles) == pytest.approx(np.percentile(brute, percentiles), abs=0.01)
    # and paired_difference's interval is that distribution's central 95%
    result = stats.paired_difference(a, b, resamples=resamples, seed=0)
    assert (result["low"], result["high"]) == pytest.approx(tuple(np.percentile(counted, [2.5, 97.5])))
    assert (result["low"], result["high"]) == pytest.approx(
        tuple(np.percentile(brute, [2.5, 97.5])), abs=0.01
    )


def test_paired_bootstrap_is_seeded():
    rng = np.random.default_rng(5)
    a, b = rng.random(300) < 0.8, rng.random(300) < 0.7
    first = stats.paired_difference(a, b, seed=1)
    assert stats.paired_difference(a, b, seed=1) == first
    # interval bounds sit on a grid of 1/300 and may coincide; the resampled means do not
    per_image = a.astype(float) - b
    same = stats.bootstrap_mean_differences(per_image, 1000, seed=1)
    assert np.array_equal(stats.bootstrap_mean_differences(per_image, 1000, seed=1), same)
    assert not np.array_equal(stats.bootstrap_mean_differences(per_image, 1000, seed=2), same)


def test_verdict_outcomes_and_edges():
    assert stats.verdict([(0.91, 0.95), (0.90, 0.97)], 0.90) == "supported"  # low exactly at threshold
    assert stats.verdict([(0.80, 0.89), (0.85, 0.8999)], 0.90) == "not supported"
    assert stats.verdict([(0.80, 0.90)], 0.90) == "inconclusive"  # high exactly at threshold
    assert stats.verdict([(0.91, 0.95), (0.85, 0.99)], 0.90) == "inconclusive"  # intervals disagree
    assert stats.verdict([(0.91, 0.95), None, (None, None)], 0.90) == "supported"  # one seed: skipped
    with pytest.raises(ValueError):
        stats.verdict([None], 0.90)
    with pytest.raises(ValueError):
        stats.verdict([], 0.90)


@pytest.mark.parametrize("shape", [(1, 10000), (3, 13), (2, 8), (1, 1)])
def test_pack_correct_round_trips(shape):
    correct = np.random.default_rng(6).random(shape) < 0.5
    text = stats.pack_correct(correct)
    assert np.array_equal(stats.unpack_correct(text, shape[1]), correct)
    if shape == (1, 10000):
        assert len(text) < 1700  # compact enough for a JSON file


def test_pack_correct_of_one_run_and_a_wrong_image_count():
    correct = np.array([True, False, True])
    assert stats.unpack_correct(stats.pack_correct(correct), 3).tolist() == [[True, False, True]]
    with pytest.raises(ValueError, match="images"):
        stats.unpack_correct(stats.pack_correct(np.ones((2, 20), bool)), 30)


def test_images_interval_is_exact_for_one_seed_and_bootstrapped_over_images_for_several():
    one = np.r_[np.ones(80, bool), np.zeros(20, bool)]
    assert stats.images_interval(one) == stats.accuracy_interval(80, 100)
    rng = np.random.default_rng(3)
    seeds = rng.random((3, 400)) < 0.8
    low, high = stats.images_interval(seeds)
    brute = [seeds[:, rng.integers(0, 400, 400)].mean() for _ in range(2000)]
    assert (low, high) == pytest.approx(np.percentile(brute, [2.5, 97.5]), abs=0.01)


def test_b_minus_a_is_exactly_minus_a_minus_b():
    rng = np.random.default_rng(4)
    a, b = rng.random((2, 500)) < 0.8, rng.random((2, 500)) < 0.7
    forward, backward = stats.paired_difference(a, b), stats.paired_difference(b, a)
    assert (backward["low"], backward["high"]) == (-forward["high"], -forward["low"])
    assert (backward["seeds_low"], backward["seeds_high"]) == pytest.approx(
        (-forward["seeds_high"], -forward["seeds_low"])
    )
    assert (backward["a_only"], backward["mcnemar_p"]) == (forward["b_only"], forward["mcnemar_p"])
