"""The format steps hand each other: uint8 NHWC arrays in one .npz per split, plus manifest.json.

Readable with numpy alone, so steps that do not train (analysis, report) need no torch.
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from . import provenance
from .atomic import atomic_write
from .plan import files
from .splits import split_off, stratified_holdout

MANIFEST = files.DATA["manifest"]


def write_split(data_dir, split: str, images: np.ndarray, labels: np.ndarray) -> Path:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{split}: images must be uint8 N×H×W×3, got {images.dtype} {images.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    path = Path(data_dir) / files.DATA[split]
    labels = np.asarray(labels, dtype=np.int64)
    atomic_write(path, lambda f: np.savez(f, images=images, labels=labels))
    return path


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


def load_split(data_dir, split: str) -> tuple[np.ndarray, np.ndarray]:
    return load_arrays(Path(data_dir) / files.DATA[split], ("images", "labels"))


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on the 0–1 scale, computed in chunks to bound memory."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].reshape(-1, 3).astype(np.float64) / 255.0
        total += block.sum(0)
        total_sq += (block**2).sum(0)
    n = images.shape[0] * images.shape[1] * images.shape[2]
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 1e-12))
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


def build_manifest(name, classes, splits, source_hash, skipped=(), source=None) -> dict:
    """splits: {split: (images, labels)}. Counts are per class name, in class order. Paths
    under the home directory are written with ~ (provenance.scrub): they would name the user."""
    train_images = splits["train"][0]
    mean, std = channel_stats(train_images)
    manifest = {
        "dataset": name,
        "source": source or {},
        "classes": list(classes),
        "image_shape": list(train_images.shape[1:]),
        "counts": {
            split: {c: int(np.sum(labels == i)) for i, c in enumerate(classes)}
            for split, (_, labels) in splits.items()
        },
        "mean": mean,
        "std": std,
        "source_hash": source_hash,
        "skipped": list(skipped),
    }
    return provenance.scrub(manifest)


def write_dataset(data_dir, manifest: dict, splits) -> Path:
    """Write every split, then the manifest last: a manifest means the arrays are complete."""
    for split, (images, labels) in splits.items():
        write_split(data_dir, split, images, labels)
    path = Path(data_dir) / MANIFEST
    text = json.dumps(manifest, indent=2).encode()
    atomic_write(path, lambda f: f.write(text))
    return path


def write_loaded(data_dir, name: str, kind: str, options: dict, loaded) -> dict:
    """Write what a dataset kind's loader returned (plan.kinds.kind.Loaded) as the data step
    does; returns the manifest, which records the kind and its options as the source. A source
    without a validation split gets one: options["val_size"] of the training images, the same
    share of every class, chosen by options["seed"] (splits.py)."""
    splits, val_source = dict(loaded.splits), loaded.source.get("val_split", "the source's own")
    if "val" not in splits:
        if "val_size" not in options:
            raise ValueError(
                f"dataset kind {kind}: its loader gave no val split and it has no val_size option"
            )
        images, labels = splits["train"]
        try:
            held = stratified_holdout(labels, options["val_size"], options["seed"], "val", loaded.classes)
        except ValueError as error:
            raise ValueError(f"dataset.val_size: {error}") from None
        splits["train"], splits["val"] = split_off(images, labels, held)
        val_source = f"val_size {options['val_size']} of the training images, seed {options['seed']}"
    splits = {split: splits[split] for split in ("train", "val", "test")}
    source = {"kind": kind, **options, **loaded.source, "val_split": val_source}
    manifest = build_manifest(name, loaded.classes, splits, loaded.source_hash, loaded.skipped, source)
    write_dataset(Path(data_dir), manifest, splits)
    return manifest


def read_manifest(data_dir) -> dict:
    path = Path(data_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no {MANIFEST} in {data_dir}: run the prepare_data step first")
    return json.loads(path.read_text())
