"""The data step: turn a dataset spec from the config into the compact arrays every later step
reads (see arrays.py). What each kind of dataset is and how it loads: plan/datasets.py."""

import tempfile
from pathlib import Path

from . import arrays
from .plan import datasets


def prepare(spec: dict, out_dir, threads: int = 1) -> dict:
    """Build the arrays and manifest of one dataset spec in out_dir; returns the manifest."""
    kind = datasets.kind_of(spec)
    loaded = datasets.load(spec, threads)
    source = {"kind": kind.name, **datasets.options(spec), **loaded.source}
    name = spec.get("name", kind.default_name)
    manifest = arrays.build_manifest(
        name, loaded.classes, loaded.splits, loaded.source_hash, loaded.skipped, source=source
    )
    arrays.write_dataset(Path(out_dir), manifest, loaded.splits)
    return manifest


def standalone_demo_dir() -> str:
    """A small demo dataset in a new temporary folder: the data a step notebook uses when it is
    opened on its own, with no data_dir given."""
    data_dir = tempfile.mkdtemp(prefix="labbook-data-")
    prepare({"name": "shapes", "kind": "demo", "train_size": 500, "test_size": 200}, data_dir)
    return data_dir
