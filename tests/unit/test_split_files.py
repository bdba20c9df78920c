"""A split's files (labbook/arrays.py): two .npy files written in chunks of rows with plain
writes, under temporary names until complete, memory-mapped when read; the data step's peak
memory while it writes a split far below the split's size; a split given as a Stream (an image
folder's) written as the same split in memory is, also where it gives up the validation split."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from labbook import arrays
from labbook.plan import files
from labbook.plan.kinds.kind import Loaded, Stream


def rows(count: int, start: int = 0, side: int = 4) -> np.ndarray:
    """count images, each told apart by its first pixels (its number, from start)."""
    images = np.random.default_rng(start).integers(0, 256, (count, side, side, 3), dtype=np.uint8)
    numbers = np.arange(start, start + count)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = numbers % 256, numbers // 256
    return images


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- the writer
@pytest.mark.parametrize("shape", [(0, 3), (7, 2, 2, 3), (99_999, 1), (3,)])
def test_the_header_is_numpys_and_keeps_its_size_for_fewer_rows(tmp_path, shape):
    header = arrays.npy_header(np.uint8, shape)
    assert len(header) % 64 == 0
    path = tmp_path / "a.npy"
    path.write_bytes(header + bytes(int(np.prod(shape))))
    assert np.load(path).shape == shape
    fewer = arrays.npy_header(np.uint8, (1, *shape[1:]), size=len(header))
    assert len(fewer) == len(header)
    path.write_bytes(fewer + bytes(int(np.prod(shape[1:], dtype=int))))
    assert np.load(path).shape == (1, *shape[1:])


def test_chunks_make_one_npy_equal_to_their_concatenation(tmp_path):
    chunks = [rows(5), rows(0, 5), rows(1, 5), rows(40, 6)]
    labels = [np.arange(len(c)) % 3 for c in chunks]
    with arrays.split_writer(tmp_path, "train", 46, (4, 4, 3)) as writer:
        for images, values in zip(chunks, labels, strict=True):
            writer.write(images, values)
            assert names(tmp_path) == [n for n in names(tmp_path) if n.startswith(".")], "no final name yet"
        assert writer.count == 46
    assert names(tmp_path) == ["train_images.npy", "train_labels.npy"], "no temporary file left"
    stored = np.load(tmp_path / "train_images.npy")
    np.testing.assert_array_equal(stored, np.concatenate(chunks))
    np.testing.assert_array_equal(np.load(tmp_path / "train_labels.npy"), np.concatenate(labels))
    assert np.load(tmp_path / "train_labels.npy").dtype == np.int64


def test_fewer_rows_than_announced_make_a_valid_npy_of_the_rows_written(tmp_path):
    with arrays.split_writer(tmp_path, "val", 100_000, (4, 4, 3)) as writer:
        writer.write(rows(7), np.zeros(7, int))
    images, labels = arrays.load_split(tmp_path, "val")
    assert images.shape == (7, 4, 4, 3) and labels.shape == (7,)
    np.testing.assert_array_equal(images, rows(7))
    # nothing past the rows: the header's size plus 7 rows, as load_split checks
    assert (tmp_path / "val_images.npy").stat().st_size == images.offset + 7 * 4 * 4 * 3
    with arrays.split_writer(tmp_path, "test", 5, (4, 4, 3)):
        pass  # no rows at all
    assert arrays.load_split(tmp_path, "test")[0].shape == (0, 4, 4, 3)


def test_more_rows_than_announced_or_other_rows_are_refused_and_leave_nothing(tmp_path):
    with pytest.raises(ValueError, match="more than the 3 rows announced"):
        with arrays.split_writer(tmp_path, "train", 3, (4, 4, 3)) as writer:
            writer.write(rows(2), [0, 1])
            writer.write(rows(2), [0, 1])
    with pytest.raises(ValueError, match="uint8 N×H×W×3"):
        with arrays.split_writer(tmp_path, "train", 3, (4, 4, 3)) as writer:
            writer.write(rows(2).astype(np.float32), [0, 1])
    with pytest.raises(ValueError, match="rows must be uint8"):
        with arrays.split_writer(tmp_path, "train", 3, (4, 4, 3)) as writer:
            writer.write(rows(2, side=5), [0, 1])
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        with arrays.split_writer(tmp_path, "train", 3, (4, 4, 3)) as writer:
            writer.write(rows(2), [0])
    assert names(tmp_path) == []


def test_an_interrupted_write_leaves_nothing_under_the_final_names(tmp_path):
    (tmp_path / "train_images.npy").write_bytes(b"an older, complete file")
    with pytest.raises(RuntimeError, match="decoding failed"):
        with arrays.split_writer(tmp_path, "train", 10, (4, 4, 3)) as writer:
            writer.write(rows(5), np.zeros(5, int))
            raise RuntimeError("decoding failed")
    assert names(tmp_path) == ["train_images.npy"], "the temporary files are removed"
    assert (tmp_path / "train_images.npy").read_bytes() == b"an older, complete file"


def test_a_killed_write_leaves_no_final_file_and_the_next_write_removes_its_remains(tmp_path):
    script = f"""
        import os, signal, numpy as np
        from labbook import arrays
        with arrays.split_writer({str(tmp_path)!r}, "train", 10, (4, 4, 3)) as writer:
            writer.write(np.zeros((5, 4, 4, 3), np.uint8), np.zeros(5, np.int64))
            os.kill(os.getpid(), signal.SIGKILL)
    """
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=_env())
    assert killed.returncode == -signal.SIGKILL
    left = names(tmp_path)
    assert len(left) == 2 and all(
        name.startswith((".train_images.npy.tmp-", ".train_labels.npy.tmp-")) for name in left
    )
    arrays.write_split(tmp_path, "train", rows(3), [0, 1, 2])
    assert names(tmp_path) == ["train_images.npy", "train_labels.npy"]


def test_load_split_memory_maps_the_images_read_only_and_holds_the_labels(tmp_path):
    arrays.write_split(tmp_path, "test", rows(20), np.arange(20) % 2)
    images, labels = arrays.load_split(tmp_path, "test")
    assert isinstance(images, np.memmap) and not images.flags.writeable
    assert (
        Path(images.filename).resolve() == (tmp_path / "test_images.npy").resolve() and images.offset == 128
    )
    assert type(labels) is np.ndarray and labels.dtype == np.int64
    np.testing.assert_array_equal(images[3:5], rows(20)[3:5])
    with pytest.raises(ValueError, match="no split 'tests'"):
        arrays.load_split(tmp_path, "tests")
    with pytest.raises(FileNotFoundError):
        arrays.load_split(tmp_path, "val")


def test_channel_statistics_do_not_depend_on_the_chunks():
    images = np.random.default_rng(1).integers(0, 256, (50, 9, 9, 3), dtype=np.uint8)
    whole = arrays.channel_stats(images)
    assert arrays.channel_stats(images, chunk=7) == whole
    pixels = images.reshape(-1, 3) / 255
    assert whole[0] == pytest.approx(pixels.mean(0), abs=1e-6)
    assert whole[1] == pytest.approx(pixels.std(0), abs=1e-6)


# ---------------------------------------------------------------- streams in the data step
def stream_of(images, labels, chunk: int, bound=None, skip=()) -> Stream:
    """images in chunks of `chunk` rows, those at `skip` left out (unreadable files)."""
    keep = np.setdiff1d(np.arange(len(labels)), list(skip))

    def chunks():
        for start in range(0, len(labels), chunk):
            part = keep[(keep >= start) & (keep < start + chunk)]
            yield images[part], labels[part]

    return Stream(bound or len(labels), images.shape[1:], chunks)


def toy(train, test, **extra) -> Loaded:
    return Loaded(["a", "b", "c"], {"train": train, "test": test}, "hash", **extra)


def split_bytes(folder) -> dict:
    return {name: (folder / name).read_bytes() for name in files.DATA.values() if name.endswith(".npy")}


@pytest.mark.parametrize("skip", [(), (3, 4, 50)])
def test_a_stream_giving_up_the_validation_split_is_written_as_the_same_split_in_memory(tmp_path, skip):
    images, labels = rows(120), np.repeat([0, 1, 2], [60, 40, 20])
    test = (rows(12, 500), np.arange(12) % 3)
    options = {"val_size": 24, "seed": 2}
    kept = np.setdiff1d(np.arange(120), skip)
    in_memory = arrays.write_loaded(
        tmp_path / "a", "toy", "toy", options, toy((images[kept], labels[kept]), test)
    )
    streamed = toy(stream_of(images, labels, 17, skip=skip), stream_of(*test, 5, bound=40))
    manifest = arrays.write_loaded(tmp_path / "b", "toy", "toy", options, streamed)
    assert manifest == in_memory
    assert split_bytes(tmp_path / "b") == split_bytes(tmp_path / "a")
    assert sum(manifest["counts"]["val"].values()) == 24, (
        "the count held out is exact, also with files skipped"
    )
    assert names(tmp_path / "b") == sorted(files.DATA.values()), "the unsplit training images leave no file"


def test_finish_runs_after_every_stream_and_before_any_file_is_kept(tmp_path):
    read = []

    def finish():
        assert read == ["train", "test"], "every split was read"
        loaded.source_hash = "known only now"

    def chunks(split, images, labels):
        read.append(split)
        yield images, labels

    train = Stream(30, (4, 4, 3), lambda: chunks("train", rows(30), np.arange(30) % 3))
    test = Stream(6, (4, 4, 3), lambda: chunks("test", rows(6), np.arange(6) % 3))
    loaded = toy(train, test, finish=finish)
    manifest = arrays.write_loaded(tmp_path, "toy", "toy", {"val_size": 0.2, "seed": 0}, loaded)
    assert manifest["source_hash"] == "known only now" and manifest["counts"]["val"] == {
        "a": 2,
        "b": 2,
        "c": 2,
    }

    def refuse():
        raise ValueError("a class has no readable image")

    read.clear()
    (tmp_path / "stale").mkdir()
    with pytest.raises(ValueError, match="no readable image"):
        arrays.write_loaded(
            tmp_path / "stale", "toy", "toy", {"val_size": 0.2, "seed": 0}, toy(train, test, finish=refuse)
        )
    assert names(tmp_path / "stale") == []


def test_a_stream_failing_half_way_leaves_no_split_file_and_no_manifest(tmp_path):
    arrays.write_loaded(
        tmp_path,
        "toy",
        "toy",
        {"val_size": 3, "seed": 0},
        toy((rows(30), np.arange(30) % 3), (rows(6), np.arange(6) % 3)),
    )
    before = split_bytes(tmp_path)

    def failing():
        yield rows(5), np.arange(5) % 3
        raise OSError("the disk holding the photos went away")

    with pytest.raises(OSError, match="went away"):
        arrays.write_loaded(
            tmp_path,
            "toy",
            "toy",
            {"val_size": 3, "seed": 0},
            toy((rows(30), np.arange(30) % 3), Stream(9, (4, 4, 3), failing)),
        )
    assert not (tmp_path / "manifest.json").exists(), "an earlier manifest does not vouch for these files"
    assert not [name for name in names(tmp_path) if name.startswith(".")], "no temporary file left"
    assert split_bytes(tmp_path) == before, "no file was replaced"


# ---------------------------------------------------------------- peak memory
SPLIT_MB = 200
MEASURE = """
import resource, sys, time
import numpy as np
from labbook import arrays
from labbook.plan.kinds.kind import Loaded, Stream

