"""The validation split every dataset gets (labbook/splits.py, arrays.write_loaded): taken from
the training images, the same share of every class, by the seed, disjoint from train and test."""

import numpy as np
import pytest
from labbook import arrays, splits
from labbook.plan.kinds.kind import Loaded


def distinct_images(count: int, offset: int = 0) -> np.ndarray:
    """count images, each told apart by its first pixels (the image's number)."""
    images = np.zeros((count, 4, 4, 3), np.uint8)
    numbers = np.arange(offset, offset + count)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = numbers % 256, numbers // 256
    return images


def number(image) -> int:
    return int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])


def test_the_validation_split_is_stratified_seeded_and_disjoint_from_train_and_test(tmp_path):
    labels = np.repeat([0, 1, 2], [60, 30, 10])  # uneven classes
    loaded = Loaded(
        ["a", "b", "c"],
        {"train": (distinct_images(100), labels), "test": (distinct_images(20, 1000), np.arange(20) % 3)},
        source_hash="x",
    )
    manifest = arrays.write_loaded(tmp_path, "toy", "toy", {"val_size": 20, "seed": 3}, loaded)
    assert manifest["counts"]["val"] == {"a": 12, "b": 6, "c": 2}, "a fifth of every class"
    assert manifest["counts"]["train"] == {"a": 48, "b": 24, "c": 8}
    seen = {
        split: [number(i) for i in arrays.load_split(tmp_path, split)[0]]
        for split in ("train", "val", "test")
    }
    assert set(seen["train"]).isdisjoint(seen["val"]) and set(seen["val"]).isdisjoint(seen["test"])
    assert sorted(seen["train"] + seen["val"]) == list(range(100)), (
        "every training image is in one of the two"
    )
    for split in ("train", "val"):  # each image keeps its label
        images, kept_labels = arrays.load_split(tmp_path, split)
        assert [labels[number(i)] for i in images] == list(kept_labels)
    again = splits.stratified_holdout(labels, 20, 3, "val")
    other = splits.stratified_holdout(labels, 20, 4, "val")
    assert sorted(seen["val"]) == list(again), "the seed chooses the images"
    assert list(other) != list(again)
    assert list(splits.stratified_holdout(labels, 0.2, 3, "val")) == list(again), "0.2 of 100 is 20"


def test_a_source_with_its_own_validation_split_keeps_it(tmp_path):
    given = (distinct_images(6, 500), np.arange(6) % 2)
    loaded = Loaded(
        ["a", "b"],
        {"train": (distinct_images(10), np.arange(10) % 2), "val": given, "test": given},
        source_hash="x",
        source={"val_split": "val"},
    )
    manifest = arrays.write_loaded(tmp_path, "toy", "toy", {"val_size": 0.5, "seed": 0}, loaded)
    assert manifest["counts"]["train"] == {"a": 5, "b": 5}
    assert manifest["source"]["val_split"] == "val"


@pytest.mark.parametrize(
    ("size", "message"),
    [(100, "cannot hold out 100 of 100 images"), (1.0, "cannot hold out 1.0"), (0.5, "c has 1 image")],
)
def test_a_validation_split_that_cannot_be_taken_names_the_key(tmp_path, size, message):
    labels = np.array([0] * 50 + [1] * 49 + [2])
    loaded = Loaded(
        ["a", "b", "c"],
        {"train": (distinct_images(100), labels), "test": (distinct_images(3), labels[:3])},
        "x",
    )
    with pytest.raises(ValueError, match=f"dataset.val_size: {message}"):
        arrays.write_loaded(tmp_path, "toy", "toy", {"val_size": size, "seed": 0}, loaded)
    assert not (tmp_path / "manifest.json").exists()


def test_a_count_is_held_out_exactly_the_largest_remainders_giving_one_more():
    labels = np.repeat([0, 1, 2], [7, 7, 6])  # half of each: 3.5, 3.5 and 3
    held = splits.stratified_holdout(labels, 10, 0, "val")
    assert len(held) == 10 and list(np.bincount(labels[held])) == [4, 3, 3], "ties: the first class"
    assert len(splits.stratified_holdout(np.repeat([0, 1, 2], [34, 33, 33]), 0.15, 0, "val")) == 15
