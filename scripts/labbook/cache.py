"""The format steps hand each other: uint8 NHWC arrays in one .npz per split, plus manifest.json.

Readable with numpy alone, so steps that do not train (analysis, report) need no torch.
"""

import json
import os
from pathlib import Path

import numpy as np

SPLITS = ("train", "test")
MANIFEST = "manifest.json"


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file and rename, so a killed step never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def write_split(data_dir, split: str, images: np.ndarray, labels: np.ndarray) -> Path:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{split}: images must be uint8 N×H×W×3, got {images.dtype} {images.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    path = Path(data_dir) / f"{split}.npz"
    labels = np.asarray(labels, dtype=np.int64)
    atomic_write(path, lambda f: np.savez(f, images=images, labels=labels))
    return path


def load_split(data_dir, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(Path(data_dir) / f"{split}.npz") as npz:
        return npz["images"], npz["labels"]


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
    """splits: {split: (images, labels)}. Counts are per class name, in class order."""
    train_images = splits["train"][0]
    mean, std = channel_stats(train_images)
    return {
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


def write_dataset(data_dir, manifest: dict, splits) -> Path:
    """Write every split, then the manifest last: a manifest means the arrays are complete."""
    for split, (images, labels) in splits.items():
        write_split(data_dir, split, images, labels)
    path = Path(data_dir) / MANIFEST
    text = json.dumps(manifest, indent=2).encode()
    atomic_write(path, lambda f: f.write(text))
    return path


def read_manifest(data_dir) -> dict:
    path = Path(data_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no {MANIFEST} in {data_dir}: run the prepare_data step first")
    return json.loads(path.read_text())