side, count = 224, {count}
chunk = np.random.default_rng(0).integers(0, 256, (64, side, side, 3), dtype=np.uint8)

def chunks():
    for start in range(0, count, 64):
        n = min(64, count - start)
        yield chunk[:n], np.arange(start, start + n) % 4

streams = {{"train": Stream(count, (side, side, 3), chunks), "test": Stream(count // 8, (side, side, 3), lambda: iter([(chunk[:8], np.arange(8) % 4)]))}}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
arrays.write_loaded(sys.argv[1], "big", "toy", {{"val_size": 0.1, "seed": 0}}, Loaded(list("abcd"), streams, "h"))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB, as Linux counts")
def test_writing_a_split_far_larger_than_its_chunks_keeps_the_peak_memory_low(tmp_path):
    """A 200 MB training split (224 px), streamed in chunks, its validation split held out
    through a temporary file: the process's peak memory grows by far less than the split."""
    count = SPLIT_MB * 10**6 // (224 * 224 * 3)
    script = MEASURE.format(count=count)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=_env()
    )
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    grown_mb = (after - before) / 1024
    assert grown_mb < SPLIT_MB / 4, f"peak memory grew by {grown_mb:.0f} MB writing a {SPLIT_MB} MB split"
    images, labels = arrays.load_split(tmp_path, "train")
    assert len(images) + len(arrays.load_split(tmp_path, "val")[1]) == count
    assert images.nbytes > 0.85 * SPLIT_MB * 10**6


def _env() -> dict:
    scripts = os.path.join(os.path.dirname(arrays.__file__), os.pardir)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.path.abspath(scripts), os.environ.get("PYTHONPATH", "")]),
    }
