"""What a dataset kind declares (see datasets.py), and what its loader returns."""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Kind:
    name: str
    # options besides `name` and `kind`, with their defaults (None: required)
    defaults: dict
    # options → (training images, test images, stored side in pixels)
    size: Callable[[dict], tuple[int, int, int]]
    # (options, sources.DigestCache) → the hash of its source files (params of the data rule)
    fingerprint: Callable
    # "module:function" of the data step that loads it: (options, threads) → Loaded
    loader: str
    # options → its number of classes, where known before data prep (else None)
    classes: Callable[[dict], int | None] = lambda options: None
    # (options, size, threads) → minutes of the data step beyond start-up
    prepare_minutes: Callable = lambda options, size, threads: 0.0
    # options → Snakemake retries of the data step (a download), None: --retries decides
    retries: Callable[[dict], int | None] = lambda options: None
    # the default dataset name when a spec has none
    default_name: str = ""
    # options → None, or a ValueError naming the key of what is missing before any job runs
    check: Callable[[dict], None] = lambda options: None
    # its loader hands the splits over as Streams (chunks), not arrays: the data step's memory
    # does not grow with the dataset (limits.prepare_data)
    streams: bool = False


@dataclass(frozen=True)
class Stream:
    """A split too large to hold in memory, handed over in chunks (the data step writes each
    chunk to its file as it comes: arrays.write_loaded). Read once, in order."""

    bound: int  # at most this many images (fewer where files turn out unreadable)
    image_shape: tuple  # (H, W, 3) of every image
    chunks: Callable  # () → iterable of (uint8 n×H×W×3 images, int64 n labels)


@dataclass
class Loaded:
    """What a kind's loader returns to the data step."""

    classes: list
    # {"train": (uint8 N×H×W×3 images, labels) or a Stream, "test": (...)}
    splits: dict
    source_hash: str  # identifies the source's content (the manifest records it)
    skipped: list = field(default_factory=list)  # [{"path", "reason"}] files left out
    source: dict = field(default_factory=dict)  # what the manifest records of the source beyond the options
    # Where splits are Streams, what only reading them shows: called once all of them are read
    # and before any file is kept, it raises (a bad file under strict, a class left with no
    # readable image) or completes source_hash and skipped.
    finish: Callable[[], None] | None = None


def settings_hash(values: dict) -> str:
    """A kind with no source files (generated data): its fingerprint is its settings."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
