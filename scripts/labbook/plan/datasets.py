"""Dataset kinds: a registry. Each kind (plan/kinds/<kind>.py) declares, in one module, what the
workflow knows of it while it builds the job graph: its options and their defaults, its image
counts and stored size, the fingerprint of its source files, its classes where known, what
preparing it costs, and the step function that loads it (named, not imported: it needs numpy).

Adding a kind is its module in kinds/, listed in KINDS below, its block in
schemas/config.schema.yaml and an example config under configs/.
"""

import hashlib
import importlib
import json

from . import sources
from .kinds import cifar10, demo, imagefolder
from .kinds.kind import Kind, Loaded

KINDS = {kind.name: kind for kind in (demo.KIND, cifar10.KIND, imagefolder.KIND)}


def register(kind: Kind) -> Kind:
    """Add a kind (a test's toy kind; the project's own are listed in KINDS)."""
    KINDS[kind.name] = kind
    return kind


def kind_of(spec: dict) -> Kind:
    name = spec.get("kind")
    if name not in KINDS:
        raise ValueError(f"dataset kind {name!r} unknown; choose one of {sorted(KINDS)}")
    return KINDS[name]


def options(spec: dict) -> dict:
    """The spec's options merged over its kind's defaults; unknown or missing keys are errors."""
    kind = kind_of(spec)
    given = {k: v for k, v in spec.items() if k not in ("name", "kind")}
    unknown = sorted(set(given) - set(kind.defaults))
    if unknown:
        raise ValueError(
            f"dataset kind {kind.name!r} does not take {unknown}; it takes {sorted(kind.defaults)}"
        )
    merged = {**kind.defaults, **given}
    missing = sorted(k for k, v in merged.items() if v is None)
    if missing:
        raise ValueError(f"dataset kind {kind.name!r} needs {missing}")
    return merged


def key(spec: dict) -> str:
    """The data folder's name: the dataset's name and a hash of its full spec (defaults filled
    in), so experiments with the same spec share one data step and different specs under one
    name never overwrite each other."""
    full = {"kind": spec["kind"], **options(spec)}
    digest = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()
    return f"{spec['name']}-{digest[:8]}"


def size(spec: dict) -> tuple[int, int, int]:
    """(training images, test images, stored side in pixels) of a dataset spec."""
    return kind_of(spec).size(options(spec))


def known_classes(spec: dict) -> int | None:
    return kind_of(spec).classes(options(spec))


def retries(spec: dict) -> int | None:
    """How often Snakemake retries the data step (a download), None: --retries decides."""
    return kind_of(spec).retries(options(spec))


def fingerprint(spec: dict, digest_cache=None) -> str:
    """The hash of the dataset's source files, computed without decoding anything; a missing
    source is not an error here (the data step reports it, naming what is missing)."""
    digests = sources.DigestCache(digest_cache)
    value = kind_of(spec).fingerprint(options(spec), digests)
    digests.save()
    return value


def load(spec: dict, threads: int = 1):
    """The data step: the kind's loader, imported only now (it needs numpy)."""
    module, function = kind_of(spec).loader.split(":")
    return getattr(importlib.import_module(module), function)(options(spec), threads)


__all__ = ["KINDS", "Kind", "Loaded", "register"]
