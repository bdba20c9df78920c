"""The offline demo dataset: ten classes of drawn shapes on textured backgrounds.

Generated deterministically from a seed with numpy alone: no network, no files. Shapes vary in
size, position, colour and thickness, and sit on smooth random textures with pixel noise, so a
small CNN has to learn shape, not colour, to score well.
"""

import hashlib
import tempfile

import numpy as np

from . import arrays
from .plan.kinds.demo import CLASSES, KIND
from .plan.kinds.kind import Loaded


def _shape_mask(kind: int, yy, xx, cy, cx, r, t):
    """Boolean mask of one shape centred at (cy, cx) with radius r and stroke thickness t."""
    dy, dx = yy - cy, xx - cx
    dist = np.sqrt(dy**2 + dx**2)
    box = np.maximum(np.abs(dy), np.abs(dx))
    name = CLASSES[kind]
    if name == "circle":
        return dist <= r
    if name == "ring":
        return (dist <= r) & (dist >= r - t)
    if name == "square":
        return box <= r * 0.85
    if name == "frame":
        return (box <= r * 0.85) & (box >= r * 0.85 - t)
    if name == "triangle":  # apex up, base at cy + r/2: symmetric under horizontal flips
        return (dy <= r * 0.6) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if name == "diamond":
        return np.abs(dy) + np.abs(dx) <= r
    if name == "plus":
        return ((np.abs(dy) <= t / 2) & (np.abs(dx) <= r)) | ((np.abs(dx) <= t / 2) & (np.abs(dy) <= r))
    if name == "cross":
        diag = (np.abs(dy - dx) <= t * 0.7) | (np.abs(dy + dx) <= t * 0.7)
        return diag & (box <= r * 0.8)
    if name == "hbar":
        return (np.abs(dy) <= t / 2 + 0.5) & (np.abs(dx) <= r)
    if name == "vbar":
        return (np.abs(dx) <= t / 2 + 0.5) & (np.abs(dy) <= r)
    raise ValueError(kind)


def _texture(rng, size: int) -> np.ndarray:
    """A smooth colour field: a base colour varied on a 4×4 grid, bilinearly upsampled, plus noise."""
    grid = rng.uniform(30, 225, size=3) + rng.uniform(-45, 45, size=(4, 4, 3))
    pos = np.linspace(0, 3, size)
    i0 = np.floor(pos).astype(int).clip(0, 2)
    w = (pos - i0)[:, None]
    rows = grid[i0] * (1 - w[:, :, None]) + grid[i0 + 1] * w[:, :, None]  # size×4×3
    cols = rows[:, i0] * (1 - w[None, :, :]) + rows[:, i0 + 1] * w[None, :, :]
    return cols + rng.normal(0, 10, size=(size, size, 3))


def make_images(n: int, seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """n images (uint8 n×size×size×3) with balanced labels, the same for the same seed."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, kind in enumerate(labels):
        image = _texture(rng, size)
        r = rng.uniform(0.22, 0.38) * size
        cy, cx = rng.uniform(r * 0.9, size - r * 0.9, size=2)
        t = rng.uniform(0.1, 0.18) * size
        mask = _shape_mask(int(kind), yy, xx, cy, cx, r, t)
        colour = rng.uniform(0, 255, size=3)
        # Keep the shape visible: push its colour away from the background's mean colour.
        background = image[mask].mean(0) if mask.any() else image.mean((0, 1))
        if np.abs(colour - background).sum() < 240:
            colour = 255 - background
        image[mask] = colour + rng.normal(0, 10, size=(int(mask.sum()), 3))
        images[i] = np.clip(image, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def make_dataset(train_size: int, test_size: int, seed: int, size: int = 32):
    """Train and test splits from independent streams of the same seed."""
    train = make_images(train_size, seed=seed * 2 + 0, size=size)
    test = make_images(test_size, seed=seed * 2 + 1, size=size)
    return {"train": train, "test": test}


def source_hash(train_size: int, test_size: int, seed: int, size: int) -> str:
    """The demo has no source files: its identity is the generator's settings and code version."""
    key = f"shapes-v1 {train_size} {test_size} {seed} {size}"
    return hashlib.sha256(key.encode()).hexdigest()


def load(options: dict, threads: int = 1) -> Loaded:
    """The data step's loader of `kind: demo` (plan/kinds/demo.py)."""
    settings = (options["train_size"], options["test_size"], options["seed"], options["image_size"])
    return Loaded(list(CLASSES), make_dataset(*settings), source_hash(*settings))


def standalone_dir(train_size: int = 600, val_size: int = 100, test_size: int = 200) -> str:
    """A small demo dataset in a new temporary folder, written as the data step writes it: the
    data a step notebook uses when it is opened on its own, with no data_dir given. (Not through
    prepare.py, which reaches every dataset kind's code: a step that only needs this would be
    rerun by edits to any of them.)"""
    options = {**KIND.defaults, "train_size": train_size, "val_size": val_size, "test_size": test_size}
    data_dir = tempfile.mkdtemp(prefix="labbook-data-")
    arrays.write_loaded(data_dir, KIND.default_name, KIND.name, options, load(options))
    return data_dir
