"""Held-out splits: the same share of every class, chosen by a seed (the validation split of
every dataset without one, and ImageFolder's test split without a test/ folder)."""

import numpy as np


def share_of(size, total: int, split: str) -> float:
    """`size` as a fraction of `total`: an integer is a number of images, a float in (0, 1) a
    fraction already."""
    share = size / total if isinstance(size, int) and total else float(size)
    if not 0 < share < 1:
        raise ValueError(f"cannot hold out {size!r} of {total} images for the {split} split")
    return share


def stratified_holdout(labels, size, seed: int, split: str, class_names=None) -> np.ndarray:
    """Sorted indices of the images held out: the same share of every class, by the seed. Of
    round(share × images) in all (exactly `size` when it is a count), each class gives its share
    rounded down, then the classes with the largest remainders one more; every class at least
    one (taken back from the smallest remainders), none all of its images. size: see share_of. class_names: what an error calls each class
    (default "class <label>")."""
    labels = np.asarray(labels)
    share = share_of(size, len(labels), split)
    classes, members_of = np.unique(labels, return_inverse=True)
    members = np.bincount(members_of)
    quota = members * share
    counts = np.maximum(np.floor(quota).astype(int), 1)
    remainder = quota - np.floor(quota)
    left = round(share * len(labels)) - counts.sum()
    for index in np.argsort(-remainder, kind="stable")[: max(left, 0)]:
        counts[index] += 1
    # the one-per-class floor took more than the total: back from the smallest remainders
    for index in np.argsort(remainder, kind="stable"):
        if left >= 0:
            break
        if counts[index] > 1:
            counts[index], left = counts[index] - 1, left + 1
    rng = np.random.default_rng(seed)
    held = []
    for index, label in enumerate(classes):
        if counts[index] >= members[index]:
            name = class_names[label] if class_names is not None else f"class {label}"
            raise ValueError(
                f"{name} has {members[index]} image(s): too few to hold out {share:.0%} of them "
                f"for the {split} split"
            )
        held.append(rng.choice(np.flatnonzero(members_of == index), counts[index], replace=False))
    return np.sort(np.concatenate(held))


def split_off(images: np.ndarray, labels: np.ndarray, held: np.ndarray) -> tuple:
    """((kept images, kept labels), (held images, held labels)), each in their original order."""
    kept = np.setdiff1d(np.arange(len(labels)), held)
    return (images[kept], labels[kept]), (images[held], labels[held])
