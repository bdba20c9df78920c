"""What the schema cannot see, checked before any job runs: a ValueError naming the key."""

import os

from . import datasets

# Share of this machine's memory the decoded images may take: data prep holds them twice
# (decoded chunks, then one array) and training once more.
MEMORY_SHARE = 0.5


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_config(config: dict, memory: int | None = None, image_count: int | None = None) -> None:
    """One class (100% accuracy of nothing), a top_k beyond the classes, an image_size whose
    arrays would not fit in memory. image_count: the dataset's images (train and test), when the
    caller has counted them already (datasets.size, which this uses otherwise)."""
    spec = config["dataset"]
    classes = datasets.known_classes(spec)
    if classes is not None and classes < 2:
        raise ValueError(
            f"dataset.root: {spec['root']}/train has {classes} class folder(s); "
            "a classifier needs at least two classes (one would score 100% accuracy)"
        )
    top_k = config.get("analysis", {}).get("top_k")  # the plan fills in the default
    if classes is not None and top_k is not None and top_k > classes:
        raise ValueError(
            f"analysis.top_k: {top_k} is more than the dataset's {classes} classes "
            f"(top-{top_k} accuracy would be 100% by definition); set it to {classes} or less"
        )
    size = spec.get("image_size")
    if size and image_count is None:
        train, test, _ = datasets.size(spec)
        image_count = train + test
    count = image_count if size else None
    memory = memory or memory_bytes()
    if count and memory and count * size * size * 3 > MEMORY_SHARE * memory:
        raise ValueError(
            f"dataset.image_size: {size} makes {count} images take {count * size * size * 3 / 2**30:.1f} GiB "
            f"as uint8 arrays, more than {MEMORY_SHARE:.0%} of this machine's {memory / 2**30:.0f} GiB; "
            "choose a smaller image_size"
        )
