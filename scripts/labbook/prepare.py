"""The data step: turn a dataset spec from the config into the compact arrays every later step
reads (see arrays.py). What each kind of dataset is and how it loads: plan/datasets.py."""

from . import arrays
from .plan import datasets


def prepare(spec: dict, out_dir, threads: int = 1) -> dict:
    """Build the arrays and manifest of one dataset spec in out_dir; returns the manifest."""
    kind = datasets.kind_of(spec)
    loaded = datasets.load(spec, threads)
    name = spec.get("name", kind.default_name)
    return arrays.write_loaded(out_dir, name, kind.name, datasets.options(spec), loaded)
