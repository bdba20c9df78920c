"""The offline demo dataset (labbook/demo.py): deterministic, balanced, varied images, and the
demo kind's manifest as the data step writes it."""

import numpy as np
from labbook import demo, prepare
from labbook.plan import datasets


def test_demo_is_deterministic_balanced_and_varied():
    images, labels = demo.make_images(200, seed=5)
    again, again_labels = demo.make_images(200, seed=5)
    assert images.dtype == np.uint8 and images.shape == (200, 32, 32, 3)
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    assert np.bincount(labels).tolist() == [20] * 10
    assert not np.array_equal(images, demo.make_images(200, seed=6)[0])
    assert len({img.tobytes() for img in images}) == 200, "no two images alike"


def test_demo_splits_differ():
    splits = demo.make_dataset(50, 50, seed=0)
    assert not np.array_equal(splits["train"][0], splits["test"][0])


def test_demo_manifest_is_unchanged(tmp_path):
    spec = {"name": "shapes", "kind": "demo", "train_size": 20, "val_size": 5, "test_size": 10}
    manifest = prepare.prepare(spec, tmp_path)
    assert manifest["source_hash"] == demo.source_hash(20, 10, 0, 32)
    assert manifest["source"] == {
        "kind": "demo",
        "train_size": 20,
        "val_size": 5,
        "test_size": 10,
        "seed": 0,
        "image_size": 32,
        "val_split": "val_size 5 of the training images, seed 0",
    }
    assert datasets.fingerprint(spec) != datasets.fingerprint({**spec, "seed": 1})
