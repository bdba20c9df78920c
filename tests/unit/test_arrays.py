"""The cache format steps hand each other (labbook/arrays.py): split arrays and the manifest
with its statistics, written atomically and read back; what is not uint8 RGB is refused."""

import json

import numpy as np
import pytest
from labbook import arrays


def test_cache_round_trip_and_manifest_statistics(tmp_path):
    rng = np.random.default_rng(0)
    splits = {
        "train": (rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8), np.arange(40) % 2),
        "test": (rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), np.arange(10) % 2),
    }
    manifest = arrays.build_manifest("toy", ["a", "b"], splits, source_hash="abc")
    arrays.write_dataset(tmp_path, manifest, splits)
    images, labels = arrays.load_split(tmp_path, "train")
    assert np.array_equal(images, splits["train"][0]) and labels.dtype == np.int64
    stored = json.loads((tmp_path / "manifest.json").read_text())
    assert stored["counts"] == {"train": {"a": 20, "b": 20}, "test": {"a": 5, "b": 5}}
    assert stored["image_shape"] == [8, 8, 3]
    pixels = splits["train"][0].reshape(-1, 3) / 255
    assert stored["mean"] == pytest.approx(pixels.mean(0), abs=1e-6)
    assert stored["std"] == pytest.approx(pixels.std(0), abs=1e-5)
    assert not list(tmp_path.glob(".*tmp*")), "no temporary files left behind"


def test_cache_rejects_what_is_not_uint8_rgb(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        arrays.write_split(tmp_path, "train", np.zeros((2, 4, 4, 3), np.float32), [0, 1])
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        arrays.write_split(tmp_path, "train", np.zeros((2, 4, 4, 3), np.uint8), [0, 1, 2])
    with pytest.raises(FileNotFoundError, match="prepare_data"):
        arrays.read_manifest(tmp_path)
