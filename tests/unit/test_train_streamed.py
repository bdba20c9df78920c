"""Streamed training data (labbook/batches.py): read batch by batch from the data step's file, the
same batches as the resident split for the same generator, and a training run gives the same
numbers either way; where each split lives (placements)."""

import numpy as np
import pytest
import torch
from labbook import batches, prepare, train

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
SPLITS = {"name": "shapes", "kind": "demo", "train_size": 300, "val_size": 60, "test_size": 60}


def split_file(tmp_path, n=70, size=12):
    """A split file as the data step writes it (uint8 N×H×W×3 .npy), its memory map and labels."""
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npy"
    np.save(path, rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))
    return np.load(path, mmap_mode="r"), rng.integers(0, 10, n)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"crop_padding": 2, "flip": True, "cutout": 3},
        {"crop_scale": 0.3, "crop_padding": 1, "flip": True, "cutout": 2},
    ],
)
def test_a_streamed_epoch_is_the_resident_epoch_batch_for_batch(tmp_path, changes):
    images, labels = split_file(tmp_path)
    opts = train.TrainOptions(**{"crop_padding": 0, "flip": False, "cutout": 0, **changes})
    args = (labels, MEAN, STD, torch.device("cpu"), 8)  # input size 8 from 12-pixel images
    resident = batches.DeviceData(np.asarray(images), *args)
    streamed = batches.StreamedData(batches.Rows(images), *args)
    a = list(resident.epoch(32, opts, torch.Generator().manual_seed(3)))
    b = list(streamed.epoch(32, opts, torch.Generator().manual_seed(3)))
    assert [len(y) for _, y in b] == [32, 32, 6]
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    for (xa, ya), (xb, yb) in zip(resident.in_order(25), streamed.in_order(25), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_streamed_rows_of_a_subset_are_those_rows_of_the_file(tmp_path):
    images, labels = split_file(tmp_path)
    keep = np.array([1, 2, 3, 10, 40, 41, 69])
    rows = batches.Rows(images, keep)
    streamed = batches.StreamedData(rows, labels[keep], MEAN, STD, "cpu")
    (x, y), = streamed.in_order(100)  # fmt: skip
    resident = batches.DeviceData(np.asarray(images)[keep], labels[keep], MEAN, STD, "cpu")
    assert torch.equal(x, next(resident.in_order(100))[0]) and y.tolist() == labels[keep].tolist()
    assert rows.nbytes == 7 * 12 * 12 * 3


def test_a_truncated_split_file_is_an_error_naming_it(tmp_path):
    images, labels = split_file(tmp_path)
    rows = batches.Rows(images)
    with open(images.filename, "r+b") as f:
        f.truncate(rows.offset + 10 * rows.row_bytes)
    streamed = batches.StreamedData(rows, labels, MEAN, STD, "cpu")
    with pytest.raises(ValueError, match=r"images\.npy ends early: it is truncated; rerun the data step"):
        list(streamed.in_order(16))


def test_stopping_a_streamed_epoch_early_ends_its_reader(tmp_path):
    images, labels = split_file(tmp_path, n=400)
    rows = batches.Rows(images)
    reads, read = [], rows.read
    rows.read = lambda index, out: reads.append(len(index)) or read(index, out)
    streamed = batches.StreamedData(rows, labels, MEAN, STD, "cpu")
    epoch = streamed.epoch(8, train.TrainOptions(), torch.Generator())
    next(epoch)
    epoch.close()  # what a diverged step's `break` does to the generator
    import threading

    assert not [t for t in threading.enumerate() if t.name == "labbook-stream"]
    assert len(reads) <= batches.PREFETCH + 2, f"read on after the epoch stopped: {len(reads)} of 50 batches"


def test_auto_keeps_the_smallest_splits_resident_within_a_quarter_of_free_memory():
    sizes = {"train": 700, "val": 100, "test": 200}
    assert batches.placements(sizes, "auto", 4000) == {
        "train": "resident",
        "val": "resident",
        "test": "resident",
    }
    assert batches.placements(sizes, "auto", 1600) == {
        "train": "streamed",
        "val": "resident",
        "test": "resident",
    }
    assert batches.placements(sizes, "auto", 500) == {
        "train": "streamed",
        "val": "resident",
        "test": "streamed",
    }
    # a quarter, and no more: 2700 leaves train just over what is left (675 - 300 < 700)
    assert batches.placements(sizes, "auto", 2700)["train"] == "streamed"
    # what the resident ones take is spent: two of 300 in 500, the second streams
    assert batches.placements({"a": 300, "b": 300}, "auto", 2000) == {"a": "resident", "b": "streamed"}
    assert batches.placements(sizes, "streamed", 10**12) == dict.fromkeys(sizes, "streamed")
    assert batches.placements(sizes, "resident", 1) == dict.fromkeys(sizes, "resident")


def test_a_run_streamed_gives_the_numbers_of_the_same_run_resident(tmp_path):
    prepare.prepare(SPLITS, tmp_path / "data")
    quick = {"model": "simplecnn", "device": "cpu", "epochs": 2, "batch_size": 64, "crop_scale": 0.5}
    runs = {}
    for placement in ("resident", "streamed"):
        opts = train.TrainOptions.from_dict({**quick, "data_placement": placement})
        runs[placement] = train.train(opts, tmp_path / "data", tmp_path / placement, seed=1, threads=1,
                                      log=lambda *_: None)  # fmt: skip
    resident, streamed = runs["resident"], runs["streamed"]
    assert resident["data_placement"] == dict.fromkeys(("train", "val", "test"), "resident")
    assert streamed["data_placement"] == dict.fromkeys(("train", "val", "test"), "streamed")
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert [r[key] for r in streamed["history"]] == [r[key] for r in resident["history"]], key
    assert (streamed["test_loss"], streamed["test_acc"]) == (resident["test_loss"], resident["test_acc"])
    logits = [np.load(tmp_path / p / "predictions.npz")["logits"] for p in runs]
    assert np.array_equal(*logits)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_jobs_memory_limit_bounds_the_free_memory_auto_counts_on(tmp_path, version):
    """A Slurm job's cgroup may allow far less than the node has free: auto must not keep a split
    resident that the job's limit would kill."""
    membership = tmp_path / "cgroup"
    if version == "v1":
        membership.write_text("4:memory:/slurm/job_7\n1:cpu:/\n")
        folder, files = tmp_path / "memory/slurm/job_7", ("memory.limit_in_bytes", "memory.usage_in_bytes")
    else:
        membership.write_text("0::/system.slice/job_7\n")
        folder, files = tmp_path / "system.slice/job_7", ("memory.max", "memory.current")
    folder.mkdir(parents=True)
    (folder / files[0]).write_text("8000000000\n")
    (folder / files[1]).write_text("3000000000\n")
    assert batches.cgroup_memory_left(tmp_path, membership) == 5_000_000_000
    (folder / files[0]).write_text("max\n" if version == "v2" else "9223372036854771712\n")
    assert batches.cgroup_memory_left(tmp_path, membership) is None, "no limit"
    assert batches.cgroup_memory_left(tmp_path, tmp_path / "absent") is None


def test_where_the_data_live_does_not_change_which_checkpoint_resumes():
    """auto may choose otherwise on a retry (another node, more memory): the numbers are the same,
    so a checkpoint of the run resumes whichever placement the attempt gets."""
    resident = train.TrainOptions(data_placement="resident").fingerprint(0, "data")
    assert train.TrainOptions(data_placement="streamed").fingerprint(0, "data") == resident
    assert train.TrainOptions(data_placement="resident", lr=0.5).fingerprint(0, "data") != resident
