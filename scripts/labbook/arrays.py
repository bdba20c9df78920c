"""The format steps hand each other: per split, two uncompressed .npy files, the images (uint8
N×H×W×3) and their labels (int64 N), plus manifest.json (plan/files.py names them).

Readable with numpy alone, so steps that do not train (analysis, report) need no torch. A reader
memory-maps the images (load_split) and so touches only the rows it reads. The data step writes a
split in chunks of rows as they come (split_writer), with plain writes, never holding the whole
split: the decoded images of a large image folder do not fit in memory.
"""

import contextlib
import errno
import itertools
import json
import math
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import provenance
from .atomic import DiskFullError, atomic_open, atomic_write, is_disk_full
from .plan import files
from .plan.kinds.kind import Stream
from .splits import stratified_holdout

MANIFEST = files.DATA["manifest"]
CHUNK_BYTES = 16 << 20  # the rows of an in-memory split handed to its file per write, and read back per read
STATS_PIXELS = 1 << 18  # pixels per block of the channel statistics: bounds their temporary arrays
_PREFIX = 10  # of a version 1.0 .npy header: magic string (6), version (2), header length (2)


# ---------------------------------------------------------------- .npy files written in chunks of rows
def npy_header(dtype, shape, size: int | None = None) -> bytes:
    """The header of a version 1.0 .npy file of a C-order array (numpy.lib.format reads it),
    padded with spaces to `size` bytes; by default to the next multiple of 64, as numpy pads."""
    descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {tuple(shape)!r}, }}".encode("latin1")
    needed = _PREFIX + len(text) + 1  # + the closing newline
    size = -(-needed // 64) * 64 if size is None else size
    if needed > size or size - _PREFIX > 0xFFFF:
        raise ValueError(f"a .npy header of shape {tuple(shape)} does not fit in {size} bytes")
    padded = text + b" " * (size - needed) + b"\n"
    return np.lib.format.magic(1, 0) + struct.pack("<H", len(padded)) + padded


class NpyWriter:
    """Rows appended to an open .npy file with plain writes: a writable memory map would count
    every page written in the process's memory, a file's pages stay the kernel's. The header is
    written first for `bound` rows and, when done, for the rows written: its size does not
    change (fewer rows take no more digits). npy_writer() opens one atomically."""

    def __init__(self, file, dtype, row_shape, bound: int, path="array.npy"):
        """file: open for writing, at its start; path: the file's final name (for messages)."""
        self.file, self.path, self.name = file, Path(path), Path(path).name
        self.dtype, self.row_shape, self.bound = np.dtype(dtype), tuple(row_shape), int(bound)
        self.rows = 0
        header = npy_header(self.dtype, (self.bound, *self.row_shape))
        self.header_size = len(header)
        file.write(header)

    def write(self, rows) -> None:
        rows = np.asarray(rows)
        if rows.dtype != self.dtype or rows.shape[1:] != self.row_shape:
            raise ValueError(
                f"{self.name}: rows must be {self.dtype} ?×{'×'.join(map(str, self.row_shape))}, "
                f"got {rows.dtype} {rows.shape}"
            )
        if self.rows + len(rows) > self.bound:
            raise ValueError(f"{self.name}: more than the {self.bound} rows announced")
        if len(rows):
            with self._naming_a_full_disk():
                self.file.write(memoryview(np.ascontiguousarray(rows)).cast("B"))
        self.rows += len(rows)

    def finish(self) -> None:
        """The header for the rows written (rows are only ever appended: the file ends with them)."""
        with self._naming_a_full_disk():
            self.file.seek(0)
            self.file.write(npy_header(self.dtype, (self.rows, *self.row_shape), self.header_size))
            self.file.flush()

    @contextlib.contextmanager
    def _naming_a_full_disk(self):
        """A full disk is named with this file (another file's context would otherwise name its own)."""
        try:
            yield
        except OSError as error:
            if not is_disk_full(error) or isinstance(error, DiskFullError):
                raise
            raise DiskFullError(
                errno.ENOSPC, f"no space left on {self.path.parent} while writing {self.name}"
            ) from error


@contextlib.contextmanager
def npy_writer(path, dtype, row_shape, bound: int):
    """A NpyWriter of `path`, written under a temporary name and renamed to it when the block
    ends (atomic.atomic_open): an interrupted write leaves nothing under the final name."""
    with atomic_open(path) as f:
        writer = NpyWriter(f, dtype, row_shape, bound, path)
        yield writer
        writer.finish()


class ChannelSums:
    """Per-channel counts of each of the 256 values: exact, so the statistics of a split added
    in chunks are the same whatever the chunks (and counting is faster than summing)."""

    def __init__(self):
        self.counts = np.zeros((3, 256), np.int64)

    def add(self, images: np.ndarray) -> None:
        flat = np.asarray(images).reshape(-1, 3)
        for start in range(0, len(flat), STATS_PIXELS):
            block = flat[start : start + STATS_PIXELS]
            for channel in range(3):
                self.counts[channel] += np.bincount(block[:, channel], minlength=256)

    def stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std on the 0–1 scale, rounded to 6 decimals."""
        values = np.arange(256, dtype=np.float64) / 255
        pixels = self.counts.sum(1)
        mean = self.counts @ values / pixels
        mean_square = self.counts @ values**2 / pixels
        std = np.sqrt(np.maximum(mean_square - mean**2, 1e-12))
        return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


class SplitWriter:
    """One split's images and labels, written in chunks (split_writer opens one); keeps the
    labels written and the channel sums of the images."""

    def __init__(self, split: str, images: NpyWriter, labels: NpyWriter):
        self.split, self._images, self._labels = split, images, labels
        self.sums = ChannelSums()
        self._written = []

    @property
    def image_shape(self) -> tuple:
        return self._images.row_shape

    @property
    def count(self) -> int:
        return self._images.rows

    def write(self, images: np.ndarray, labels) -> None:
        labels = _check_split(self.split, images, labels)
        self._images.write(images)
        self._labels.write(labels)
        self.sums.add(images)
        self._written.append(labels)

    def labels(self) -> np.ndarray:
        return np.concatenate(self._written) if self._written else np.empty(0, np.int64)


@contextlib.contextmanager
def split_writer(data_dir, split: str, bound: int, image_shape):
    """with split_writer(data_dir, "train", at_most, (H, W, 3)) as w: w.write(images, labels)…
    Both files are written under temporary names and renamed when the block ends, holding the
    rows written (up to `bound`); an error or a kill leaves neither under its final name."""
    image_shape = tuple(int(v) for v in image_shape)
    if len(image_shape) != 3 or image_shape[-1] != 3:
        raise ValueError(f"{split}: images must be H×W×3, got shape {image_shape}")
    images_name, labels_name = files.split_files(split)
    with (
        npy_writer(Path(data_dir) / images_name, np.uint8, image_shape, bound) as images,
        npy_writer(Path(data_dir) / labels_name, np.int64, (), bound) as labels,
    ):
        yield SplitWriter(split, images, labels)


def _rows_per_chunk(image_shape) -> int:
    return max(1, CHUNK_BYTES // math.prod(image_shape))


def _check_split(split: str, images, labels) -> np.ndarray:
    """The labels as int64, once images are uint8 N×H×W×3 and as many as they."""
    labels = np.asarray(labels, dtype=np.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{split}: images must be uint8 N×H×W×3, got {images.dtype} {images.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    return labels


def _array_chunks(images: np.ndarray, labels: np.ndarray):
    """An in-memory (or memory-mapped) split in chunks of rows."""
    step = _rows_per_chunk(images.shape[1:])
    for start in range(0, len(labels), step):
        yield images[start : start + step], labels[start : start + step]


def write_split(data_dir, split: str, images: np.ndarray, labels) -> Path:
    """An in-memory split's two files (written in chunks); returns the images' path."""
    labels = _check_split(split, images, labels)
    with split_writer(data_dir, split, len(images), images.shape[1:]) as writer:
        for part in _array_chunks(images, labels):
            writer.write(*part)
    return Path(data_dir) / files.split_files(split)[0]


# ---------------------------------------------------------------- reading
def load_arrays(path, names) -> tuple:
    """The named arrays of one .npz; a truncated or damaged file is an error naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as f, np.load(f) as npz:  # np.load(path) leaves a bad file open
            return tuple(npz[name] for name in names)
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(
            f"{path} is damaged or truncated ({type(error).__name__}: {error}); "
            "delete it and rerun the step that writes it"
        ) from error


def _damaged(path, problem: str) -> ValueError:
    return ValueError(
        f"{path} is damaged or truncated ({problem}); delete it and rerun the data step "
        "(prepare_data) that writes it"
    )


def load_npy(path, mmap: bool = False) -> np.ndarray:
    """One .npy file of the data step, its header checked against its size first: a truncated
    or damaged file is a ValueError naming it. mmap: a read-only memory map, else in memory."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy version {version} is not one this step writes")
            offset = f.tell()
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, SyntaxError) as error:
        raise _damaged(path, f"{type(error).__name__}: {error}") from error
    if fortran_order or dtype.hasobject:
        raise _damaged(path, f"{dtype} {'Fortran-order ' if fortran_order else ''}array")
    expected = offset + math.prod(shape) * dtype.itemsize
    actual = path.stat().st_size
    if actual != expected:
        raise _damaged(path, f"{actual} bytes where its header announces {expected}")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise _damaged(path, f"{type(error).__name__}: {error}") from error


def load_split(data_dir, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one split: the images a read-only memory map of their file (np.memmap:
    only the rows read are read), the labels int64 in memory. A damaged or truncated file, or
    two that do not agree, is a ValueError naming it."""
    images_path, labels_path = (Path(data_dir) / name for name in files.split_files(split))
    images = load_npy(images_path, mmap=True)
    labels = load_npy(labels_path)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise _damaged(images_path, f"holds {images.dtype} {images.shape}, not uint8 N×H×W×3 images")
    if labels.dtype != np.int64 or labels.ndim != 1:
        raise _damaged(labels_path, f"holds {labels.dtype} {labels.shape}, not int64 labels")
    if len(images) != len(labels):
        raise _damaged(labels_path, f"{len(labels)} labels for the {len(images)} images of {images_path}")
    return images, labels


# ---------------------------------------------------------------- the manifest
def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on the 0–1 scale, computed in chunks to bound memory."""
    sums = ChannelSums()
    for start in range(0, len(images), chunk):
        sums.add(images[start : start + chunk])
    return sums.stats()


def _manifest(name, classes, image_shape, labels: dict, stats, source_hash, skipped, source) -> dict:
    """labels: {split: its labels}; stats: the training split's (mean, std). Counts are per
    class name, in class order. Paths under the home directory are written with ~
    (provenance.scrub): they would name the user."""
    mean, std = stats
    manifest = {
        "dataset": name,
        "source": source or {},
        "classes": list(classes),
        "image_shape": list(image_shape),
        "counts": {
            split: {c: int(np.sum(values == i)) for i, c in enumerate(classes)}
            for split, values in labels.items()
        },
        "mean": mean,
        "std": std,
        "source_hash": source_hash,
        "skipped": list(skipped),
    }
    return provenance.scrub(manifest)


def build_manifest(name, classes, splits, source_hash, skipped=(), source=None) -> dict:
    """The manifest of in-memory splits: {split: (images, labels)}."""
    train_images = splits["train"][0]
    labels = {split: np.asarray(values) for split, (_, values) in splits.items()}
    stats = channel_stats(train_images)
    return _manifest(name, classes, train_images.shape[1:], labels, stats, source_hash, skipped, source)


def _write_manifest(data_dir, manifest: dict) -> Path:
    path = Path(data_dir) / MANIFEST
    text = json.dumps(manifest, indent=2).encode()
    atomic_write(path, lambda f: f.write(text))
    return path


def write_dataset(data_dir, manifest: dict, splits) -> Path:
    """Write every in-memory split, then the manifest last: a manifest means the arrays are complete."""
    for split, (images, labels) in splits.items():
        write_split(data_dir, split, images, labels)
    return _write_manifest(data_dir, manifest)


# ---------------------------------------------------------------- the data step
class _Unsplit:
    """A training split read from a Stream into an unnamed temporary file of the data folder
    (it goes with the process, also a killed one), to be read back in chunks once its labels
    say which images the validation split takes."""

    def __init__(self, folder: Path, stream: Stream):
        self.folder, self.image_shape = folder, tuple(stream.image_shape)
        self.file = tempfile.TemporaryFile(dir=folder)
        parts = []
        try:
            for images, labels in stream.chunks():
                labels = _check_split("train", images, labels)
                if images.shape[1:] != self.image_shape:
                    raise ValueError(f"train: images of {images.shape[1:]}, not {self.image_shape}")
                self.file.write(memoryview(np.ascontiguousarray(images)).cast("B"))
                parts.append(labels)
            self.file.flush()
        except Exception as error:
            self.file.close()
            if is_disk_full(error):
                raise DiskFullError(
                    errno.ENOSPC, f"no space left on {folder} while reading the training images"
                ) from error
            raise
        self.labels = np.concatenate(parts) if parts else np.empty(0, np.int64)

    def chunks(self):
        """(images, labels) in chunks of rows, read into one buffer: a chunk is valid until the next."""
        step = min(_rows_per_chunk(self.image_shape), max(len(self.labels), 1))
        buffer = np.empty((step, *self.image_shape), np.uint8)
        self.file.seek(0)
        for start in range(0, len(self.labels), step):
            rows = min(step, len(self.labels) - start)
            view, got = memoryview(buffer[:rows]).cast("B"), 0
            while got < len(view):
                read = self.file.readinto(view[got:])
                if not read:
                    raise OSError(f"the temporary file of the training images in {self.folder} ends early")
                got += read
            yield buffer[:rows], self.labels[start : start + rows]

    def close(self):
        self.file.close()


def _source(split: str, value):
    """(at most how many images, their shape, an iterable of (images, labels) chunks)."""
    if isinstance(value, Stream):
        return value.bound, value.image_shape, value.chunks()
    images, labels = value
    labels = _check_split(split, images, labels)
    return len(images), images.shape[1:], _array_chunks(images, labels)


def _write_source(stack, data_dir, split: str, value) -> SplitWriter:
    bound, shape, chunks = _source(split, value)
    writer = stack.enter_context(split_writer(data_dir, split, bound, shape))
    for images, labels in chunks:
        writer.write(images, labels)
    return writer


def write_loaded(data_dir, name: str, kind: str, options: dict, loaded) -> dict:
    """Write what a dataset kind's loader returned (plan.kinds.kind.Loaded) as the data step
    does; returns the manifest, which records the kind and its options as the source. A source
    without a validation split gets one: options["val_size"] of the training images, the same
    share of every class, chosen by options["seed"] (splits.py).

    A split, in memory or a Stream, goes to its files chunk by chunk; a training split that
    gives up a validation split is first read whole (a Stream into a temporary file), then its
    rows go to the train and val files in their order. Every file is kept only once all are
    written and the loader's finish() passed; the manifest last."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    # a manifest says that the arrays beside it are complete: not an earlier one's while these are written
    (data_dir / MANIFEST).unlink(missing_ok=True)
    splits, val_source = dict(loaded.splits), loaded.source.get("val_split", "the source's own")
    hold_out = "val" not in splits
    if hold_out and "val_size" not in options:
        raise ValueError(f"dataset kind {kind}: its loader gave no val split and it has no val_size option")
    with contextlib.ExitStack() as stack:
        writers, unsplit = {}, None
        for split in ("train", "test", "val"):
            if split not in splits:
                continue
            if split == "train" and hold_out and isinstance(splits[split], Stream):
                unsplit = _Unsplit(data_dir, splits[split])
                stack.callback(unsplit.close)
            elif not (split == "train" and hold_out):
                writers[split] = _write_source(stack, data_dir, split, splits[split])
        if loaded.finish is not None:
            loaded.finish()
        if hold_out:
            writers["train"], writers["val"] = _hold_out(stack, data_dir, options, loaded, unsplit)
            val_source = f"val_size {options['val_size']} of the training images, seed {options['seed']}"
        source = {"kind": kind, **options, **loaded.source, "val_split": val_source}
        labels = {split: writers[split].labels() for split in ("train", "val", "test")}
        train = writers["train"]
        manifest = _manifest(
            name, loaded.classes, train.image_shape, labels, train.sums.stats(),
            loaded.source_hash, loaded.skipped, source,
        )  # fmt: skip
    # every split's files are in place (leaving the block renamed them): now the manifest
    _write_manifest(data_dir, manifest)
    return manifest


def _hold_out(stack, data_dir, options, loaded, unsplit: _Unsplit | None) -> tuple:
    """(train, val) writers of the training split's images, the validation split held out of
    them (splits.stratified_holdout), each in its original order (as splits.split_off)."""
    if unsplit is not None:
        labels, shape, chunks = unsplit.labels, unsplit.image_shape, unsplit.chunks()
    else:
        images, labels = loaded.splits["train"]
        labels = _check_split("train", images, labels)
        shape, chunks = images.shape[1:], _array_chunks(images, labels)
    try:
        held = stratified_holdout(labels, options["val_size"], options["seed"], "val", loaded.classes)
    except ValueError as error:
        raise ValueError(f"dataset.val_size: {error}") from None
    is_held = np.zeros(len(labels), bool)
    is_held[held] = True
    train = stack.enter_context(split_writer(data_dir, "train", len(labels) - len(held), shape))
    val = stack.enter_context(split_writer(data_dir, "val", len(held), shape))
    start = 0
    for images, part in chunks:
        held_here = is_held[start : start + len(part)]
        # each run of rows that stay (or go) together is written as it is, not copied first
        edges = [0, *(np.flatnonzero(np.diff(held_here.astype(np.int8))) + 1), len(part)]
        for first, end in itertools.pairwise(edges if len(part) else []):
            (val if held_here[first] else train).write(images[first:end], part[first:end])
        start += len(part)
    return train, val


def read_manifest(data_dir) -> dict:
    path = Path(data_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no {MANIFEST} in {data_dir}: run the prepare_data step first")
    return json.loads(path.read_text())
