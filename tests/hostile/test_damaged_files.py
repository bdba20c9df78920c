"""Damaged and stray files: writes that fail half-way or on a full disk, the temporary files of
killed processes, damaged checkpoints, truncated arrays and step outputs. Nothing is silently
wrong: each is cleaned up, treated as absent, or an error naming the file."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from labbook import arrays, atomic, report
from labbook.plan.record import JobRecord


def test_a_failed_write_leaves_no_temporary_file_and_the_old_file_intact(tmp_path):
    target = tmp_path / "manifest.json"
    atomic.atomic_write(target, lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"half")
        raise RuntimeError("killed by a bug")

    with pytest.raises(RuntimeError, match="killed by a bug"):
        atomic.atomic_write(target, fail)
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    assert target.read_bytes() == b"old"


def test_temporary_files_of_dead_processes_are_removed_on_the_next_write(tmp_path):
    target = tmp_path / "train_images.npy"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = atomic._temporary_name(target, int(dead.stdout))
    stale.write_bytes(b"half of a killed write")
    alive = atomic._temporary_name(target, os.getppid())  # a running process's write in progress
    alive.write_bytes(b"in progress")
    other_host = tmp_path / f".train_images.npy.tmp-another-host-{int(dead.stdout)}"
    other_host.write_bytes(b"another machine's")
    atomic.atomic_write(target, lambda f: f.write(b"new"))
    assert not stale.exists()
    assert alive.exists() and other_host.exists()
    assert target.read_bytes() == b"new"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("writer", ["bytes", "numpy", "torch"])
def test_a_full_disk_says_so_and_names_the_folder(tmp_path, monkeypatch, writer):
    """/dev/full answers every write with ENOSPC, as a full disk does."""
    import builtins

    real_open = builtins.open
    monkeypatch.setattr(atomic, "open", lambda path, mode: real_open("/dev/full", mode), raising=False)
    if writer == "torch":
        import torch

        write = lambda f: torch.save({"weights": torch.zeros(300_000)}, f)  # noqa: E731
    elif writer == "numpy":
        write = lambda f: np.savez(f, images=np.zeros((50, 32, 32, 3), np.uint8))  # noqa: E731
    else:
        write = lambda f: f.write(b"x" * 1_000_000)  # noqa: E731
    with pytest.raises(
        atomic.DiskFullError, match=f"no space left on {tmp_path} while writing model.pt"
    ) as error:
        atomic.atomic_write(tmp_path / "model.pt", write)
    assert error.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not-a-dict"])
def test_a_damaged_checkpoint_is_treated_as_absent_and_said_so(tmp_path, damage):
    import torch
    from labbook import train

    path = tmp_path / "checkpoint.pt"
    train.save_checkpoint(path, {"fingerprint": "f", "epoch": 3, "model": {"w": torch.zeros(1000)}})
    assert train.load_checkpoint(path, "f", log=lambda *_: None)["epoch"] == 3
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save([1, 2, 3], path)
    said = []
    assert train.load_checkpoint(path, "f", log=said.append) is None
    assert len(said) == 1 and str(path) in said[0] and "starts afresh" in said[0]


def test_training_over_a_damaged_checkpoint_runs_and_drops_it_unless_asked(demo_data, tmp_path):
    from labbook import train

    options = {"model": "cifarnet", "epochs": 1, "batch_size": 128, "device": "cpu", "train_subset": 256}
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 half a zip")
    said = []
    result = train.train(
        train.TrainOptions.from_dict(options), demo_data, tmp_path, threads=2, log=said.append
    )
    assert result["resumed_after_epoch"] == 0 and any("damaged" in line for line in said)
    assert not (tmp_path / "checkpoint.pt").exists(), "a finished run's checkpoint has no use"
    kept = train.TrainOptions.from_dict({**options, "keep_checkpoint": True})
    train.train(kept, demo_data, tmp_path / "kept", threads=2, log=said.append)
    assert (tmp_path / "kept" / "checkpoint.pt").exists()
    assert kept.fingerprint(0, "d") == train.TrainOptions.from_dict(options).fingerprint(0, "d")


def test_a_truncated_npz_is_an_error_naming_it(tmp_path):
    path, keys = tmp_path / "predictions.npz", ("logits", "labels")
    np.savez(path, **{key: np.arange(5000) for key in keys})
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(ValueError, match=f"{path} is damaged or truncated"):
        arrays.load_arrays(path, keys)
    with pytest.raises(FileNotFoundError):
        arrays.load_arrays(tmp_path / "absent.npz", keys)


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "header only": data[:128],
        "extra bytes": data + b"\0" * 48,
        "empty": b"",
        "garbage": os.urandom(len(data)),
        "not numpy's header": data[:8] + b"\x40\x00" + b"{'descr': nonsense}".ljust(64) + data[74:],
    }[how]
    path.write_bytes(damaged)


@pytest.mark.parametrize("part", ["images", "labels"])
@pytest.mark.parametrize(
    "how", ["truncated", "header only", "extra bytes", "empty", "garbage", "not numpy's header"]
)
def test_a_damaged_split_file_is_an_error_naming_it_and_saying_to_rerun_the_data_step(tmp_path, part, how):
    rng = np.random.default_rng(0)
    arrays.write_split(
        tmp_path, "train", rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8), np.arange(40) % 2
    )
    path = tmp_path / f"train_{part}.npy"
    _damage(path, how)
    with pytest.raises(ValueError, match=f"{path} is damaged or truncated.*rerun the data step") as raised:
        arrays.load_split(tmp_path, "train")
    assert "(prepare_data)" in str(raised.value)


def test_split_files_that_do_not_agree_are_an_error_naming_them(tmp_path):
    images = np.zeros((6, 4, 4, 3), np.uint8)
    arrays.write_split(tmp_path, "val", images, np.arange(6))
    np.save(tmp_path / "val_labels.npy", np.arange(5))  # another run's labels
    with pytest.raises(ValueError, match="val_labels.npy is damaged.*5 labels for the 6 images of"):
        arrays.load_split(tmp_path, "val")
    np.save(tmp_path / "val_labels.npy", np.arange(6, dtype=np.int32))
    with pytest.raises(ValueError, match="val_labels.npy is damaged.*int32"):
        arrays.load_split(tmp_path, "val")
    np.save(tmp_path / "val_images.npy", images[..., 0])
    with pytest.raises(ValueError, match=r"val_images.npy is damaged.*\(6, 4, 4\), not uint8 N×H×W×3"):
        arrays.load_split(tmp_path, "val")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_while_writing_a_split_names_the_folder_and_leaves_nothing(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open
    monkeypatch.setattr(atomic, "open", lambda path, mode: real_open("/dev/full", mode), raising=False)
    with pytest.raises(
        atomic.DiskFullError, match=f"no space left on {tmp_path} while writing train_images.npy"
    ):
        arrays.write_split(tmp_path, "train", np.zeros((50, 32, 32, 3), np.uint8), np.zeros(50, int))
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_step_output_read_by_the_report_is_named(tmp_path):
    job = JobRecord("a", 0, str(tmp_path), str(tmp_path / "analysis"))
    job.train_files()["metrics"].write_text('{"model": "cifar')
    with pytest.raises(ValueError, match=f"{job.train_files()['metrics']} is damaged or truncated"):
        report.load_runs([job.to_dict()])
