"""The data step: turn a dataset spec from the config into the compact cache (see cache.py).

Also the dataset's source fingerprint, which the workflow computes when it builds the job graph
and records in the data rule's params: a change of source files reruns data prep and what
follows, a re-run over identical files does not.
"""

import hashlib
import json
import os
from pathlib import Path

# Only the standard library at import: the workflow calls source_fingerprint while it builds the
# job graph, in Snakemake's own Python, which need not have numpy or Pillow.
from . import sources

# Keys each kind of dataset takes besides `name` and `kind`, with their defaults (None: required).
DATASET_KINDS = {
    "demo": {"train_size": 4000, "test_size": 1000, "seed": 0, "image_size": 32},
    "cifar10": {"root": "data/cifar10", "download": True, "verify": True},
    "imagefolder": {
        "root": None,
        "image_size": 32,
        "resize": "shorter_center_crop",
        "holdout": 0.1,
        "seed": 0,
        "strict": False,
    },
}


def dataset_options(spec: dict) -> dict:
    """The spec's options merged over the kind's defaults; unknown keys are an error."""
    kind = spec.get("kind")
    if kind not in DATASET_KINDS:
        raise ValueError(f"dataset kind {kind!r} unknown; choose one of {sorted(DATASET_KINDS)}")
    defaults = DATASET_KINDS[kind]
    options = {k: v for k, v in spec.items() if k not in ("name", "kind")}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"dataset kind {kind!r} does not take {unknown}; it takes {sorted(defaults)}")
    merged = {**defaults, **options}
    missing = sorted(k for k, v in merged.items() if v is None)
    if missing:
        raise ValueError(f"dataset kind {kind!r} needs {missing}")
    return merged


def prepare(spec: dict, out_dir, threads: int = 1) -> dict:
    """Build the cache for one dataset spec in out_dir; returns the manifest."""
    from . import cache, cifar10, demo, imagefolder

    options = dataset_options(spec)
    kind = spec["kind"]
    source = {"kind": kind, **options}
    skipped = []
    if kind == "demo":
        classes = demo.CLASSES
        splits = demo.make_dataset(
            options["train_size"], options["test_size"], options["seed"], options["image_size"]
        )
        source_hash = demo.source_hash(
            options["train_size"], options["test_size"], options["seed"], options["image_size"]
        )
    elif kind == "cifar10":
        classes, splits, digests = cifar10.load(options["root"], options["download"], options["verify"])
        source_hash = sources.combine_digests(digests)
    elif kind == "imagefolder":
        classes, splits, skipped, digests, test_source = imagefolder.load(
            options["root"],
            options["image_size"],
            options["resize"],
            options["holdout"],
            options["seed"],
            options["strict"],
            threads,
        )
        source_hash = sources.combine_digests(digests)
        source["test_split"] = test_source
    name = spec.get("name", "shapes" if kind == "demo" else kind)
    manifest = cache.build_manifest(name, classes, splits, source_hash, skipped, source=source)
    cache.write_dataset(Path(out_dir), manifest, splits)
    return manifest


def standalone_demo_dir() -> str:
    """A small demo dataset in a new temporary folder: the data a step notebook uses when it is
    opened on its own, with no data_dir given."""
    import tempfile

    data_dir = tempfile.mkdtemp(prefix="labbook-data-")
    prepare({"name": "shapes", "kind": "demo", "train_size": 500, "test_size": 200}, data_dir)
    return data_dir


def source_fingerprint(spec: dict, digest_cache=None) -> str:
    """The hash the manifest's source_hash will hold, computed without decoding anything.

    demo: a hash of its settings (demo.source_hash needs numpy, and the settings are in the
    rule's params anyway). cifar10: the batch files' MD5s (CIFAR-10's published ones for files still
    to be downloaded, so the download itself changes nothing). imagefolder: every image's
    relative path and MD5. digest_cache: a JSON file remembering MD5s by size and mtime, so a
    second look at 60,000 unchanged files only stats them. Missing data is not an error here:
    the data step reports it, naming what is missing.
    """
    options = dataset_options(spec)
    kind = spec["kind"]
    if kind == "demo":
        return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()
    digests = sources.DigestCache(digest_cache)
    if kind == "cifar10":
        folder = Path(options["root"]) / sources.CIFAR10_FOLDER
        found = {}
        for name in sources.CIFAR10_FILES:
            found[name] = digests.md5(folder / name)
            if found[name] is None and options["download"]:
                found[name] = sources.CIFAR10_MD5[name]
    else:
        root = Path(options["root"])
        found = {p.relative_to(root).as_posix(): digests.md5(p) for p in sources.imagefolder_files(root)}
    digests.save()
    return sources.combine_digests(found)


CIFAR10_CLASSES = 10
# Share of this machine's memory the decoded images may take: data prep holds them twice
# (decoded chunks, then one array) and training once more.
MEMORY_SHARE = 0.5


def known_classes(spec: dict) -> int | None:
    """How many classes the dataset has, where that is known before data prep; else None."""
    kind = spec.get("kind")
    if kind == "cifar10":
        return CIFAR10_CLASSES
    if kind == "demo":
        try:
            from . import demo  # needs numpy, which the workflow's own Python may lack
        except ImportError:
            return None
        return len(demo.CLASSES)
    if kind == "imagefolder" and spec.get("root"):
        train_dir = Path(spec["root"]) / "train"
        if train_dir.is_dir():
            return sum(1 for d in train_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    return None


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_config(config: dict, memory: int | None = None, image_count: int | None = None) -> None:
    """What the schema cannot see, checked before any job runs: a ValueError naming the key.
    One class (100% accuracy of nothing), a top_k beyond the classes, an image_size whose cache
    would not fit in memory. image_count: the dataset's images (train and test), when the caller
    has counted them already (limits.dataset_size, which this uses otherwise)."""
    spec = config["dataset"]
    classes = known_classes(spec)
    if classes is not None and classes < 2:
        raise ValueError(
            f"dataset.root: {spec['root']}/train has {classes} class folder(s); "
            "a classifier needs at least two classes (one would score 100% accuracy)"
        )
    top_k = config.get("analysis", {}).get("top_k")  # validate() fills in the schema's default
    if classes is not None and top_k is not None and top_k > classes:
        raise ValueError(
            f"analysis.top_k: {top_k} is more than the dataset's {classes} classes "
            f"(top-{top_k} accuracy would be 100% by definition); set it to {classes} or less"
        )
    size = spec.get("image_size")
    if size and image_count is None:
        from .limits import dataset_size  # limits imports this module

        train, test, _ = dataset_size(spec)
        image_count = train + test
    count = image_count if size else None
    memory = memory or memory_bytes()
    if count and memory and count * size * size * 3 > MEMORY_SHARE * memory:
        raise ValueError(
            f"dataset.image_size: {size} makes {count} images take {count * size * size * 3 / 2**30:.1f} GiB "
            f"as uint8 arrays, more than {MEMORY_SHARE:.0%} of this machine's {memory / 2**30:.0f} GiB; "
            "choose a smaller image_size"
        )
