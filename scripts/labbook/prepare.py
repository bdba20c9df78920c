"""The data step: turn a dataset spec from the config into the compact cache (see cache.py)."""

from pathlib import Path

from . import cache, demo

# Keys each kind of dataset takes besides `name` and `kind`, with their defaults.
DATASET_KINDS = {
    "demo": {"train_size": 4000, "test_size": 1000, "seed": 0, "image_size": 32},
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
    return {**defaults, **options}


def prepare(spec: dict, out_dir, threads: int = 1) -> dict:
    """Build the cache for one dataset spec in out_dir; returns the manifest."""
    options = dataset_options(spec)
    kind = spec["kind"]
    if kind == "demo":
        splits = demo.make_dataset(
            options["train_size"], options["test_size"], options["seed"], options["image_size"]
        )
        manifest = cache.build_manifest(
            spec.get("name", "shapes"),
            demo.CLASSES,
            splits,
            demo.source_hash(
                options["train_size"], options["test_size"], options["seed"], options["image_size"]
            ),
            source={"kind": kind, **options},
        )
    cache.write_dataset(Path(out_dir), manifest, splits)
    return manifest
